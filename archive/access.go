package archive

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// The access rule of tapefs, decided here once for the mount, the control
// API and the status page:
//
//   - See a workspace (list its batches and their files, read the batch
//     records): root, its manager, members of its group. The TCP page has
//     no caller identity (Unknown): it sees every workspace's records and
//     may change nothing and read no file's bytes (it is bound to loopback
//     or guarded by a token).
//   - Read a file's bytes (mount read, `tapefs get`): root; else seeing
//     the workspace AND the file's recorded POSIX mode permitting read to
//     the caller (owner, group, other bits, as the kernel reads them) AND
//     search permission on every directory of the batch tree above it.
//     This is exactly what the kernel enforces on the mount from the
//     attributes tapefs reports, so a restore never hands out what `cat`
//     would refuse.
//   - Manage (put, seal, undelete, evict): root and the manager.
//   - Remove a batch (rm -r of its directory, `tapefs rm`): root, the
//     manager, and the batch's owner (whoever put it) if they see the
//     workspace. Through the mount the kernel also needs write permission
//     on the directories rm unlinks from, as on any file system.
//
// A caller that may not see a workspace is told "not found", never
// "denied": names of other groups' workspaces and batches do not leak.

// Caller is who asks: the uid and groups of a process (the mount from the
// FUSE request, the control API from SO_PEERCRED), or the TCP page.
type Caller struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups
	// Unknown is the TCP page: no identity.
	Unknown bool
}

// Anonymous is the caller of the TCP page.
func Anonymous() Caller { return Caller{UID: ^uint32(0), GID: ^uint32(0), Unknown: true} }

// Nobody is a caller with no rights (a socket peer without credentials).
func Nobody() Caller { return Caller{UID: ^uint32(0), GID: ^uint32(0)} }

// Root is the superuser.
func Root() Caller { return Caller{} }

// ProcessCaller is the caller for a process: its uid and gid and the
// supplementary groups read from /proc. A process that is gone has no
// supplementary groups: it can only lose rights by that.
func ProcessCaller(uid, gid uint32, pid int32) Caller {
	return Caller{UID: uid, GID: gid, Groups: procGroups(pid)}
}

// IsRoot reports whether the caller is the superuser.
func (c Caller) IsRoot() bool { return !c.Unknown && c.UID == 0 }

// InGroup reports whether the caller is a member of gid.
func (c Caller) InGroup(gid uint32) bool {
	if c.Unknown {
		return false
	}
	if c.GID == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// MaySee reports whether the caller may see a workspace: list it, its
// batches and their files.
func MaySee(c Caller, w Workspace) bool {
	return c.Unknown || c.IsRoot() || c.UID == w.Manager || c.InGroup(w.Group)
}

// MayManage reports whether the caller may put, seal, undelete and evict.
func MayManage(c Caller, w Workspace) bool {
	return c.IsRoot() || !c.Unknown && c.UID == w.Manager
}

// MayRemove reports whether the caller may remove a batch (or entries of
// its tree).
func MayRemove(c Caller, w Workspace, b Batch) bool {
	if c.Unknown {
		return false
	}
	return MayManage(c, w) || c.UID == b.Owner && MaySee(c, w)
}

// permits applies POSIX owner/group/other bits: want is 4 (read), 2
// (write) or 1 (search).
func permits(c Caller, mode, uid, gid uint32, want uint32) bool {
	if c.Unknown {
		return false
	}
	if c.IsRoot() {
		return true
	}
	switch {
	case c.UID == uid:
		return mode>>6&want == want
	case c.InGroup(gid):
		return mode>>3&want == want
	}
	return mode&want == want
}

// MayRead reports whether the caller may read the bytes of file, given the
// directories of its batch tree above it (outermost first, possibly
// empty) and its workspace.
func MayRead(c Caller, w Workspace, dirs []File, file File) bool {
	if c.IsRoot() {
		return true
	}
	if c.Unknown || !MaySee(c, w) {
		return false
	}
	for _, d := range dirs {
		if !permits(c, d.Mode, d.UID, d.GID, 1) {
			return false
		}
	}
	return permits(c, file.Mode, file.UID, file.GID, 4)
}

// Access is what one caller may do with one batch, as the page and the
// API's access endpoint show it.
type Access struct {
	See    bool // list the batch and its files
	Read   bool // read the bytes of the file asked about (false when none was)
	Manage bool // put, seal and evict in its workspace
	Remove bool // rm the batch, and undelete it
}

// AccessTo is the rule applied to one caller and batch.
func AccessTo(c Caller, w Workspace, b Batch) Access {
	return Access{See: MaySee(c, w), Manage: MayManage(c, w), Remove: MayRemove(c, w, b)}
}

// procGroups reads the supplementary groups of a process.
func procGroups(pid int32) []uint32 {
	f, err := os.Open("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return nil
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if rest, ok := strings.CutPrefix(line, "Groups:"); ok {
			var out []uint32
			for _, g := range strings.Fields(rest) {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					out = append(out, uint32(n))
				}
			}
			return out
		}
	}
	return nil
}

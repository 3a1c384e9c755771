package fs

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/archive"
)

// Node logic over a fake surface, without a mount: what lookup, readdir,
// getattr, getxattr, open and rm answer, and that they ask the surface as
// the FUSE request's caller.

const (
	tManager = 1000
	tOwner   = 2000 // owner of batch 7
	tMember  = 3000
	tGroup   = 500
)

func newFakeTree(t *testing.T) (*fakeSurface, *rootDir) {
	t.Helper()
	now := time.Unix(1_700_000_000, 0)
	fake := &fakeSurface{
		wss: []archive.Workspace{{Name: "ws1", Manager: tManager, Group: tGroup, Created: now}},
		batches: []archive.Batch{
			{ID: 7, Workspace: "ws1", Entry: "run", Owner: tOwner, State: archive.StateCachedSynced, Created: now, Sealed: now, Synced: now, Files: 5, Bytes: 7000},
			{ID: 8, Workspace: "ws1", Entry: "old", Owner: tOwner, State: archive.StateDeleted, Created: now},
		},
		files: []archive.File{
			{ID: 100, Batch: 7, Name: "run", Path: "run", Type: archive.TypeDir, Mode: 0o775, UID: tOwner, GID: tGroup},
			{ID: 101, Batch: 7, Parent: 100, Name: "a.txt", Path: "run/a.txt", Type: archive.TypeFile, Mode: 0o644, UID: tOwner, GID: tGroup,
				Size: 5000, MD5: "md5-of-a", State: archive.Offline, Nlink: 1,
				Copies: []archive.Copy{{VOLSER: "TF0002"}, {VOLSER: "TF0001"}}},
			{ID: 102, Batch: 7, Parent: 100, Name: "s.txt", Path: "run/s.txt", Type: archive.TypeFile, Mode: 0o600, UID: tManager, GID: tGroup,
				Size: 2000, MD5: "md5-of-s", State: archive.Online, Nlink: 1},
			{ID: 103, Batch: 7, Parent: 100, Name: "gone.txt", Path: "run/gone.txt", Type: archive.TypeFile, Mode: 0o644, Removed: true, State: archive.Online},
			{ID: 104, Batch: 7, Parent: 100, Name: "l", Path: "run/l", Type: archive.TypeSymlink, Mode: 0o777, Target: "a.txt"},
		},
	}
	f := New(fake, Options{Log: zerolog.Nop()})
	root := f.Root()
	// A node file system without a mount: it gives the root its inode, so
	// that lookups can make children.
	gofs.NewNodeFS(root, f.MountOptions())
	return fake, root.(*rootDir)
}

// as is a request context from a caller (pid 0: no supplementary groups).
func as(uid, gid uint32) context.Context {
	return fuse.NewContext(context.Background(), &fuse.Caller{Owner: fuse.Owner{Uid: uid, Gid: gid}})
}

// walk looks up a path from the root, as the kernel would.
func walk(t *testing.T, r *rootDir, path string) (gofs.InodeEmbedder, *fuse.EntryOut, syscall.Errno) {
	t.Helper()
	var node gofs.NodeLookuper = r
	var emb gofs.InodeEmbedder = r
	var out fuse.EntryOut
	for _, name := range strings.Split(path, "/") {
		out = fuse.EntryOut{}
		ch, errno := node.Lookup(as(0, 0), name, &out)
		if errno != 0 {
			return nil, &out, errno
		}
		emb = ch.Operations()
		node, _ = emb.(gofs.NodeLookuper)
	}
	return emb, &out, 0
}

func TestNodeLookup(t *testing.T) {
	_, r := newFakeTree(t)
	_, out, errno := walk(t, r, "ws1")
	if errno != 0 || out.Attr.Mode != syscall.S_IFDIR|syscall.S_ISVTX|0o770 || out.Attr.Uid != tManager || out.Attr.Gid != tGroup {
		t.Errorf("ws1: %v mode %o uid %d gid %d; want the manager's and the group's, 01770", errno, out.Attr.Mode, out.Attr.Uid, out.Attr.Gid)
	}
	_, out, errno = walk(t, r, "ws1/7")
	if errno != 0 || out.Attr.Mode != syscall.S_IFDIR|0o775 || out.Attr.Uid != tOwner || out.Attr.Gid != tGroup || out.Attr.Ino != batchIno(7) {
		t.Errorf("ws1/7: %v %+v; want the owner's and the group's, 0775", errno, out.Attr)
	}
	_, out, errno = walk(t, r, "ws1/7/run/a.txt")
	// Offline: its real size and one block, never 0 (tar --sparse).
	if errno != 0 || out.Attr.Mode != syscall.S_IFREG|0o644 || out.Attr.Size != 5000 || out.Attr.Blocks != 1 || out.Attr.Ino != fileIno(101) {
		t.Errorf("a.txt: %v %+v", errno, out.Attr)
	}
	_, out, errno = walk(t, r, "ws1/7/run/s.txt")
	if errno != 0 || out.Attr.Blocks != 4 || out.Attr.Uid != tManager {
		t.Errorf("s.txt (online): %v blocks %d uid %d, want 4 blocks", errno, out.Attr.Blocks, out.Attr.Uid)
	}
	for _, p := range []string{"nows", "ws1/8", "ws1/007", "ws1/9", "ws1/7/run/gone.txt", "ws1/7/run/nothing", "ws1/7/run/a.txt/x"} {
		if _, _, errno := walk(t, r, p); errno != syscall.ENOENT && errno != syscall.ENOTDIR {
			t.Errorf("lookup %s: %v, want ENOENT (or ENOTDIR)", p, errno)
		}
	}
	l, _, errno := walk(t, r, "ws1/7/run/l")
	if errno != 0 {
		t.Fatal(errno)
	}
	if target, errno := l.(*entryNode).Readlink(as(0, 0)); errno != 0 || string(target) != "a.txt" {
		t.Errorf("readlink: %q %v", target, errno)
	}
}

// TestNodeDirTimeoutFollowsNotifications: workspace and batch directories
// are cached by the kernel for the long DirTimeout only while the engine
// hears of every change; while another host's changes may go unheard (a
// shared catalog whose notifications are down) they are cached briefly.
func TestNodeDirTimeoutFollowsNotifications(t *testing.T) {
	fake, r := newFakeTree(t)
	check := func(want time.Duration) {
		t.Helper()
		for _, p := range []string{"ws1", "ws1/7"} {
			_, out, errno := walk(t, r, p)
			if errno != 0 {
				t.Fatal(p, errno)
			}
			if got := out.EntryTimeout(); got != want {
				t.Errorf("%s: entry timeout %s, want %s", p, got, want)
			}
			if got := out.AttrTimeout(); got != want {
				t.Errorf("%s: attribute timeout %s, want %s", p, got, want)
			}
		}
		ws, _, _ := walk(t, r, "ws1")
		var aout fuse.AttrOut
		if errno := ws.(*wsDir).Getattr(as(0, 0), nil, &aout); errno != 0 || aout.Timeout() != want {
			t.Errorf("getattr ws1: %v timeout %s, want %s", errno, aout.Timeout(), want)
		}
	}
	check(DefaultDirTimeout)
	fake.mu.Lock()
	fake.notFollowed = true
	fake.mu.Unlock()
	check(shortTimeout)
	fake.mu.Lock()
	fake.notFollowed = false
	fake.mu.Unlock()
	check(DefaultDirTimeout)
}

func listNames(t *testing.T, node gofs.InodeEmbedder) []string {
	t.Helper()
	h, _, errno := node.(gofs.NodeOpendirHandler).OpendirHandle(as(0, 0), 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	return readAll(t, h.(*catalogDir))
}

func TestNodeReaddir(t *testing.T) {
	_, r := newFakeTree(t)
	if got := listNames(t, r); !slices.Equal(got, []string{".", "..", "ws1"}) {
		t.Errorf("root lists %v", got)
	}
	ws, _, _ := walk(t, r, "ws1")
	// The deleted batch 8 is not listed.
	if got := listNames(t, ws); !slices.Equal(got, []string{".", "..", "put", "7"}) {
		t.Errorf("ws1 lists %v", got)
	}
	run, _, _ := walk(t, r, "ws1/7/run")
	// The removed gone.txt is not listed.
	if got := listNames(t, run); !slices.Equal(got, []string{".", "..", "a.txt", "l", "s.txt"}) {
		t.Errorf("run lists %v", got)
	}
}

// TestNodeOpenAsksTheRule: open hands the surface the FUSE caller, and a
// refusal by the access rule is EACCES; a write open is EROFS.
func TestNodeOpenAsksTheRule(t *testing.T) {
	fake, r := newFakeTree(t)
	s, _, _ := walk(t, r, "ws1/7/run/s.txt")
	n := s.(*entryNode)
	if _, _, errno := n.Open(as(tMember, tGroup), syscall.O_RDONLY); errno != syscall.EACCES {
		t.Errorf("a group member opens the manager's 0600 file: %v, want EACCES", errno)
	}
	if _, _, errno := n.Open(as(tOwner, tGroup), syscall.O_RDONLY); errno != syscall.EACCES {
		t.Errorf("the batch's owner opens the manager's 0600 file: %v, want EACCES", errno)
	}
	if _, _, errno := n.Open(as(tManager, tManager), syscall.O_WRONLY); errno != syscall.EROFS {
		t.Errorf("open for writing: %v, want EROFS", errno)
	}
	if len(fake.opened) != 0 {
		t.Fatalf("refused opens reached the reader: %v", fake.opened)
	}
	h, _, errno := n.Open(as(tManager, tManager), syscall.O_RDONLY)
	if errno != 0 {
		t.Fatalf("the manager opens its own 0600 file: %v", errno)
	}
	res, errno := h.(gofs.FileReader).Read(context.Background(), make([]byte, 64), 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if b, _ := res.Bytes(make([]byte, 64)); string(b) != "md5-of-s" {
		t.Errorf("read %q", b)
	}
	a, _, _ := walk(t, r, "ws1/7/run/a.txt")
	if _, _, errno := a.(*entryNode).Open(as(tMember, tGroup), syscall.O_RDONLY); errno != 0 {
		t.Errorf("a group member opens a 0644 file: %v", errno)
	}
	if _, _, errno := a.(*entryNode).Open(as(9999, 9999), syscall.O_RDONLY); errno != syscall.EACCES && errno != syscall.ENOENT {
		t.Errorf("an outsider opens a file: %v", errno)
	}
}

func TestNodeXattrs(t *testing.T) {
	fake, r := newFakeTree(t)
	get := func(node gofs.InodeEmbedder, name string) string {
		t.Helper()
		buf := make([]byte, 256)
		n, errno := node.(gofs.NodeGetxattrer).Getxattr(as(0, 0), name, buf)
		if errno != 0 {
			t.Errorf("getxattr %s: %v", name, errno)
		}
		return string(buf[:n])
	}
	b, _, _ := walk(t, r, "ws1/7")
	if got := get(b, "user.tapefs.state"); got != "CACHED_SYNCED" {
		t.Errorf("batch state %q", got)
	}
	if got := get(b, "user.tapefs.id"); got != "7" {
		t.Errorf("batch id %q", got)
	}
	a, _, _ := walk(t, r, "ws1/7/run/a.txt")
	for name, want := range map[string]string{
		"user.tapefs.state": "offline", "user.tapefs.md5": "md5-of-a",
		"user.tapefs.tapes": "TF0002,TF0001", "user.tapefs.batch": "7",
	} {
		if got := get(a, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	buf := make([]byte, 256)
	n, errno := a.(gofs.NodeListxattrer).Listxattr(as(0, 0), buf)
	names := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
	if errno != 0 || !slices.Equal(names, []string{"user.tapefs.state", "user.tapefs.md5", "user.tapefs.batch", "user.tapefs.tapes"}) {
		t.Errorf("listxattr: %q %v", names, errno)
	}
	// Labels and ACLs are not supported (ls -l stops asking for them);
	// another user.* name is merely absent.
	ws, _, _ := walk(t, r, "ws1")
	for _, n := range []gofs.InodeEmbedder{r, ws, b, a} {
		for attr, want := range map[string]syscall.Errno{
			"security.selinux": syscall.EOPNOTSUPP, "system.posix_acl_access": syscall.EOPNOTSUPP,
			"system.posix_acl_default": syscall.EOPNOTSUPP, "security.capability": syscall.EOPNOTSUPP,
			"trusted.x": syscall.EOPNOTSUPP, "user.other": syscall.ENODATA,
		} {
			if _, errno := n.(gofs.NodeGetxattrer).Getxattr(as(0, 0), attr, buf); errno != want {
				t.Errorf("%T: getxattr %s: %v, want %v", n, attr, errno, want)
			}
		}
	}
	// Writing user.tapefs.recall queues a recall of the file.
	if errno := a.(gofs.NodeSetxattrer).Setxattr(as(tMember, tGroup), "user.tapefs.recall", nil, 0); errno != 0 || !slices.Equal(fake.recalled, []uint64{101}) {
		t.Errorf("setxattr recall: %v, recalled %v", errno, fake.recalled)
	}
}

// TestNodeRemoveAsksTheRule: rm inside a batch and rmdir of the batch ask
// the surface as the caller: a member is refused (EACCES) and nothing is
// removed; the batch's owner may.
func TestNodeRemoveAsksTheRule(t *testing.T) {
	fake, r := newFakeTree(t)
	ws, _, _ := walk(t, r, "ws1")
	run, _, _ := walk(t, r, "ws1/7/run")
	if errno := run.(*entryNode).Unlink(as(tMember, tGroup), "a.txt"); errno != syscall.EACCES {
		t.Errorf("a member unlinks a.txt: %v, want EACCES", errno)
	}
	if errno := ws.(*wsDir).Rmdir(as(tMember, tGroup), "7"); errno != syscall.EACCES {
		t.Errorf("a member removes batch 7: %v, want EACCES", errno)
	}
	if len(fake.hidden)+len(fake.removed) != 0 {
		t.Fatalf("refused removals went through: entries %v batches %v", fake.hidden, fake.removed)
	}
	if errno := ws.(*wsDir).Rmdir(as(tOwner, tGroup), "7"); errno != syscall.ENOTEMPTY {
		t.Errorf("the owner removes batch 7 before emptying it: %v, want ENOTEMPTY", errno)
	}
	for _, name := range []string{"a.txt", "s.txt", "l"} {
		if errno := run.(*entryNode).Unlink(as(tOwner, tGroup), name); errno != 0 {
			t.Errorf("the owner unlinks %s: %v", name, errno)
		}
	}
	b, _, _ := walk(t, r, "ws1/7")
	if errno := b.(*batchDir).Rmdir(as(tOwner, tGroup), "run"); errno != 0 {
		t.Errorf("the owner removes run/: %v", errno)
	}
	if errno := ws.(*wsDir).Rmdir(as(tOwner, tGroup), "7"); errno != 0 || !slices.Equal(fake.removed, []uint64{7}) {
		t.Errorf("the owner removes the emptied batch 7: %v (removed %v)", errno, fake.removed)
	}
}

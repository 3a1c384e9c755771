package fs

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/tapefs/tapefs/archive"
	"golang.org/x/sys/unix"
)

// putNode is a file or directory of a workspace's put/: a go-fuse loopback
// node onto the cache staging directory, wrapped to tell the engine what
// happens in each top-level entry (opens, closes, changes) and to fix what
// the plain loopback gets wrong under another root (hard links, modes).
// The root of put/ is a putNode too; every node of one put/ shares its
// LoopbackRoot.
type putNode struct {
	*gofs.LoopbackNode
	fsys *FS
	ws   string
}

// newPutRoot makes the root node of a workspace's put/.
func (f *FS) newPutRoot(ws string) (*putNode, *syscall.Stat_t, error) {
	dir := f.eng.StagingDir(ws)
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return nil, nil, fmt.Errorf("staging directory %s: %w", dir, err)
	}
	root := &gofs.LoopbackRoot{Path: dir, Dev: uint64(st.Dev)}
	n := &putNode{LoopbackNode: &gofs.LoopbackNode{RootData: root}, fsys: f, ws: ws}
	root.RootNode = n
	return n, &st, nil
}

// putRootAttr reports put/ itself as the workspace manager's: the manager
// may put, the group may look.
func putRootAttr(w *archive.Workspace, st *syscall.Stat_t, out *fuse.Attr) {
	out.FromStat(st)
	out.Ino = putIno(w.Name)
	out.Mode = syscall.S_IFDIR | 0o750
	out.Uid, out.Gid = w.Manager, w.Group
}

// WrapChild wraps every node the loopback makes below put/.
func (n *putNode) WrapChild(ctx context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	if ln, ok := ops.(*gofs.LoopbackNode); ok {
		return &putNode{LoopbackNode: ln, fsys: n.fsys, ws: n.ws}
	}
	return ops
}

func (n *putNode) rootInode() *gofs.Inode { return n.RootData.RootNode.EmbeddedInode() }

func (n *putNode) isRoot() bool { return n.EmbeddedInode() == n.rootInode() }

// entry names the top-level entry of put/ that holds the child name of n
// (name "": n itself); "" for put/ itself and for a node that is in no
// directory any more (an unlinked file still open).
func (n *putNode) entry(name string) string {
	root := n.rootInode()
	p := n.EmbeddedInode()
	if p == root {
		return name
	}
	for {
		pname, parent := p.Parent()
		switch parent {
		case nil:
			return ""
		case root:
			return pname
		}
		p = parent
	}
}

// changed tells the engine that an entry changed.
func (n *putNode) changed(entry string) {
	if entry != "" {
		n.fsys.eng.EntryChanged(n.ws, entry)
	}
}

// refuse logs a refused operation in put/ and returns errno.
func (n *putNode) refuse(ctx context.Context, op, name string, errno syscall.Errno) syscall.Errno {
	p := filepath.Join(n.Path(nil), name)
	ev := n.fsys.log.Warn().Str("op", op).Str("path", p).Str("errno", errnoName(errno))
	if uid, _, ok := caller(ctx); ok {
		ev = ev.Uint32("uid", uid)
	}
	ev.Msg("operation refused")
	return errno
}

// fixMode gives a new file or directory the permission bits the caller
// asked for. The kernel has applied the caller's umask already; the
// loopback applies the daemon's again and drops setuid, setgid and sticky
// bits (it passes raw bits through os.FileMode). Bits the file system added
// itself (setgid inherited from the directory) are kept.
func (n *putNode) fixMode(name string, want uint32, attr *fuse.Attr) {
	want &= 0o7777
	have := attr.Mode & 0o7777
	if want&^have == 0 {
		return
	}
	l, errno := n.locate(name)
	if errno == 0 {
		errno = gofsErrno(unix.Fchmodat(l.dir, l.name, have|want, 0))
		l.close()
	}
	if errno != 0 {
		n.fsys.log.Warn().Str("errno", errnoName(errno)).Str("workspace", n.ws).Str("path", path.Join(n.Path(n.rootInode()), name)).
			Msg("cannot set the mode of a new file in put/")
		return
	}
	attr.Mode = attr.Mode&^0o7777 | have | want
}

package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/tapefs/tapefs/archive"
)

// pageSize is how many entries a listing reads from the catalog in one
// transaction.
const pageSize = 256

// listed is one child produced by a listing, with the record it came from
// so that READDIRPLUS makes its inode without reading the catalog again.
type listed struct {
	de    fuse.DirEntry
	file  *archive.File
	batch *archive.Batch
	ws    *archive.Workspace
	// bare: listed for a caller that gets no attributes (attrs.go), by
	// name and type only.
	bare bool
}

// catalogDir is an open directory listed from the catalog a page at a
// time: a listing of a huge batch directory costs one short transaction per
// page and flat memory, and never touches tape. go-fuse calls its methods
// with the handle's lock held.
type catalogDir struct {
	// fetch returns the entries after cursor ("" = from the start) and the
	// cursor after them; more is false after the last page. A page may be
	// empty while more is true (every entry in it was removed). ctx is
	// the request's that reads the page.
	fetch func(ctx context.Context, cursor string) (items []listed, next string, more bool, errno syscall.Errno)
	// child makes the inode of a listed entry and fills out; nil sends
	// the name to lookup.
	child func(ctx context.Context, it *listed, out *fuse.EntryOut) *gofs.Inode
	// lookup is the directory's Lookup, for a name that is not the last
	// one listed.
	lookup func(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno)

	// self and parent are the inode numbers of "." and "..", listed
	// first as a local file system does.
	self, parent uint64

	buf     []listed
	cursor  string
	started bool
	more    bool
	pos     uint64 // entries produced: the d_off of the last one
	last    listed
	hasLast bool
}

func (d *catalogDir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	for len(d.buf) == 0 && (!d.started || d.more) {
		items, next, more, errno := d.fetch(ctx, d.cursor)
		if errno != 0 {
			return nil, errno
		}
		if !d.started && d.self != 0 {
			items = append([]listed{
				{de: fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: d.self}},
				{de: fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: d.parent}},
			}, items...)
		}
		d.started, d.buf, d.cursor, d.more = true, items, next, more
	}
	if len(d.buf) == 0 {
		return nil, 0
	}
	d.last, d.hasLast = d.buf[0], true
	d.buf = d.buf[1:]
	d.pos++
	d.last.de.Off = d.pos
	de := d.last.de
	return &de, 0
}

// Seekdir restarts the listing and skips to the off-th entry. Offsets are
// ordinals, so a seek after entries were removed lands a little off, as
// telldir cookies do on many file systems; rewinddir (0) is exact.
func (d *catalogDir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == d.pos {
		return 0
	}
	d.buf, d.cursor, d.started, d.more, d.pos, d.hasLast = nil, "", false, false, 0, false
	for d.pos < off {
		de, errno := d.Readdirent(ctx)
		if errno != 0 {
			return errno
		}
		if de == nil {
			break
		}
	}
	return 0
}

// Lookup gives the attributes of an entry a READDIRPLUS lists (go-fuse
// calls it for each). An error leaves the entry without them (the kernel
// then lists its name and type and makes no inode): what a bare entry
// gets (attrs.go).
func (d *catalogDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if d.hasLast && d.last.de.Name == name {
		if d.last.bare {
			return nil, syscall.ENOENT
		}
		if ch := d.child(ctx, &d.last, out); ch != nil {
			return ch, 0
		}
	}
	return d.lookup(ctx, name, out)
}

func (d *catalogDir) Releasedir(ctx context.Context, flags uint32) {}

// childPage lists a page of a batch directory (parent 0: the top level),
// skipping removed entries; bare pages carry names and types only (no
// record: the entries' attributes are not wanted, attrs.go).
func (f *FS) childPage(batch, parent uint64, cursor string, bare bool) (items []listed, next string, more bool, errno syscall.Errno) {
	errno = f.view("readdir", func(tx archive.Snapshot) error {
		if bare {
			names, err := tx.Names(batch, parent, cursor, pageSize)
			if err != nil {
				return err
			}
			more, next = len(names) == pageSize, cursor
			for i := range names {
				n := &names[i]
				next = n.Name
				if !n.Removed {
					items = append(items, listed{de: fuse.DirEntry{Name: n.Name, Mode: fileMode(n.Type), Ino: fileIno(n.DataID)}, bare: true})
				}
			}
			return nil
		}
		files, err := tx.Children(batch, parent, cursor, pageSize)
		if err != nil {
			return err
		}
		more, next = len(files) == pageSize, cursor
		for i := range files {
			file := &files[i]
			next = file.Name
			if !file.Removed {
				items = append(items, listed{
					de:   fuse.DirEntry{Name: file.Name, Mode: fileMode(file.Type), Ino: fileIno(file.DataID())},
					file: file,
				})
			}
		}
		return nil
	})
	return items, next, more, errno
}

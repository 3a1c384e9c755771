package fs

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tapefs/tapefs/archive"
)

// Extended attributes of the read-only tree: the batch record on a batch
// directory, the file's state, md5, batch and tapes on a file. All come
// from the catalog and the cache's index; none needs tape. The only
// writable ones are user.tapefs.recall.

func (b *batchDir) attrs() (attrMap, syscall.Errno) {
	var bt archive.Batch
	errno := b.fsys.view("getxattr", func(tx archive.Snapshot) error {
		var err error
		bt, err = liveBatch(tx, b.ws, b.id)
		return err
	})
	var m attrMap
	if errno != 0 {
		return m, errno
	}
	m.add(xattrID, strconv.FormatUint(bt.ID, 10))
	m.add(xattrTag, bt.Tag)
	m.add(xattrState, string(bt.State))
	m.add(xattrFiles, strconv.FormatInt(bt.Files, 10))
	m.add(xattrBytes, strconv.FormatInt(bt.Bytes, 10))
	m.add(xattrCreated, bt.Created.UTC().Format(time.RFC3339))
	if !bt.Synced.IsZero() {
		m.add(xattrSynced, bt.Synced.UTC().Format(time.RFC3339))
	}
	if r := bt.Recall; r != nil {
		m.add(xattrQueue, strconv.Itoa(r.Files))
		if r.Files > r.Held {
			m.add(xattrETA, etaSeconds(r.ETA, r.At))
		}
	}
	if bt.Removal.Hidden > 0 {
		m.add(xattrRemoving, strconv.FormatInt(bt.Removal.Hidden, 10)+" hidden since "+bt.Removal.Started.UTC().Format(time.RFC3339))
	}
	return m, 0
}

func (b *batchDir) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getAttr(b.attrs, attr, dest)
}

func (b *batchDir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listAttrs(b.attrs, dest)
}

// Setxattr user.tapefs.recall recalls the whole batch, in tape order.
func (b *batchDir) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if attr != xattrRecall {
		return b.refuse(ctx, "setxattr "+attr, "", syscall.EROFS)
	}
	if err := b.fsys.eng.RecallBatch(whoCalls(ctx), b.id); err != nil {
		errno := errnoOf(err)
		b.fsys.log.Error().Err(err).Str("workspace", b.ws).Uint64("batch", b.id).Msg("recall of batch refused")
		return errno
	}
	b.fsys.log.Info().Str("workspace", b.ws).Uint64("batch", b.id).Msg("recall of batch queued")
	return 0
}

func (n *entryNode) attrs() (attrMap, syscall.Errno) {
	var m attrMap
	if n.typ == archive.TypeSymlink {
		// The kernel allows user.* attributes on files and directories
		// only.
		return m, 0
	}
	var file archive.File
	errno := n.fsys.view("getxattr", func(tx archive.Snapshot) error {
		var err error
		file, err = tx.File(n.id)
		return err
	})
	if errno != 0 {
		return m, errno
	}
	if file.Type == archive.TypeFile {
		m.add(xattrState, string(file.State))
		if r := file.Recall; r != nil {
			m.add(xattrQueue, strconv.Itoa(r.Position)+"/"+strconv.Itoa(r.Of))
			if !r.Held {
				m.add(xattrETA, etaSeconds(r.ETA, r.At))
			}
		}
		if file.MD5 != "" {
			m.add(xattrMD5, file.MD5)
		}
	}
	m.add(xattrBatch, strconv.FormatUint(file.Batch, 10))
	if tapes := volsers(file.Copies); tapes != "" {
		m.add(xattrTapes, tapes)
	}
	return m, 0
}

// volsers lists the cartridges holding copies, in order, once each.
func volsers(copies []archive.Copy) string {
	var vs []string
	for _, c := range copies {
		if !slices.Contains(vs, c.VOLSER) {
			vs = append(vs, c.VOLSER)
		}
	}
	return strings.Join(vs, ",")
}

func (n *entryNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr == xattrMD5 && n.typ == archive.TypeFile {
		m, errno := n.attrs() // as the caller may see it
		if errno != 0 {
			return 0, errno
		}
		if sz, errno := m.get(dest, attr); errno != syscall.ENODATA {
			return sz, errno
		}
		// Right after a seal the md5 is still being computed: wait for it.
		sum, err := n.fsys.eng.Checksum(ctx, n.id)
		if err != nil {
			return 0, errnoOf(err)
		}
		if sum == "" {
			return 0, syscall.ENODATA
		}
		return xattrValue(dest, sum)
	}
	return getAttr(n.attrs, attr, dest)
}

func (n *entryNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listAttrs(n.attrs, dest)
}

// Setxattr user.tapefs.recall on a file queues its recall without reading.
func (n *entryNode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if attr != xattrRecall || n.typ != archive.TypeFile {
		return n.refuse(ctx, "setxattr "+attr, "", syscall.EROFS)
	}
	if err := n.fsys.eng.Recall(whoCalls(ctx), n.id); err != nil {
		n.fsys.log.Error().Err(err).Str("workspace", n.ws).Uint64("batch", n.batch).Uint64("file", n.id).Msg("recall refused")
		return errnoOf(err)
	}
	n.fsys.log.Info().Str("workspace", n.ws).Uint64("batch", n.batch).Uint64("file", n.id).Msg("recall queued")
	return 0
}

// getAttr answers getxattr of a user.tapefs.* name from a node's attributes;
// other names are not ours (foreignXattr) and cost no catalog read.
func getAttr(attrs func() (attrMap, syscall.Errno), attr string, dest []byte) (uint32, syscall.Errno) {
	if !strings.HasPrefix(attr, xattrPrefix) {
		return 0, foreignXattr(attr)
	}
	m, errno := attrs()
	if errno != 0 {
		return 0, errno
	}
	return m.get(dest, attr)
}

// listAttrs answers listxattr from a node's attributes.
func listAttrs(attrs func() (attrMap, syscall.Errno), dest []byte) (uint32, syscall.Errno) {
	m, errno := attrs()
	if errno != 0 {
		return 0, errno
	}
	return xattrList(dest, m.names)
}

// foreignXattr answers getxattr of a name the read-only tree does not
// keep. The tree has user.* attributes (user.tapefs.*), so another user.*
// name is simply absent (ENODATA). It keeps no security labels, ACLs or
// trusted.* attributes at all, and says so: EOPNOTSUPP, as a local file
// system mounted without them does. That answer is what makes `ls -l`
// cheap: it asks security.selinux and system.posix_acl_access of every
// entry it lists, the kernel caches no failed getxattr (each is a FUSE
// round trip), but ls stops asking a device once it answered "not
// supported" — ENODATA ("this file has none") cost two round trips per
// entry of a listing. Tools that copy attributes (cp -a, rsync -AX, tar
// --acls) treat it as a source without ACLs and use the mode bits.
func foreignXattr(attr string) syscall.Errno {
	if strings.HasPrefix(attr, "user.") {
		return syscall.ENODATA
	}
	return syscall.EOPNOTSUPP
}

// etaSeconds is the whole seconds left of an estimate made at at, rounded
// up: "0" only once the bytes are due.
func etaSeconds(eta time.Duration, at time.Time) string {
	left := eta - time.Since(at)
	if left <= 0 {
		return "0"
	}
	return strconv.FormatInt(int64((left+time.Second-1)/time.Second), 10)
}

package fs

import (
	"strings"
	"syscall"
)

// The user.tapefs.* extended attributes (DESIGN.md §1).
const (
	xattrPrefix  = "user.tapefs."
	xattrID      = xattrPrefix + "id"
	xattrTag     = xattrPrefix + "tag"
	xattrState   = xattrPrefix + "state"
	xattrFiles   = xattrPrefix + "files"
	xattrBytes   = xattrPrefix + "bytes"
	xattrCreated = xattrPrefix + "created"
	xattrSynced  = xattrPrefix + "synced"
	// xattrRemoving, on a batch directory while a removal inside it is in
	// progress: how many entries are hidden, since when.
	xattrRemoving = xattrPrefix + "removing"
	xattrMD5      = xattrPrefix + "md5"
	xattrBatch    = xattrPrefix + "batch"
	xattrTapes    = xattrPrefix + "tapes"
	xattrError    = xattrPrefix + "error"
	// xattrQueue and xattrETA, while a recall is queued (archive/eta.go):
	// on a file its place in the queue, "POS/N", and the whole seconds
	// until its bytes are expected in the cache (absent while its
	// workspace's byte cap holds it back: readers must catch up first);
	// on a batch directory how many of its files are queued and the
	// seconds until the last of them is expected.
	xattrQueue  = xattrPrefix + "queue"
	xattrETA    = xattrPrefix + "eta"
	xattrRecall = xattrPrefix + "recall" // write only
	xattrSeal   = xattrPrefix + "seal"   // write only

	securityCapability = "security.capability"
	aclAccess          = "system.posix_acl_access"
	aclDefault         = "system.posix_acl_default"
)

// xattrValue answers getxattr(2): the size when dest is too small (go-fuse
// turns ERANGE into the size for a size query).
func xattrValue(dest []byte, value string) (uint32, syscall.Errno) {
	if len(dest) < len(value) {
		return uint32(len(value)), syscall.ERANGE
	}
	return uint32(copy(dest, value)), 0
}

// xattrList answers listxattr(2) with NUL-terminated names.
func xattrList(dest []byte, names []string) (uint32, syscall.Errno) {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(0)
	}
	return xattrValue(dest, b.String())
}

// attrMap is a node's user.tapefs.* attributes in listing order.
type attrMap struct {
	names  []string
	values map[string]string
}

func (m *attrMap) add(name, value string) {
	if m.values == nil {
		m.values = map[string]string{}
	}
	m.names = append(m.names, name)
	m.values[name] = value
}

func (m *attrMap) get(dest []byte, name string) (uint32, syscall.Errno) {
	v, ok := m.values[name]
	if !ok {
		return 0, syscall.ENODATA
	}
	return xattrValue(dest, v)
}

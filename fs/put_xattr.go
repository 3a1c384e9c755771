package fs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tapefs/tapefs/archive"
)

// Extended attributes in put/: the files' own (stored in the staging
// directory, not archived), plus user.tapefs.state and user.tapefs.error
// of the entry and the writable user.tapefs.seal.

func (n *putNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr == securityCapability || attr == aclAccess || attr == aclDefault {
		// What go-fuse's IgnoreSecurityLabels answered for the whole
		// mount before the read-only tree took its own (foreignXattr):
		// put/ shows no ACLs, whatever the staging directory holds.
		return 0, syscall.ENODATA
	}
	if !strings.HasPrefix(attr, xattrPrefix) {
		return n.loopGetxattr(attr, dest)
	}
	entry := n.entry("")
	if entry == "" {
		return 0, syscall.ENODATA
	}
	state, why := n.fsys.eng.EntryState(n.ws, entry)
	switch {
	case attr == xattrState:
		return xattrValue(dest, string(state))
	case attr == xattrError && why != "":
		return xattrValue(dest, why)
	}
	return 0, syscall.ENODATA
}

// topLevel reports whether n is an entry of put/ (not put/ itself, not
// inside an entry).
func (n *putNode) topLevel() bool {
	_, parent := n.Parent()
	return parent != nil && parent == n.rootInode()
}

func (n *putNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	names, errno := n.ownXattrs()
	if errno != 0 {
		return 0, errno
	}
	if n.topLevel() {
		names = append(names, xattrState)
		if state, _ := n.fsys.eng.EntryState(n.ws, n.entry("")); state == archive.EntryRejected || state == archive.EntryWriteFailed {
			names = append(names, xattrError)
		}
	}
	return xattrList(dest, names)
}

// ownXattrs lists the xattrs stored on the staged file, without
// user.tapefs.* (which the mount makes up).
func (n *putNode) ownXattrs() ([]string, syscall.Errno) {
	buf := make([]byte, 1024)
	for {
		sz, errno := n.loopListxattr(buf)
		if errno == syscall.ERANGE {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if errno != 0 {
			return nil, errno
		}
		var names []string
		for _, name := range strings.Split(string(buf[:sz]), "\x00") {
			if name != "" && !strings.HasPrefix(name, xattrPrefix) {
				names = append(names, name)
			}
		}
		return slices.Clip(names), 0
	}
}

func (n *putNode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	switch {
	case attr == xattrSeal:
		return n.seal(ctx, strings.TrimSpace(string(data)))
	case strings.HasPrefix(attr, xattrPrefix):
		return n.refuse(ctx, "setxattr "+attr, "", syscall.EPERM)
	}
	n.changed(n.entry(""))
	return n.loopSetxattr(attr, data, flags)
}

func (n *putNode) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if strings.HasPrefix(attr, xattrPrefix) {
		return n.refuse(ctx, "removexattr "+attr, "", syscall.EPERM)
	}
	n.changed(n.entry(""))
	return n.loopRemovexattr(attr)
}

// releaseWait bounds how long a seal request waits for the RELEASE of
// handles already closed.
const releaseWait = 2 * time.Second

// seal seals the entry holding n now (setfattr -n user.tapefs.seal [-v
// TAG]). The batch belongs to the entry's owner. A refused seal leaves the
// entry in put/ with user.tapefs.state=rejected and says why in
// user.tapefs.error; the errno tells the cause (EDQUOT, EFBIG, EBUSY).
func (n *putNode) seal(ctx context.Context, tag string) syscall.Errno {
	entry := n.entry("")
	if entry == "" {
		return n.refuse(ctx, "seal (put/ itself is not an entry)", "", syscall.EINVAL)
	}
	log := n.fsys.log.With().Str("workspace", n.ws).Str("entry", entry).Logger()
	if state, why := n.fsys.eng.EntryState(n.ws, entry); state == archive.EntryWriteFailed {
		log.Warn().Str("reason", why).Msg("sealing on request an entry in which a write failed: it is archived as it stands")
	}
	n.fsys.open.waitReleased(ctx, entryKey{n.ws, entry}, releaseWait)
	b, err := n.fsys.eng.Seal(ctx, whoCalls(ctx), n.ws, entry, tag)
	if err != nil {
		errno := errnoOf(err)
		var rej *archive.RejectError
		switch {
		case errors.As(err, &rej):
			log.Warn().Str("errno", errnoName(errno)).Str("reason", rej.Reason).Msg("seal rejected; the entry stays in put/")
		case errno == syscall.EIO:
			log.Error().Err(err).Str("errno", "EIO").Msg("seal failed")
		default:
			log.Warn().Err(err).Str("errno", errnoName(errno)).Msg("seal refused")
		}
		return errno
	}
	log.Info().Uint64("batch", b.ID).Msg("entry sealed on request")
	// The entry left put/: drop the kernel's cached name. Not from this
	// request's goroutine, which the kernel is waiting on.
	root := n.rootInode()
	go root.NotifyEntry(entry)
	return 0
}

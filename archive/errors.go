package archive

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/tapefs/tapefs/archive/errkind"
	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/human"
)

// The errors callers tell apart with errors.Is. Each has a kind in
// errkind.Table, which says what the mount, the control API and the
// command line answer with it; KindOf finds it.
var (
	ErrNotFound = catalog.ErrNotFound // no such workspace, batch or file (or one the caller may not see)
	ErrExists   = catalog.ErrExists
	ErrNoSpace  = cache.ErrNoSpace // the disk cache is full
	ErrBusy     = cache.ErrBusy    // a cached object is open or pinned
	// ErrDenied: the access rule (access.go) refuses the caller.
	ErrDenied = errors.New("permission denied")
	// ErrConflict: the batch is not in a state that allows the request.
	ErrConflict = errors.New("not possible in this state")
	// ErrInvalid: a malformed request or value.
	ErrInvalid = errors.New("invalid request")
	// ErrSealing is returned for an entry being sealed: it may not be opened.
	ErrSealing = errors.New("entry is being sealed")
)

// Causes of a RejectError, for errors.Is; each has its own kind.
var (
	ErrQuota       = errors.New("workspace quota exceeded")
	ErrFileTooBig  = errors.New("file larger than the maximum file size")
	ErrEntryOpen   = errors.New("files of the entry are open")
	ErrUnsupported = errors.New("file type cannot be archived")
)

// RejectError says why an entry could not be sealed; the entry is left
// untouched in put/.
type RejectError struct {
	Workspace, Entry string
	Reason           string
	Cause            error // ErrQuota, ErrFileTooBig, ErrEntryOpen or ErrUnsupported
}

// Unwrap gives the cause.
func (e *RejectError) Unwrap() error { return e.Cause }

func (e *RejectError) Error() string {
	if e.Entry == cliPut {
		// The command line prefixes its name; the reason names the rest.
		return "refused: " + e.Reason
	}
	return "seal " + e.Workspace + "/" + e.Entry + ": rejected: " + e.Reason
}

// kinds lists sentinel errors with their kinds, most specific first: a
// RejectError's cause decides before anything it wraps.
var kinds = []struct {
	err  error
	kind errkind.Kind
}{
	{ErrQuota, errkind.Quota},
	{ErrFileTooBig, errkind.TooBig},
	{ErrEntryOpen, errkind.EntryOpen},
	{ErrUnsupported, errkind.Unsupported},
	{ErrDenied, errkind.Denied},
	{ErrSealing, errkind.Sealing},
	{ErrConflict, errkind.Conflict},
	{ErrInvalid, errkind.Invalid},
	{ErrNoSpace, errkind.NoSpace},
	{ErrBusy, errkind.Busy},
	{ErrNotFound, errkind.NotFound},
	{ErrExists, errkind.Exists},
	{context.Canceled, errkind.Interrupted},
	{context.DeadlineExceeded, errkind.Interrupted},
	{errNoCopy, errkind.TapeFailed},
}

// KindOf classifies an error of the engine (nil: errkind.OK). Errors it
// does not know are errkind.Internal.
func KindOf(err error) errkind.Kind {
	if err == nil {
		return errkind.OK
	}
	if k, ok := sentinelKind(err); ok {
		return k
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT:
			return errkind.NotFound
		case syscall.EACCES, syscall.EPERM:
			return errkind.Denied
		case syscall.ENOSPC:
			return errkind.NoSpace
		case syscall.EROFS:
			return errkind.ReadOnly
		}
	}
	return errkind.Internal
}

func sentinelKind(err error) (errkind.Kind, bool) {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.kind, true
		}
	}
	return "", false
}

// Errno is what the mount answers for an error: a system call error the
// engine passed through keeps its errno; everything else by its kind.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if k, ok := sentinelKind(err); ok {
		return errkind.Of(k).Errno
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return errkind.Of(errkind.Internal).Errno
}

// quotaReason says why an entry or a put does not fit the workspace's
// quota, in the units people read (the page, status, getfattr show it).
func quotaReason(need int64, workspace string, left, quota int64) string {
	return fmt.Sprintf("needs %s but workspace %s has %s of its %s quota left; remove batches or raise the quota",
		human.Size(need), workspace, human.Size(max(left, 0)), human.Size(quota))
}

// tooBigReason says that a file is over the maximum file size. The exact
// byte counts follow the rounded ones: a file one byte over the limit
// would otherwise read as the limit itself.
func tooBigReason(path string, size, limit int64) string {
	return fmt.Sprintf("%s is %s, more than the maximum file size of %s; split it or ask an administrator to raise --max-file-size",
		path, exact(size), exact(limit))
}

func exact(n int64) string {
	if n < 1024 {
		return human.Size(n)
	}
	return fmt.Sprintf("%s (%d bytes)", human.Size(n), n)
}

// quotaText is a workspace's quota in words: "quota 10.0 MiB", "no quota".
func quotaText(q int64) string {
	if q <= 0 {
		return "no quota"
	}
	return "quota " + human.Size(q)
}

// Package errkind is the one table from the kind of an archive error to
// what each face of tapefs answers with it: the errno of the mount, the
// HTTP status of the control API and the exit code of the command line.
//
// It lives apart from package archive (archive/errors.go classifies
// errors into kinds) only so that the command line, which must not link
// the catalog, cache or tape packages, can read the same table through
// package api.
package errkind

import (
	"net/http"
	"syscall"
)

// Kind names a class of error that every face answers the same way.
type Kind string

const (
	OK          Kind = ""
	NotFound    Kind = "not-found"   // no such workspace, batch or file, or one the caller may not see
	Exists      Kind = "exists"      // already exists
	Conflict    Kind = "conflict"    // the batch is not in a state that allows it (not deleted, not on tape, ...)
	Denied      Kind = "denied"      // the access rule says no
	ReadOnly    Kind = "read-only"   // the holdings are not written in place
	Invalid     Kind = "invalid"     // a malformed request or value
	Sealing     Kind = "sealing"     // the put/ entry is being sealed
	Busy        Kind = "busy"        // cached object open or pinned
	NoSpace     Kind = "no-space"    // the disk cache is full
	Quota       Kind = "quota"       // seal refused: workspace quota
	TooBig      Kind = "too-big"     // seal refused: a file is larger than the maximum file size
	EntryOpen   Kind = "entry-open"  // seal refused: files of the entry are open
	Unsupported Kind = "unsupported" // seal refused: a file type tapefs cannot archive
	Interrupted Kind = "interrupted" // the caller gave up (signal, timeout); the work goes on
	TapeFailed  Kind = "tape"        // the bytes could not be read back (tape, cache object)
	NoDaemon    Kind = "no-daemon"   // the command line found no daemon (client side only)
	Internal    Kind = "internal"    // anything else: a bug or a broken disk; logged
)

// Answer is what each face says for a kind.
type Answer struct {
	Errno syscall.Errno // the mount
	HTTP  int           // the control API (0: never sent over HTTP)
	Exit  int           // the command line
}

// Exit codes of the command line (`tapefs help exit-codes`).
const (
	ExitOK       = 0
	ExitFailed   = 1
	ExitPartial  = 2
	ExitNoDaemon = 3
	ExitUsage    = 4
)

// Table is the one mapping. Every cause of a refused seal has a status of
// its own, so a client can tell a full quota from a file that is too big
// without parsing the message.
var Table = map[Kind]Answer{
	OK:       {0, http.StatusOK, ExitOK},
	NotFound: {syscall.ENOENT, http.StatusNotFound, ExitFailed},
	Exists:   {syscall.EEXIST, http.StatusConflict, ExitFailed},
	Conflict: {syscall.EBUSY, http.StatusConflict, ExitFailed},
	Denied:   {syscall.EACCES, http.StatusForbidden, ExitFailed},
	ReadOnly: {syscall.EROFS, http.StatusMethodNotAllowed, ExitFailed},
	// A request the daemon refuses as malformed did nothing: 1. Bad
	// usage (4) is decided by the command line before it asks.
	Invalid:     {syscall.EINVAL, http.StatusBadRequest, ExitFailed},
	Sealing:     {syscall.EBUSY, http.StatusTooEarly, ExitFailed},
	Busy:        {syscall.EBUSY, http.StatusLocked, ExitFailed},
	NoSpace:     {syscall.ENOSPC, http.StatusServiceUnavailable, ExitFailed},
	Quota:       {syscall.EDQUOT, http.StatusInsufficientStorage, ExitFailed},
	TooBig:      {syscall.EFBIG, http.StatusRequestEntityTooLarge, ExitFailed},
	EntryOpen:   {syscall.EBUSY, http.StatusPreconditionFailed, ExitFailed},
	Unsupported: {syscall.EPERM, http.StatusUnsupportedMediaType, ExitFailed},
	Interrupted: {syscall.EINTR, http.StatusRequestTimeout, ExitFailed},
	TapeFailed:  {syscall.EIO, http.StatusBadGateway, ExitFailed},
	NoDaemon:    {syscall.ECONNREFUSED, 0, ExitNoDaemon},
	Internal:    {syscall.EIO, http.StatusInternalServerError, ExitFailed},
}

// Of is the answer for a kind; an unknown kind answers as Internal.
func Of(k Kind) Answer {
	if a, ok := Table[k]; ok {
		return a
	}
	return Table[Internal]
}

// FromHTTP is the kind of an HTTP status, for a client that got no kind in
// the body (an old daemon, a proxy). The first kind in Table order with
// that status wins where two share one.
func FromHTTP(status int) Kind {
	if status < 300 {
		return OK
	}
	for _, k := range fromHTTPOrder {
		if Table[k].HTTP == status {
			return k
		}
	}
	return Internal
}

var fromHTTPOrder = []Kind{NotFound, Exists, Denied, ReadOnly, Invalid, Sealing, Busy, NoSpace, Quota, TooBig, EntryOpen, Unsupported, Interrupted, TapeFailed, Internal}

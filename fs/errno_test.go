package fs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/tapefs/tapefs/archive"
)

func TestErrnoOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{context.Canceled, syscall.EINTR},
		{fmt.Errorf("wait for recall: %w", context.Canceled), syscall.EINTR},
		{context.DeadlineExceeded, syscall.EINTR},
		{fmt.Errorf("file 3: %w", archive.ErrNotFound), syscall.ENOENT},
		{archive.ErrExists, syscall.EEXIST},
		{archive.ErrSealing, syscall.EBUSY},
		{archive.ErrNoSpace, syscall.ENOSPC},
		{&archive.RejectError{Cause: archive.ErrQuota, Reason: "needs 10 bytes but workspace w has 0 of its 5-byte quota left"}, syscall.EDQUOT},
		{&archive.RejectError{Cause: archive.ErrFileTooBig, Reason: "x is 9 bytes, more than the maximum file size of 5 bytes"}, syscall.EFBIG},
		{&archive.RejectError{Cause: archive.ErrEntryOpen, Reason: "files inside it are still open; close them"}, syscall.EBUSY},
		{&archive.RejectError{Cause: archive.ErrUnsupported, Reason: "a socket cannot be archived"}, syscall.EPERM},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, syscall.EACCES},
		{errors.Join(nil, syscall.ENOTEMPTY), syscall.ENOTEMPTY},
		{fmt.Errorf("rmdir e/d: %w", archive.ErrNotEmpty), syscall.ENOTEMPTY},
		{fmt.Errorf("unlink e/d: %w", archive.ErrIsDir), syscall.EISDIR},
		{fmt.Errorf("rmdir e/f: %w", archive.ErrNotDir), syscall.ENOTDIR},
		{os.ErrClosed, syscall.EIO},
		{errors.New("md5 mismatch"), syscall.EIO},
	} {
		if got := errnoOf(tc.err); got != tc.want {
			t.Errorf("errnoOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestErrnoName(t *testing.T) {
	if got := errnoName(syscall.EROFS); got != "EROFS" {
		t.Errorf("errnoName(EROFS) = %q", got)
	}
	if got := errnoName(syscall.ELOOP); got == "" {
		t.Errorf("errnoName(ELOOP) is empty")
	}
}

package test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// posixLeftOut are the tests of go-fuse's posixtest.All that are not run
// against put/, each with the reason. Every other test of the map runs
// (all 31 others of go-fuse v2.12.1, Linux: AppendWrite, DirSeek,
// DirectIO, Fallocate, FallocateKeepSize, FcntlFlockSetLk, FdLeak,
// FileBasic, FileLarge, FstatDeleted, Link, LinkUnlinkRename,
// LseekEnxioCheck, LseekHoleSeeksToEOF, MkdirRmdir, NlinkZero, OpenAt,
// OpenSymlinkRace, ParallelFileOpen, ReadDirBasic, ReadDirConsistency,
// RenameOpenDir, RenameOverwriteDestExist, RenameOverwriteDestNoExist,
// SetattrSymlink, SymlinkReadlink, Tmpfile, TruncateFile, TruncateNoFile,
// XAttr, XAttrLarge); the test logs the list it ran.
var posixLeftOut = map[string]string{
	// The test write-locks a file with F_SETLK on one descriptor and
	// expects a read lock from the same process on a second descriptor to
	// fail with EAGAIN. POSIX record locks belong to the process, so that
	// second lock succeeds on a local disk: the test fails the same way on
	// a plain ext4 directory of this machine. It passes only on go-fuse's
	// loopback, which turns them into open-file-description locks in the
	// daemon. put/ is meant to behave like a local directory, and the
	// kernel's own lock handling gives exactly that.
	"FcntlFlockLocksFile": "asserts go-fuse loopback's OFD-lock behaviour; a same-process F_SETLK on a second fd succeeds on local ext4 too (POSIX locks are per process)",
}

// TestPosixSuiteInPut runs go-fuse's posixtest suite in a directory inside
// put/ (one fresh directory per test, all in one entry that a settle time
// of an hour keeps from being sealed under the tests).
func TestPosixSuiteInPut(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "--time-scale", "0", "--settle", "1h")
	base := filepath.Join(d.put("default"), "posix")
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	var ran, left, skipped []string
	for _, name := range names {
		if why, ok := posixLeftOut[name]; ok {
			left = append(left, name+" ("+why+")")
			continue
		}
		ran = append(ran, name)
		fn := posixtest.All[name]
		t.Run(name, func(t *testing.T) {
			// Some tests skip themselves when the file system lacks a
			// feature (their message says which): count them apart.
			defer func() {
				if t.Skipped() {
					skipped = append(skipped, name)
				}
			}()
			dir := filepath.Join(base, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			fn(t, dir)
		})
	}
	for name := range posixLeftOut {
		if posixtest.All[name] == nil {
			t.Errorf("posixLeftOut names %q, which posixtest.All does not have", name)
		}
	}
	t.Logf("posixtest: ran %d of %d: %s", len(ran), len(names), strings.Join(ran, ", "))
	t.Logf("posixtest: left out %d: %s", len(left), strings.Join(left, "; "))
	t.Logf("posixtest: skipped themselves (a feature put/ lacks, see their messages): %s", strings.Join(skipped, ", "))
	if ids := d.batchIDs("default"); len(ids) != 0 {
		t.Errorf("batches %v appeared while the settle time was an hour", ids)
	}
	// What the tests left in put/ survives a restart, still unsealed.
	left1 := scanTree(t, base)
	d.restart()
	left2 := scanTree(t, base)
	if len(left1) != len(left2) {
		t.Errorf("put/posix held %d entries before a restart and %d after", len(left1), len(left2))
	}
	if ids := d.batchIDs("default"); len(ids) != 0 {
		t.Errorf("batches %v appeared after a restart with a settle time of an hour", ids)
	}
}

package test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Metadata of batch trees at local-disk cost (issue 10).

// fuseOps is the daemon's count of FUSE requests of one operation
// (tapefs_fuse_operations_total{op="OP"}).
func fuseOps(t *testing.T, d *daemon, op string) float64 {
	t.Helper()
	resp, err := http.Get(statusURL(d) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	prefix := `tapefs_fuse_operations_total{op="` + op + `"} `
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", sc.Text(), err)
			}
			return n
		}
	}
	t.Fatalf("metrics have no %s line", strings.TrimSpace(prefix))
	return 0
}

// TestLsLongOfBatchAsksNoXattrPerEntry: `ls -l` asks security.selinux and
// system.posix_acl_access of every entry it lists. The kernel caches no
// failed getxattr, so answered "none here" (ENODATA) each was a FUSE round
// trip per entry; answered "not supported" (EOPNOTSUPP), ls stops asking
// the mount after the first. The archive's own attributes stay readable,
// put/ keeps the attributes users set, and cp -a out of a batch works.
func TestLsLongOfBatchAsksNoXattrPerEntry(t *testing.T) {
	d := startDaemon(t, fastFlags()...)
	src := filepath.Join(t.TempDir(), "run")
	// d0 is big enough that a 32 KiB getdents buffer takes several
	// requests to list it.
	const dirs, files, bigDir = 3, 40, 1000
	total := 0
	for i := 0; i < dirs; i++ {
		dir := filepath.Join(src, fmt.Sprintf("d%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		n := files
		if i == 0 {
			n = bigDir
		}
		total += n
		for j := 0; j < n; j++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", j)), []byte(fmt.Sprintf("%d/%d\n", i, j)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	id := d.cpSynced(src, 90*time.Second)
	batch := filepath.Join(d.ws("default"), id, "run")

	before, pages := fuseOps(t, d, "getxattr"), fuseOps(t, d, "readdirplus")
	out := sh(t, "/", "ls -lR "+q(batch))
	asked, pages := fuseOps(t, d, "getxattr")-before, fuseOps(t, d, "readdirplus")-pages
	if n := strings.Count(out, "-rw-r--r--"); n != total {
		t.Fatalf("ls -lR lists %d files, want %d:\n%s", n, total, out)
	}
	// Before: one request per entry (security.selinux; go-fuse answered
	// the ACL names itself, uncounted). Now: the first entry's, then none.
	if asked > 4 {
		t.Errorf("ls -lR of %d entries sent %v getxattr requests to the daemon, want at most a few", total+dirs, asked)
	}
	// Directories report st_blksize 1 MiB, so readdir reads each in one
	// request plus the empty one that ends it (32 KiB took 6 for d0).
	if st := stat(t, filepath.Join(batch, "d0")); st.Blksize != 1<<20 {
		t.Errorf("st_blksize of a batch directory: %d, want 1 MiB", st.Blksize)
	}
	if pages > 2*(dirs+1) {
		t.Errorf("ls -lR of %d directories sent %v READDIRPLUS requests, want at most 2 per directory", dirs+1, pages)
	}

	f := filepath.Join(batch, "d1", "f007")
	all := sh(t, "/", "getfattr -d -m - --absolute-names "+q(f))
	for _, name := range []string{"user.tapefs.state=", "user.tapefs.md5=", "user.tapefs.batch=\"" + id + "\"", "user.tapefs.tapes="} {
		if !strings.Contains(all, name) {
			t.Errorf("getfattr -d -m - of a batch file lacks %s:\n%s", name, all)
		}
	}
	if out, err := shErr("/", "getfattr -n security.selinux "+q(f)+" 2>&1"); err == nil || !strings.Contains(out, "Operation not supported") {
		t.Errorf("getfattr security.selinux of a batch file: %v %q, want Operation not supported", err, out)
	}
	if out, err := shErr("/", "getfattr -n user.other "+q(f)+" 2>&1"); err == nil || !strings.Contains(out, "No such attribute") {
		t.Errorf("getfattr user.other of a batch file: %v %q, want No such attribute", err, out)
	}
	if out, err := shErr("/", "getfattr -n system.posix_acl_access "+q(filepath.Join(d.ws("default"), id))+" 2>&1"); err == nil || !strings.Contains(out, "Operation not supported") {
		t.Errorf("getfattr of an ACL on a batch directory: %v %q, want Operation not supported", err, out)
	}

	// cp -a and rsync -aAX copy attributes and ACLs where they can: a
	// tree without ACLs copies cleanly.
	restore := filepath.Join(t.TempDir(), "restore")
	sh(t, "/", "cp -a "+q(batch)+" "+q(restore)+" && diff -r "+q(src)+" "+q(restore))
	synced := filepath.Join(t.TempDir(), "rsync")
	sh(t, "/", "rsync -aAX "+q(batch+"/")+" "+q(synced+"/")+" && diff -r "+q(src)+" "+q(synced))

	// put/ is unchanged: a user's own attribute is kept, ACL names are
	// absent (not "unsupported"), the entry's state is there.
	entry := filepath.Join(d.put("default"), "mine")
	sh(t, "/", "mkdir "+q(entry)+" && echo x >"+q(entry+"/a")+" && setfattr -n user.mine -v kept "+q(entry+"/a"))
	if v := mustXattr(t, entry+"/a", "user.mine"); v != "kept" {
		t.Errorf("user.mine in put/: %q", v)
	}
	if out, err := shErr("/", "getfattr -n system.posix_acl_access "+q(entry+"/a")+" 2>&1"); err == nil || !strings.Contains(out, "No such attribute") {
		t.Errorf("getfattr of an ACL in put/: %v %q, want No such attribute", err, out)
	}
	if v := mustXattr(t, entry, "user.tapefs.state"); v != "pending" {
		t.Errorf("user.tapefs.state of a put/ entry: %q", v)
	}
}

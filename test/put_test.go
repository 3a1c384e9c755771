package test

import (
	"crypto/md5"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// envInt reads a size or count from the environment, for quick runs
// (TAPEFS_E2E_BIG=64M go test ./test/ ...): a number with an optional
// K, M or G (binary) suffix.
func envInt(t *testing.T, name string, def int64) int64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	mult := int64(1)
	switch v[len(v)-1] {
	case 'K', 'k':
		mult = 1 << 10
	case 'M', 'm':
		mult = 1 << 20
	case 'G', 'g':
		mult = 1 << 30
	}
	if mult > 1 {
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a count or size such as 1000 or 64M", name, os.Getenv(name))
	}
	if n*mult != def {
		t.Logf("%s=%d (default %d)", name, n*mult, def)
	}
	return n * mult
}

func fileMD5(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// inodes maps the relative paths under root to their inode numbers.
func inodes(t *testing.T, root string) map[string]uint64 {
	out := map[string]uint64{}
	for rel, e := range scanTree(t, root) {
		out[rel] = e.ino
	}
	return out
}

// TestCpArchiveTreeEvictAndVerify copies a varied tree (2,000 small files,
// a 1 GiB file, odd names, links, modes, owners, old mtimes) into put/
// with cp -a, waits until its batch is on tape, evicts the cache, and
// checks through the mount: metadata without recall (stat, md5 xattr),
// then diff -r and md5sum -c, which recall every file.
func TestCpArchiveTreeEvictAndVerify(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, fastFlags()...)
	src := filepath.Join(t.TempDir(), "run1234")
	makeTree(t, src, treeSpec{
		smallFiles: int(envInt(t, "TAPEFS_E2E_SMALL_FILES", 2000)),
		bigSize:    envInt(t, "TAPEFS_E2E_BIG", 1<<30),
		seed:       1,
	})
	sums := md5Sums(t, src)

	before := d.batchIDs("default")
	t0 := time.Now()
	sh(t, "/", "cp -a "+q(src)+" "+q(d.put("default")+"/"))
	t.Logf("cp -a took %v", time.Since(t0).Round(time.Millisecond))
	id := d.waitSynced("default", before, 8*time.Minute)
	entry := filepath.Join(d.ws("default"), id, "run1234")
	if names := listNames(d.put("default")); len(names) != 0 {
		t.Errorf("put/ after sealing holds %q; want it empty", names)
	}
	for _, a := range []string{"id", "tag", "state", "files", "bytes", "created", "synced"} {
		v, err := xattr(filepath.Join(d.ws("default"), id), "user.tapefs."+a)
		t.Logf("batch %s user.tapefs.%s = %q (%v)", id, a, v, err)
		if err != nil {
			t.Errorf("batch directory: %v", err)
		}
	}
	if v, _ := xattr(filepath.Join(d.ws("default"), id), "user.tapefs.id"); v != id {
		t.Errorf("user.tapefs.id of batch %s is %q", id, v)
	}
	compareTrees(t, src, entry)
	inoBefore := inodes(t, entry)

	d.evict()
	n := checkOffline(t, entry)
	t.Logf("%d files offline after eviction", n)
	compareTrees(t, src, entry)
	inoAfter := inodes(t, entry)
	for rel, ino := range inoBefore {
		if inoAfter[rel] != ino {
			t.Errorf("%q: inode %d before the restart, %d after; want stable inode numbers", rel, ino, inoAfter[rel])
		}
	}
	// md5 recorded at sealing, readable without a recall.
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		got, err := xattr(filepath.Join(entry, rel), "user.tapefs.md5")
		if want := fileMD5(t, p); err != nil || got != want {
			t.Errorf("%q: user.tapefs.md5 %q (%v), want %q", rel, got, err, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.objectFiles(); got != 0 {
		t.Errorf("reading metadata and md5 xattrs of offline files staged %d cache objects; want none", got)
	}
	if st := mustXattr(t, filepath.Join(entry, "big.bin"), "user.tapefs.state"); st != "offline" {
		t.Errorf("big.bin is %q after reading its metadata; want offline", st)
	}

	t0 = time.Now()
	diffTrees(t, src, entry)
	t.Logf("diff -r (recalling every file) took %v", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	checkMD5(t, sums, entry)
	t.Logf("md5sum -c took %v", time.Since(t0).Round(time.Millisecond))
	if st := mustXattr(t, filepath.Join(entry, "big.bin"), "user.tapefs.state"); st != "online" {
		t.Errorf("big.bin is %q after it was read; want online", st)
	}
}

// TestRsyncTwiceMakesTwoBatches rsyncs a tree into put/ (rsync -a writes
// temp files and renames them; -H adds hard links), seals it, then rsyncs
// it again and, over that copy, a changed source (renames over existing
// files, deletions): the second batch has the new content and the first
// keeps the old.
func TestRsyncTwiceMakesTwoBatches(t *testing.T) {
	t.Parallel()
	// A long settle: the entry is sealed only when the test says so.
	d := startDaemon(t, "--time-scale", "0", "--settle", "1h", "--flush-age", "1s", "--recall-linger", "1ms")
	base := t.TempDir()
	src := filepath.Join(base, "data")
	makeTree(t, src, treeSpec{smallFiles: 300, bigSize: 3 << 20, seed: 2})
	v1 := filepath.Join(base, "v1")
	sh(t, "/", "cp -a "+q(src)+" "+q(v1))
	put := d.put("default")

	before := d.batchIDs("default")
	sh(t, "/", "rsync -aH "+q(src+"/")+" "+q(put+"/data/"))
	seal(t, filepath.Join(put, "data"))
	id1 := d.waitSynced("default", before, 2*time.Minute)
	diffTrees(t, v1, filepath.Join(d.ws("default"), id1, "data"))
	compareTrees(t, v1, filepath.Join(d.ws("default"), id1, "data"))

	// Change the source: new content (same size) in a file, a larger big
	// file, a new file, a removed file, a changed mode and symlink.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(src, "names", "with space.txt"), []byte("new content, version 2\n"), 0o644))
	writeBig(t, filepath.Join(src, "big.bin"), 5<<20, 99)
	must(os.WriteFile(filepath.Join(src, "data", "d03", "added in v2"), []byte("added\n"), 0o644))
	must(os.Remove(filepath.Join(src, "data", "d00", "f0000.bin")))
	must(os.Chmod(filepath.Join(src, "modes", "group"), 0o604))
	must(os.Remove(filepath.Join(src, "links", "relative")))
	must(os.Symlink("../names/-dash", filepath.Join(src, "links", "relative")))
	setPastTimes(t, src)

	before = d.batchIDs("default")
	// First the old tree again, then the new one over it.
	sh(t, "/", "rsync -aH "+q(v1+"/")+" "+q(put+"/data/"))
	sh(t, "/", "rsync -aH --delete "+q(src+"/")+" "+q(put+"/data/"))
	diffTrees(t, src, filepath.Join(put, "data"))
	seal(t, filepath.Join(put, "data"))
	id2 := d.waitSynced("default", before, 2*time.Minute)
	if id2 == id1 {
		t.Fatalf("second rsync: batch %s again; want a new batch", id2)
	}
	diffTrees(t, src, filepath.Join(d.ws("default"), id2, "data"))
	compareTrees(t, src, filepath.Join(d.ws("default"), id2, "data"))
	diffTrees(t, v1, filepath.Join(d.ws("default"), id1, "data"))
	compareTrees(t, v1, filepath.Join(d.ws("default"), id1, "data"))
	if ids := d.batchIDs("default"); len(ids) != 2 {
		t.Errorf("batches %v; want exactly %s and %s", ids, id1, id2)
	}
}

// TestMvThenKill9SealsAfterRestart moves a tree into put/ (across file
// systems: mv copies, then removes the source), kills the daemon with
// SIGKILL as soon as mv returns, starts it again on the stale mount, and
// expects the entry to be sealed and synced with identical content.
func TestMvThenKill9SealsAfterRestart(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, fastFlags()...)
	base := t.TempDir()
	src := filepath.Join(base, "moved")
	makeTree(t, src, treeSpec{smallFiles: 300, bigSize: 16 << 20, seed: 3})
	ref := filepath.Join(base, "ref")
	sh(t, "/", "cp -a "+q(src)+" "+q(ref))

	before := d.batchIDs("default")
	sh(t, "/", "mv "+q(src)+" "+q(d.put("default")+"/"))
	d.kill9()
	d.startAfterKill9()
	if _, err := os.Stat(src); !os.IsNotExist(err) {
		t.Errorf("source still there after mv: %v", err)
	}
	id := d.waitSynced("default", before, 2*time.Minute)
	entry := filepath.Join(d.ws("default"), id, "moved")
	diffTrees(t, ref, entry)
	compareTrees(t, ref, entry)
	if ids := d.batchIDs("default"); len(ids) != 1 {
		t.Errorf("batches %v; want one", ids)
	}
	if names := listNames(d.put("default")); len(names) != 0 {
		t.Errorf("put/ holds %q after sealing; want it empty", names)
	}
}

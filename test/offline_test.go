package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// makeTarSource writes the tree of the tar test: random data, a sparse
// file (data, a hole, data, a hole, a tail), text, an empty file and a
// directory of small files.
func makeTarSource(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "small"), 0o755))
	writeBig(t, filepath.Join(root, "random.bin"), 3<<20+123, 7)
	must(os.WriteFile(filepath.Join(root, "text.txt"), []byte(strings.Repeat("tapefs keeps every byte\n", 1000)), 0o644))
	must(os.WriteFile(filepath.Join(root, "empty"), nil, 0o644))
	for i := 0; i < 50; i++ {
		must(os.WriteFile(filepath.Join(root, "small", fmt.Sprintf("s%02d", i)), []byte(strings.Repeat(strconv.Itoa(i), i+1)), 0o644))
	}
	f, err := os.Create(filepath.Join(root, "sparse.img"))
	must(err)
	chunk := []byte(strings.Repeat("sparse data! ", 80_000)) // ~1 MiB
	for _, off := range []int64{0, 20 << 20, 48<<20 - int64(len(chunk))} {
		_, err := f.WriteAt(chunk, off)
		must(err)
	}
	must(f.Truncate(48 << 20))
	must(f.Close())
	setPastTimes(t, root)
}

// TestTarOfOfflineFiles archives offline files with tar -cf and with
// tar --sparse -cf (each right after an eviction) and checks that the
// archives hold the real bytes: an offline file has st_blocks 1, never 0,
// which GNU tar --sparse would take for a file of holes only.
func TestTarOfOfflineFiles(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, fastFlags()...)
	base := t.TempDir()
	src := filepath.Join(base, "tarsrc")
	makeTarSource(t, src)
	id := d.cpSynced(src, 2*time.Minute)
	batch := filepath.Join(d.ws("default"), id)

	for _, c := range []struct{ name, flags string }{
		{"sparse", "--sparse -cf"},
		{"plain", "-cf"},
	} {
		d.evict()
		if n := checkOffline(t, filepath.Join(batch, "tarsrc")); n == 0 {
			t.Fatal("no offline file to archive")
		}
		archive := filepath.Join(base, c.name+".tar")
		out := sh(t, batch, "tar "+c.flags+" "+q(archive)+" tarsrc")
		if strings.TrimSpace(out) != "" {
			t.Errorf("tar %s printed:\n%s", c.flags, out)
		}
		x := filepath.Join(base, "x-"+c.name)
		if err := os.Mkdir(x, 0o755); err != nil {
			t.Fatal(err)
		}
		sh(t, x, "tar -xf "+q(archive))
		diffTrees(t, src, filepath.Join(x, "tarsrc"))
		t.Logf("tar %s of offline files: %s", c.flags, strings.TrimSpace(sh(t, base, "ls -l "+q(archive))))
	}
}

// TestFindAndLsOfManyOfflineFilesRecallNothing builds a batch of 100,000
// files (written straight into the staging directory), evicts it, and runs
// find, ls -lR, du and stat over it: no recall may happen (no "recall pass
// done" in the log, no cache object), every file keeps its real size and
// shows st_blocks 1, and sampled files say offline.
func TestFindAndLsOfManyOfflineFilesRecallNothing(t *testing.T) {
	t.Parallel()
	n := int(envInt(t, "TAPEFS_E2E_MANY", 100_000))
	const dirs = 100
	d := startDaemon(t, "--time-scale", "0", "--settle", "1s", "--flush-age", "1s")
	size := func(i int) int64 { return int64(i%97 + 1) }
	name := func(i int) string { return fmt.Sprintf("d%03d/f%06d", i%dirs, i) }

	// Built on the same disk, then renamed into the staging directory at
	// once.
	build := t.TempDir()
	t0 := time.Now()
	for i := 0; i < dirs; i++ {
		if err := os.MkdirAll(filepath.Join(build, "many", fmt.Sprintf("d%03d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	line := []byte(strings.Repeat("0123456789abcdef", 8))
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(build, "many", name(i)), line[:size(i)], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := d.batchIDs("default")
	if err := os.Rename(filepath.Join(build, "many"), filepath.Join(d.home, "cache", "put", "default", "many")); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d files written into the staging directory in %v", n, time.Since(t0).Round(time.Millisecond))
	id := d.waitSynced("default", before, 10*time.Minute)
	entry := filepath.Join(d.ws("default"), id, "many")
	// files counts entries of every type (catalog.Batch.Files): the
	// files, their directories and the entry itself.
	if v := mustXattr(t, filepath.Join(d.ws("default"), id), "user.tapefs.files"); v != strconv.Itoa(n+dirs+1) {
		t.Errorf("user.tapefs.files of the batch is %q; want %d (%d files, %d directories and the entry)", v, n+dirs+1, n, dirs)
	}
	var total int64
	for i := 0; i < n; i++ {
		total += size(i)
	}
	if v := mustXattr(t, filepath.Join(d.ws("default"), id), "user.tapefs.bytes"); v != strconv.FormatInt(total, 10) {
		t.Errorf("user.tapefs.bytes of the batch is %q; want %d", v, total)
	}
	d.evict()
	if objs := d.objectFiles(); objs != 0 {
		t.Fatalf("%d cache objects right after eviction; want none", objs)
	}

	// find: every file with its real size and one block.
	t0 = time.Now()
	out := sh(t, entry, `find . -type f -printf '%s %b %P\n'`)
	t.Logf("find over %d offline files took %v", n, time.Since(t0).Round(time.Millisecond))
	seen := 0
	var errs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var sz, blocks int64
		var p string
		if _, err := fmt.Sscanf(l, "%d %d %s", &sz, &blocks, &p); err != nil {
			errs = append(errs, fmt.Sprintf("find printed %q", l))
			continue
		}
		var i int
		if _, err := fmt.Sscanf(filepath.Base(p), "f%06d", &i); err != nil || name(i) != p {
			errs = append(errs, fmt.Sprintf("unexpected file %q", p))
			continue
		}
		seen++
		if sz != size(i) || blocks != 1 {
			errs = append(errs, fmt.Sprintf("%s: size %d, %d blocks; want %d, 1", p, sz, blocks, size(i)))
		}
	}
	if seen != n {
		errs = append(errs, fmt.Sprintf("find listed %d files; want %d", seen, n))
	}
	if len(errs) > 0 {
		if len(errs) > 20 {
			errs = append(errs[:20], fmt.Sprintf("... and %d more", len(errs)-20))
		}
		t.Errorf("find over the offline batch:\n  %s", strings.Join(errs, "\n  "))
	}

	// ls -lR: one line per file, with its size.
	t0 = time.Now()
	out = sh(t, entry, "ls -lR .")
	t.Logf("ls -lR over %d offline files took %v", n, time.Since(t0).Round(time.Millisecond))
	files := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-") {
			files++
		}
	}
	if files != n {
		t.Errorf("ls -lR listed %d files; want %d", files, n)
	}
	du := strings.Fields(sh(t, entry, "du -s --apparent-size -B1 ."))
	t.Logf("du --apparent-size: %v", du)

	// Sampled: stat and the state xattr (neither may recall).
	for i := 0; i < n; i += max(1, n/200) {
		p := filepath.Join(entry, name(i))
		st := stat(t, p)
		if st.Size != size(i) || st.Blocks != 1 {
			t.Errorf("%s: size %d, st_blocks %d; want %d, 1", name(i), st.Size, st.Blocks, size(i))
		}
		if s := mustXattr(t, p, "user.tapefs.state"); s != "offline" {
			t.Errorf("%s: user.tapefs.state %q; want offline", name(i), s)
		}
	}
	sh(t, entry, "getfattr -d -m - "+q(name(n/2))+" >/dev/null")

	if objs := d.objectFiles(); objs != 0 {
		t.Errorf("find, ls -lR, du and stat left %d objects in the cache; want none (no recall)", objs)
	}
	if ev := d.logEvents("recall pass done"); len(ev) != 0 {
		t.Errorf("find, ls -lR, du and stat caused %d recall passes; want none: %v", len(ev), ev)
	}
}

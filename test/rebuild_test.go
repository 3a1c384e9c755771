package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tapes stand alone (issue 11): a catalog rebuilt from the cartridges
// alone, or restored from a snapshot on tape plus the tape files after it,
// lists every batch as the lost one did.

// makeRebuildTrees writes source trees with what a catalog must get back
// from tape: hard links (in one directory and across directories), a
// symlink, empty directories, non-ASCII and non-UTF-8 names (a hard link and
// a symlink target among them), odd modes and mtimes.
func makeRebuildTrees(t *testing.T, root string) []string {
	t.Helper()
	sh(t, root, `
mkdir -p run1/sub/deeper run1/empty run1/'dïr €' run2 run3/a run3/b
printf 'first file\n' > run1/a.dat
ln run1/a.dat run1/b.dat
ln run1/a.dat run1/sub/deeper/c.dat
head -c 100000 /dev/urandom > run1/sub/big.bin
printf 'ü\n' > 'run1/dïr €/ünïcødé €.txt'
ln -s ../a.dat run1/sub/link
ln -s 'nowhere at all' run1/dangling
chmod 0640 run1/sub/big.bin
chmod 0750 run1/empty
chmod 2775 run1/sub
touch -d '2001-02-03 04:05:06.789' run1/a.dat run1/empty
printf 'removed later\n' > run2/gone.dat
printf 'x\n' > run3/a/one
ln run3/a/one run3/b/two
mkdir run1/$'d\xfe\xff'
printf 'not utf-8\n' > run1/$'d\xfe\xff'/$'bin\xe9ary.dat'
ln run1/$'d\xfe\xff'/$'bin\xe9ary.dat' run1/$'second \xe9 name'
ln -s $'d\xfe\xff/bin\xe9ary.dat' run1/$'link \xff'
`)
	return []string{"run1", "run2", "run3"}
}

// snapshotOfListings is everything `tapefs ls` says of a home, as JSON
// text per command: the workspaces, each workspace's live batches, and
// every batch (live or removed) with its files.
func snapshotOfListings(t *testing.T, home string, batches []string) map[string]string {
	t.Helper()
	o := cliOpts{home: home}
	out := map[string]string{
		"ls -L workspace": cliOK(t, o, "ls", "-L", "workspace", "-F", "json").stdout,
		"ls -w default":   cliOK(t, o, "ls", "-w", "default", "-F", "json").stdout,
	}
	for _, id := range batches {
		out["ls -L file -b "+id] = cliOK(t, o, "ls", "-b", id, "-L", "file", "-F", "json").stdout
		out["ls -L batch -b "+id] = cliOK(t, o, "ls", "-b", id, "-L", "batch", "-F", "json").stdout
	}
	return out
}

// compareListings fails the test for every listing that differs, showing
// the first differing line.
func compareListings(t *testing.T, before, after map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(before))
	for k := range before {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, a := before[k], after[k]
		if a == b {
			continue
		}
		bl, al := strings.Split(b, "\n"), strings.Split(a, "\n")
		for i := range max(len(bl), len(al)) {
			var x, y string
			if i < len(bl) {
				x = bl[i]
			}
			if i < len(al) {
				y = al[i]
			}
			if x != y {
				t.Errorf("%s differs at line %d:\nbefore: %s\nafter:  %s", k, i+1, x, y)
				break
			}
		}
	}
}

// eventCount counts the daemon's log lines of an event kind.
func (d *daemon) eventCount(kind string) int {
	n := 0
	for _, e := range d.logEvents("") {
		if e.str("event") == kind {
			n++
		}
	}
	return n
}

func (d *daemon) waitEvents(kind string, n int, timeout time.Duration) {
	d.t.Helper()
	waitFor(d.t, timeout, fmt.Sprintf("%d %q event(s) in the log", n, kind), func() (bool, string) {
		c := d.eventCount(kind)
		return c >= n, strconv.Itoa(c)
	})
}

// archiveTrees copies the trees into put/ one by one, waits until each is
// on tape, removes run2's batch and waits until the removal is on tape too.
// It returns the batch IDs and the one removed.
func archiveTrees(t *testing.T, d *daemon, src string, trees []string) (ids []string, removed string) {
	t.Helper()
	for _, tr := range trees {
		ids = append(ids, d.cpSynced(filepath.Join(src, tr), 60*time.Second))
	}
	removed = ids[1]
	journals := d.eventCount("journal")
	cliOK(t, cliOpts{home: d.home}, "rm", "-b", removed)
	d.waitEvents("journal", journals+1, 60*time.Second)
	return ids, removed
}

// checkTapeFilesWithGNUTar extracts every tape file of the library with
// GNU tar into one directory and compares each batch's tree with its
// source: contents, modes, symlinks, and hard links as links.
func checkTapeFilesWithGNUTar(t *testing.T, home, src string, trees, ids []string) {
	t.Helper()
	dest := t.TempDir()
	files, err := filepath.Glob(filepath.Join(home, "library", "TF*", "[0-9]*.tar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no tape files in the library: %v", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "000000.tar") {
			continue // the label
		}
		sh(t, dest, "tar --warning=no-unknown-keyword -xf "+q(f))
	}
	listing := func(dir string) string {
		// mode, link count, type, size, path, symlink target; mtime of files
		return sh(t, dir, `find . -mindepth 1 \( -type f -printf '%m %n %y %s %p %TY-%Tm-%Td %TT\n' \) -o \( ! -type f -printf '%m %y %p %l\n' \) | LC_ALL=C sort`)
	}
	for i, tr := range trees {
		got := filepath.Join(dest, "default", ids[i], tr)
		if a, b := listing(filepath.Join(src, tr)), listing(got); a != b {
			t.Errorf("tar -x of the tape files gives %s of batch %s as\n%s\nwant (the source)\n%s", tr, ids[i], b, a)
		}
		sh(t, "/", "diff -r --no-dereference "+q(filepath.Join(src, tr))+" "+q(got))
	}
}

// TestCatalogRebuildFromLibrary: catalog.db is lost; `tapefs catalog
// rebuild --from-library` reads it back from the cartridges, and every
// listing is as before, the removed batch still removed.
func TestCatalogRebuildFromLibrary(t *testing.T) {
	// First a batch that is removed and purged (retention 1 s): it must
	// stay gone, and its ID unused.
	d := newDaemon(t, append(fastFlags(), "--retention", "1s")...)
	setCatalog(d.home, "") // rebuild writes catalog.db
	d.start()
	src := t.TempDir()
	sh(t, src, "mkdir run0 && printf 'purged soon\n' > run0/p.dat")
	purged := d.cpSynced(filepath.Join(src, "run0"), 60*time.Second)
	cliOK(t, cliOpts{home: d.home}, "rm", "-b", purged)
	d.waitEvents("purged", 1, 60*time.Second)
	journals := d.eventCount("journal")
	d.waitEvents("journal", journals+1, 60*time.Second)
	d.stop()
	d.flags = fastFlags()
	d.start()

	trees := makeRebuildTrees(t, src)
	ids, removed := archiveTrees(t, d, src, trees)
	wantCode(t, runTapefs(t, cliOpts{home: d.home}, "ls", "-b", purged), 1)

	before := snapshotOfListings(t, d.home, ids)
	if strings.Contains(before["ls -w default"], `"id": `+removed+",") {
		t.Fatalf("batch %s listed after its removal:\n%s", removed, before["ls -w default"])
	}
	// The checksums are part of what must come back from the tapes.
	if l := before["ls -L file -b "+ids[0]]; !strings.Contains(l, `"md5": "`) || !strings.Contains(l, `"crc32c": "`) {
		t.Fatalf("ls -L file -b %s lists no md5 or CRC32C: the comparison would not cover them\n%s", ids[0], l)
	}
	d.stop()
	checkTapeFilesWithGNUTar(t, d.home, src, trees, ids)

	db := filepath.Join(d.home, "catalog.db")
	// A catalog that exists is never overwritten; a rebuild says where
	// from; a home without a library says so.
	r := runTapefs(t, cliOpts{}, "catalog", "rebuild", "--from-library", "--home", d.home)
	wantCode(t, r, 1)
	if !strings.Contains(r.stderr, "move it away") {
		t.Errorf("rebuild over an existing catalog:\n%s", r)
	}
	wantCode(t, runTapefs(t, cliOpts{}, "catalog", "rebuild", "--home", d.home), 4)
	r = runTapefs(t, cliOpts{}, "catalog", "restore", "--home", filepath.Join(d.home, "nothing"))
	wantCode(t, r, 1)
	if !strings.Contains(r.stderr, "no library at") {
		t.Errorf("restore of a home without a library:\n%s", r)
	}
	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	r = cliOK(t, cliOpts{}, "catalog", "rebuild", "--from-library", "--home", d.home)
	t.Logf("%s", r.stderr)
	d.start()
	after := snapshotOfListings(t, d.home, ids)
	compareListings(t, before, after)
	wantCode(t, runTapefs(t, cliOpts{home: d.home}, "ls", "-b", purged), 1)

	// The rebuilt archive works: a new batch gets a new ID, and the files
	// read back.
	sh(t, src, "mkdir run4 && printf 'after the rebuild\n' > run4/new.dat")
	id4 := d.cpSynced(filepath.Join(src, "run4"), 60*time.Second)
	if n, _ := strconv.Atoi(id4); n <= len(ids)+1 {
		t.Errorf("a batch after the rebuild got ID %s, which an earlier batch had", id4)
	}
	sh(t, "/", "diff -r --no-dereference "+q(filepath.Join(src, "run1"))+" "+q(filepath.Join(d.ws("default"), ids[0], "run1")))
	var files []map[string]any
	if err := json.Unmarshal([]byte(after["ls -L file -b "+ids[0]]), &files); err != nil || len(files) == 0 {
		t.Fatalf("ls -L file -F json: %v\n%s", err, after["ls -L file -b "+ids[0]])
	}
	links := 0
	for _, f := range files {
		if f["link"] != nil {
			links++
		}
	}
	if links != 3 {
		t.Errorf("batch %s has %d hard links after the rebuild, want 3", ids[0], links)
	}
}

// TestCatalogRestoreFromSnapshot: the daemon copies its catalog to disk and
// to tape on a schedule; the home then loses its catalog, cache and
// snapshot directory; `tapefs catalog restore` gets the catalog back from
// the newest snapshot on tape plus the tape files written after it (a
// batch archived and one removed after the snapshot).
func TestCatalogRestoreFromSnapshot(t *testing.T) {
	snapDir := filepath.Join(t.TempDir(), "snapshots")
	d := newDaemon(t, append(fastFlags(), "--snapshot-every", "2s", "--snapshot-dir", snapDir)...)
	setCatalog(d.home, "")
	d.start()
	src := t.TempDir()
	trees := makeRebuildTrees(t, src)
	o := cliOpts{home: d.home}

	// Before the snapshot: run1 and run2.
	ids := []string{d.cpSynced(filepath.Join(src, trees[0]), 60*time.Second), d.cpSynced(filepath.Join(src, trees[1]), 60*time.Second)}
	cliOK(t, o, "cache", "evict") // a restored home has no cache: compare offline with offline
	d.waitEvents("snapshot", d.eventCount("snapshot")+1, 60*time.Second)
	if got, _ := filepath.Glob(filepath.Join(snapDir, "catalog-*.db")); len(got) == 0 {
		t.Errorf("no snapshot in %s", snapDir)
	}
	d.stop()
	// After it (the daemon runs without snapshots now): run3 archived,
	// run2 removed.
	d.flags = fastFlags()
	d.start()
	ids = append(ids, d.cpSynced(filepath.Join(src, trees[2]), 60*time.Second))
	cliOK(t, o, "cache", "evict")
	journals := d.eventCount("journal")
	cliOK(t, o, "rm", "-b", ids[1])
	d.waitEvents("journal", journals+1, 60*time.Second)
	before := snapshotOfListings(t, d.home, ids)
	d.stop()

	for _, p := range []string{filepath.Join(d.home, "catalog.db"), filepath.Join(d.home, "cache"), snapDir} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	r := cliOK(t, cliOpts{}, "catalog", "restore", "--home", d.home)
	t.Logf("%s", r.stderr)
	if !strings.Contains(r.stderr, "catalog snapshot of") {
		t.Errorf("restore did not start from a snapshot:\n%s", r.stderr)
	}
	d.start()
	compareListings(t, before, snapshotOfListings(t, d.home, ids))
	for i, tr := range trees {
		if i == 1 {
			continue // removed
		}
		sh(t, "/", "diff -r --no-dereference "+q(filepath.Join(src, tr))+" "+q(filepath.Join(d.ws("default"), ids[i], tr)))
	}
	cliOK(t, o, "undelete", "-b", ids[1])
	sh(t, "/", "diff -r --no-dereference "+q(filepath.Join(src, trees[1]))+" "+q(filepath.Join(d.ws("default"), ids[1], trees[1])))
}

// TestCatalogSnapshotOnSchedule: with --snapshot-every and no snapshot yet,
// the daemon takes one at once, into HOME/snapshots by default and onto
// tape as a tape file that GNU tar lists and whose bytes are the file's.
func TestCatalogSnapshotOnSchedule(t *testing.T) {
	d := newDaemon(t, append(fastFlags(), "--snapshot-every", "24h")...)
	setCatalog(d.home, "")
	d.start()
	d.waitEvents("snapshot", 1, 60*time.Second)
	d.stop()
	files, _ := filepath.Glob(filepath.Join(d.home, "snapshots", "catalog-*.db"))
	if len(files) != 1 {
		t.Fatalf("snapshots in HOME/snapshots: %v", files)
	}
	var onTape string
	tapeFiles, _ := filepath.Glob(filepath.Join(d.home, "library", "TF*", "[0-9]*.tar"))
	for _, f := range tapeFiles {
		if out := sh(t, "/", "tar --warning=no-unknown-keyword -tf "+q(f)); strings.HasPrefix(out, "tapefs-catalog/") {
			onTape = f
		}
	}
	if onTape == "" {
		t.Fatalf("no catalog snapshot among the tape files %v", tapeFiles)
	}
	dest := t.TempDir()
	sh(t, dest, "tar --warning=no-unknown-keyword -xf "+q(onTape)+" && cmp tapefs-catalog/*.db "+q(files[0]))
}

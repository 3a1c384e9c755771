package test

import (
	"bufio"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// treeSpec describes a generated source tree.
type treeSpec struct {
	smallFiles int    // small files (0 to 8 KiB) spread over nested directories
	bigSize    int64  // size of big.bin; 0 for none
	seed       uint64 // contents and sizes follow from it
}

// Odd names every tree holds: spaces, unicode, a newline, a leading dash
// and a quote.
var oddNames = []string{"with space.txt", "ünïcødé-日本語-ファイル.txt", "new\nline.txt", "-dash", "it's \"quoted\""}

// pastTime returns the i-th mtime of a tree: in 2001-2011, with
// nanoseconds, so that a copy that keeps only seconds is caught.
func pastTime(i int) time.Time {
	return time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC).
		Add(time.Duration(i%3650) * 24 * time.Hour).
		Add(time.Duration(i%86400) * time.Second).
		Add(time.Duration(1+i*7919%999_999_999) * time.Nanosecond)
}

// makeTree writes a varied tree at root (which must not exist): nested
// directories, small and empty files, odd names, symlinks (relative,
// dangling, to a directory, absolute), hard links (three names of one
// file, two directories), modes 0600/0755/0640/0444 and a setgid
// directory, files owned by another user and group (when root), and
// mtimes in the past on everything, directories last.
func makeTree(t *testing.T, root string, spec treeSpec) {
	t.Helper()
	r := rand.New(rand.NewPCG(spec.seed, 0x7a9ef5))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel string, size int, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(root, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		b := make([]byte, size)
		fillRandom(r, b)
		must(os.WriteFile(p, b, 0o644))
		must(os.Chmod(p, mode))
	}
	must(os.Mkdir(root, 0o755))

	// Small files in nested directories: data/dNN/[sub/[deeper/]]fNNNN.
	for i := 0; i < spec.smallFiles; i++ {
		dir := fmt.Sprintf("data/d%02d", i%20)
		switch i % 3 {
		case 1:
			dir += "/sub"
		case 2:
			dir += "/sub/deeper"
		}
		size := r.IntN(8193)
		if i%50 == 0 {
			size = 0
		}
		write(fmt.Sprintf("%s/f%04d.bin", dir, i), size, 0o644)
	}
	write("deep/1/2/3/4/5/6/7/8/9/leaf.txt", 100, 0o644)
	for i, n := range oddNames {
		write(filepath.Join("names", n), 10+i*100, 0o644)
	}
	must(os.MkdirAll(filepath.Join(root, "names", "dir with space", "ünï dir"), 0o755))
	write("names/dir with space/ünï dir/inner file", 42, 0o644)
	write("empty", 0, 0o644)
	write("names/empty too", 0, 0o600)

	// Modes.
	write("modes/private", 300, 0o600)
	write("modes/exec", 400, 0o755)
	write("modes/group", 500, 0o640)
	write("modes/readonly", 600, 0o444)
	must(os.MkdirAll(filepath.Join(root, "modes", "setgid"), 0o755))
	write("modes/setgid/inside", 700, 0o644)
	must(os.Chmod(filepath.Join(root, "modes", "setgid"), 0o2775))
	must(os.MkdirAll(filepath.Join(root, "modes", "closed"), 0o755))
	write("modes/closed/secret", 50, 0o600)
	must(os.Chmod(filepath.Join(root, "modes", "closed"), 0o700))

	// Owners (root only: chown to another user and group).
	write("owned/by-1234", 800, 0o644)
	must(os.MkdirAll(filepath.Join(root, "owned", "dir-4321"), 0o755))
	write("owned/dir-4321/file", 900, 0o640)
	if os.Geteuid() == 0 {
		must(os.Lchown(filepath.Join(root, "owned", "by-1234"), 1234, 5678))
		must(os.Lchown(filepath.Join(root, "owned", "dir-4321"), 4321, 4321))
		must(os.Lchown(filepath.Join(root, "owned", "dir-4321", "file"), 4321, 100))
	}

	// Symlinks.
	must(os.MkdirAll(filepath.Join(root, "links"), 0o755))
	must(os.Symlink("../names/with space.txt", filepath.Join(root, "links", "relative")))
	must(os.Symlink("does/not/exist", filepath.Join(root, "links", "dangling")))
	must(os.Symlink("../deep/1/2", filepath.Join(root, "links", "to-dir")))
	must(os.Symlink("/etc/hostname", filepath.Join(root, "links", "absolute")))
	must(os.Symlink("ünïcødé target with space", filepath.Join(root, "links", "odd target")))

	// Hard links: three names of one file in two directories, and a pair.
	write("hard/one", 1000, 0o640)
	must(os.Link(filepath.Join(root, "hard", "one"), filepath.Join(root, "hard", "two")))
	must(os.Link(filepath.Join(root, "hard", "one"), filepath.Join(root, "data", "third name of hard one")))
	write("hard/pair-a", 0, 0o644)
	must(os.Link(filepath.Join(root, "hard", "pair-a"), filepath.Join(root, "hard", "pair-b")))

	if spec.bigSize > 0 {
		writeBig(t, filepath.Join(root, "big.bin"), spec.bigSize, spec.seed)
	}
	setPastTimes(t, root)
}

// fillRandom fills b from r quickly.
func fillRandom(r *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

// writeBig writes size pseudo-random bytes (no two MiB alike) to path.
func writeBig(t *testing.T, path string, size int64, seed uint64) {
	t.Helper()
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	src := rand.NewChaCha8(key)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 4<<20)
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		_, _ = src.Read(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// setPastTimes gives every entry under root (root too) its own mtime and
// atime in the past; directories after their contents.
func setPastTimes(t *testing.T, root string) {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Deepest first, so that setting a file's time does not disturb its
	// directory's afterwards.
	sort.SliceStable(paths, func(i, j int) bool {
		return strings.Count(paths[i], "/") > strings.Count(paths[j], "/")
	})
	for i, p := range paths {
		mt := pastTime(i + 1)
		ts := []unix.Timespec{unix.NsecToTimespec(mt.Add(-time.Hour).UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatalf("utimes %s: %v", p, err)
		}
	}
}

// entryInfo is the metadata of one entry of a tree that a copy must keep.
type entryInfo struct {
	mode   uint32
	uid    uint32
	gid    uint32
	size   int64
	mtime  unix.Timespec
	target string
	ino    uint64
	nlink  uint64
	blocks int64
}

// scanTree lstats every entry under root (root is "."), by relative path.
func scanTree(t *testing.T, root string) map[string]entryInfo {
	t.Helper()
	out := map[string]entryInfo{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := entryInfo{mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size, mtime: st.Mtim, ino: st.Ino, nlink: uint64(st.Nlink), blocks: st.Blocks}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

// compareTrees checks that got (a copy, e.g. a batch tree) holds exactly
// the entries of want with the same type, mode, owner, size, mtime and
// symlink target, and that the hard links of want are hard links in got
// (one inode, the same link count) while distinct files have distinct
// inodes. Contents are diff's job.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	errs := treeDiffs(scanTree(t, want), scanTree(t, got))
	if len(errs) > 0 {
		if len(errs) > 40 {
			errs = append(errs[:40], fmt.Sprintf("... and %d more", len(errs)-40))
		}
		t.Errorf("%s differs from %s in metadata:\n  %s", got, want, strings.Join(errs, "\n  "))
	}
}

// treeDiffs lists, sorted, how the scanned tree g differs from w (see
// compareTrees).
func treeDiffs(w, g map[string]entryInfo) []string {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	for rel, a := range w {
		b, ok := g[rel]
		if !ok {
			add("%q: missing", rel)
			continue
		}
		if a.mode != b.mode {
			add("%q: mode %#o, want %#o", rel, b.mode, a.mode)
		}
		if a.uid != b.uid || a.gid != b.gid {
			add("%q: owner %d:%d, want %d:%d", rel, b.uid, b.gid, a.uid, a.gid)
		}
		isDir := a.mode&unix.S_IFMT == unix.S_IFDIR
		if !isDir && a.size != b.size {
			add("%q: size %d, want %d", rel, b.size, a.size)
		}
		if a.mtime != b.mtime {
			add("%q: mtime %s, want %s", rel, tsString(b.mtime), tsString(a.mtime))
		}
		if a.target != b.target {
			add("%q: symlink target %q, want %q", rel, b.target, a.target)
		}
	}
	for rel := range g {
		if _, ok := w[rel]; !ok {
			add("%q: not in the source", rel)
		}
	}
	// Hard links: group the source's non-directories by inode.
	groups := map[uint64][]string{}
	for rel, a := range w {
		if a.mode&unix.S_IFMT != unix.S_IFDIR {
			groups[a.ino] = append(groups[a.ino], rel)
		}
	}
	seen := map[uint64]string{}
	for _, names := range groups {
		sort.Strings(names)
		first, ok := g[names[0]]
		if !ok {
			continue
		}
		if other, dup := seen[first.ino]; dup {
			add("%q and %q: one inode number %d in the copy, two files in the source", names[0], other, first.ino)
		}
		seen[first.ino] = names[0]
		for _, n := range names[1:] {
			if b, ok := g[n]; ok && b.ino != first.ino {
				add("%q and %q: hard links in the source, inodes %d and %d in the copy", names[0], n, first.ino, b.ino)
			}
		}
		if len(names) > 1 && first.nlink != uint64(len(names)) {
			add("%q: link count %d, want %d", names[0], first.nlink, len(names))
		}
	}
	sort.Strings(errs)
	return errs
}

func tsString(ts unix.Timespec) string {
	return time.Unix(ts.Sec, ts.Nsec).UTC().Format(time.RFC3339Nano)
}

// diffTrees runs diff -r (symlinks compared as links) between two trees.
func diffTrees(t *testing.T, want, got string) {
	t.Helper()
	out, err := shErr("/", "diff -r --no-dereference "+q(want)+" "+q(got))
	if err != nil {
		if len(out) > 4000 {
			out = out[:4000] + "..."
		}
		t.Errorf("diff -r --no-dereference %s %s: %v\n%s", want, got, err, out)
	}
}

// md5Sums writes an md5sum list of the regular files under src (paths
// relative to src) to a file and returns its path.
func md5Sums(t *testing.T, src string) string {
	t.Helper()
	sums := filepath.Join(t.TempDir(), "MD5SUMS")
	sh(t, src, "find . -type f -print0 | sort -z | xargs -0 md5sum > "+q(sums))
	return sums
}

// checkMD5 runs md5sum -c of a list made by md5Sums in dir.
func checkMD5(t *testing.T, sums, dir string) {
	t.Helper()
	out, err := shErr(dir, "md5sum --quiet -c "+q(sums))
	if err != nil {
		if len(out) > 4000 {
			out = out[:4000] + "..."
		}
		t.Errorf("md5sum -c in %s: %v\n%s", dir, err, out)
	}
}

// checkOffline checks that every non-empty regular file under dir says it
// is offline, with st_blocks 1, and returns how many it checked.
func checkOffline(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	var errs []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Size == 0 {
			return nil
		}
		n++
		state, err := xattr(p, "user.tapefs.state")
		if err != nil || state != "offline" || st.Blocks != 1 {
			errs = append(errs, fmt.Sprintf("%s: state %q (%v), st_blocks %d; want offline, 1", p, state, err, st.Blocks))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		if len(errs) > 20 {
			errs = append(errs[:20], fmt.Sprintf("... and %d more", len(errs)-20))
		}
		t.Errorf("files not offline after eviction:\n  %s", strings.Join(errs, "\n  "))
	}
	return n
}

// TestHarnessTreeChecks checks the checkers, without a mount: a cp -a copy
// of a generated tree compares equal, and each kind of damage a broken
// copy could do is reported.
func TestHarnessTreeChecks(t *testing.T) {
	t.Parallel()
	needMount(t) // no mount, but the same tools
	base := t.TempDir()
	src, cp := filepath.Join(base, "src"), filepath.Join(base, "copy")
	makeTree(t, src, treeSpec{smallFiles: 60, bigSize: 1 << 20, seed: 5})
	sh(t, "/", "cp -a "+q(src)+" "+q(cp))
	if errs := treeDiffs(scanTree(t, src), scanTree(t, cp)); len(errs) > 0 {
		t.Fatalf("cp -a copy differs: %q", errs)
	}
	diffTrees(t, src, cp)
	checkMD5(t, md5Sums(t, src), cp)

	// Damage the copy in every way compareTrees must notice.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(filepath.Join(cp, "modes", "group"), 0o644))
	must(os.Chtimes(filepath.Join(cp, "empty"), time.Unix(1e9, 0), time.Unix(1e9, 0)))
	must(os.Remove(filepath.Join(cp, "links", "dangling")))
	must(os.Symlink("elsewhere", filepath.Join(cp, "links", "dangling")))
	must(os.Remove(filepath.Join(cp, "hard", "two")))
	sh(t, cp, "cp hard/one hard/two") // a copy, no longer a link
	must(os.Remove(filepath.Join(cp, "deep", "1", "2", "3", "4", "5", "6", "7", "8", "9", "leaf.txt")))
	must(os.WriteFile(filepath.Join(cp, "extra"), nil, 0o644))
	if os.Geteuid() == 0 {
		must(os.Lchown(filepath.Join(cp, "owned", "by-1234"), 0, 0))
	}
	errs := strings.Join(treeDiffs(scanTree(t, src), scanTree(t, cp)), "\n")
	for _, want := range []string{
		`"modes/group": mode`,
		`"empty": mtime`,
		`"links/dangling": symlink target "elsewhere"`,
		`and "hard/two": hard links in the source`,
		`": link count 2, want 3`,
		`"deep/1/2/3/4/5/6/7/8/9/leaf.txt": missing`,
		`"extra": not in the source`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("treeDiffs did not report %s; it said:\n%s", want, errs)
		}
	}
	if os.Geteuid() == 0 && !strings.Contains(errs, `"owned/by-1234": owner 0:0, want 1234:5678`) {
		t.Errorf("treeDiffs did not report the owner; it said:\n%s", errs)
	}
}

package test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tapefs/tapefs/api"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/cli"
)

// End-to-end tests of the command line (put, get, rm, undelete, ls,
// status, seal, workspace, library, cache) against the built binary and a
// daemon in a subprocess: `tapefs serve` (cli_helpers_test.go), or
// `tapefs mount` (the harness) for seal.

// TestCLIDataAcquisition is the Elastic Tape workflow of a data
// acquisition: 1,520 files in 4 list files put at once, waited for,
// checked with md5sum -c, restored and compared.
func TestCLIDataAcquisition(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := cliOpts{home: s.home}
	base := t.TempDir()
	src := filepath.Join(base, "run0042")
	files := genAcquisition(t, src, 1520)

	// Four list files, interleaved, so that every batch holds files of
	// every directory.
	var parts [4][]string
	for i, p := range files {
		parts[i%4] = append(parts[i%4], p)
	}
	lists := make([]string, 4)
	for k := range parts {
		lists[k] = filepath.Join(base, fmt.Sprintf("part%d.list", k))
		if err := os.WriteFile(lists[k], []byte(strings.Join(parts[k], "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Four puts at once.
	t0 := time.Now()
	results := runConcurrently(t, o, 4, func(k int) []string { return []string{"put", "-t", fmt.Sprintf("part%d", k), "-f", lists[k]} })
	ids := make([]uint64, 4)
	seen := map[uint64]bool{}
	for k, r := range results {
		if r.code != 0 {
			t.Fatalf("put %d of 4: want exit 0\n%s", k, r)
		}
		ids[k] = batchID(t, r)
		if seen[ids[k]] {
			t.Fatalf("two puts printed the same batch ID %d", ids[k])
		}
		seen[ids[k]] = true
	}
	t.Logf("4 puts of %d files: batches %v in %v", len(files), ids, time.Since(t0).Round(time.Millisecond))

	// status --wait on all, at once.
	t0 = time.Now()
	results = runConcurrently(t, o, 4, func(k int) []string { return []string{"status", "-b", idArg(ids[k]), "--wait"} })
	for k, r := range results {
		if r.code != 0 {
			t.Fatalf("status --wait of batch %d: want exit 0\n%s", ids[k], r)
		}
		if !strings.Contains(r.stdout, "SYNCED") {
			t.Errorf("status --wait of batch %d: stdout does not show the batch SYNCED\n%s", ids[k], r)
		}
	}
	t.Logf("4 batches on tape after %v", time.Since(t0).Round(time.Millisecond))

	// ls -F md5sum | md5sum -c, from / (put stores absolute paths without
	// the leading slash).
	for k, id := range ids {
		r := cliOK(t, o, "ls", "-F", "md5sum", "-b", idArg(id))
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != len(parts[k]) {
			t.Errorf("ls -F md5sum -b %d: %d lines, want one per file of the list (%d)", id, len(lines), len(parts[k]))
		}
		want := map[string]bool{}
		for _, p := range parts[k] {
			want[strings.TrimPrefix(p, "/")] = true
		}
		for _, l := range lines {
			if _, name, ok := strings.Cut(l, "  "); !ok || !want[name] {
				t.Errorf("ls -F md5sum -b %d: line %q does not name a file of %s", id, l, lists[k])
				break
			}
		}
		md5 := exec.Command("md5sum", "-c", "--strict", "--quiet")
		md5.Dir = "/"
		md5.Stdin = strings.NewReader(r.stdout)
		if out, err := md5.CombinedOutput(); err != nil {
			t.Errorf("tapefs ls -F md5sum -b %d | md5sum -c (in /): %v\n%s", id, err, lastLines(string(out), 20))
		}
	}

	// get every batch into a new directory, and compare.
	restore := filepath.Join(t.TempDir(), "restore")
	t0 = time.Now()
	for _, id := range ids {
		cliOK(t, o, "get", "-b", idArg(id), "-r", restore)
	}
	t.Logf("4 batches restored in %v", time.Since(t0).Round(time.Millisecond))
	restored := filepath.Join(restore, src)
	if out, err := exec.Command("diff", "-r", src, restored).CombinedOutput(); err != nil {
		t.Fatalf("diff -r %s %s: %v\n%s", src, restored, err, lastLines(string(out), 30))
	}
	compareMeta(t, src, restored)
	// The same md5sum lines hold in the restore root.
	for _, id := range ids {
		r := cliOK(t, o, "ls", "-F", "md5sum", "-b", idArg(id))
		md5 := exec.Command("md5sum", "-c", "--strict", "--quiet")
		md5.Dir = restore
		md5.Stdin = strings.NewReader(r.stdout)
		if out, err := md5.CombinedOutput(); err != nil {
			t.Errorf("tapefs ls -F md5sum -b %d | md5sum -c (in the restore root %s): %v\n%s", id, restore, err, lastLines(string(out), 20))
		}
	}
}

// runConcurrently runs n commands of the CLI at once and returns what
// each did.
func runConcurrently(t *testing.T, o cliOpts, n int, args func(k int) []string) []cliResult {
	t.Helper()
	results := make([]cliResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		a := args(k)
		cmd := tapefsCmd(t, o, a...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[k], errs[k] = runCmd(cmd, a)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return results
}

// genAcquisition writes n files under root: nested directories, sizes
// from 0 bytes to over 1 MiB, modes, nanosecond mtimes, and names with
// spaces. It returns their absolute paths.
func genAcquisition(t *testing.T, root string, n int) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(42, 1520))
	data := rand.NewChaCha8([32]byte{42})
	modes := []os.FileMode{0o644, 0o600, 0o755, 0o444, 0o640}
	base := time.Date(2021, 3, 14, 15, 9, 26, 535897932, time.UTC)
	var paths []string
	dirs := map[string]bool{}
	for i := range n {
		var rel string
		det, chunk := (i/4)%4, (i/16)%19
		switch {
		case i == 7:
			rel = "calib data/run 1 notes.txt"
		case i == 11:
			rel = fmt.Sprintf("det%d/chunk %02d (retake)/frame %04d.raw", det, chunk, i)
		case i%10 == 3:
			rel = fmt.Sprintf("det%d/chunk%02d/deep/er/f%04d.raw", det, chunk, i)
		default:
			rel = fmt.Sprintf("det%d/chunk%02d/f%04d.dat", det, chunk, i)
		}
		var size int
		switch i % 40 {
		case 0, 20:
			size = 0
		case 1:
			size = 1
		case 2:
			size = 1<<20 + 1 + rng.IntN(200<<10) // over the 1 MiB buffers
		case 5:
			size = 4096
		default:
			size = rng.IntN(24 << 10)
		}
		p := filepath.Join(root, rel)
		for d := filepath.Dir(p); d != root && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
		writeRandomFile(t, data, p, size)
		if err := os.Chmod(p, modes[i%len(modes)]); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i)*time.Minute + time.Duration(i*7919)*time.Nanosecond)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	// Directory modes and times last, deepest first.
	dirs[root] = true
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return len(ds[i]) > len(ds[j]) })
	for i, d := range ds {
		mode := os.FileMode(0o755)
		if i%3 == 1 {
			mode = 0o750
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(-time.Duration(i) * time.Hour)
		if err := os.Chtimes(d, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// compareMeta checks that every entry under src has the same type, mode
// and mtime under dst.
func compareMeta(t *testing.T, src, dst string) {
	t.Helper()
	bad := 0
	n := 0
	err := filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		a, err := os.Lstat(p)
		if err != nil {
			return err
		}
		b, err := os.Lstat(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		n++
		var why []string
		if a.Mode() != b.Mode() {
			why = append(why, fmt.Sprintf("mode %v, source %v", b.Mode(), a.Mode()))
		}
		if !a.ModTime().Equal(b.ModTime()) && a.Mode()&fs.ModeSymlink == 0 {
			why = append(why, fmt.Sprintf("mtime %v, source %v", b.ModTime(), a.ModTime()))
		}
		if len(why) > 0 {
			bad++
			if bad <= 10 {
				t.Errorf("restored %s: %s", rel, strings.Join(why, "; "))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if bad > 10 {
		t.Errorf("... %d entries in all with a mode or mtime that was not preserved", bad)
	}
	t.Logf("mode and mtime compared for %d entries", n)
}

// TestCLIRemoveUndelete: put DIR, rm, undelete, get; then evict the batch
// from the cache and get it again from tape.
func TestCLIRemoveUndelete(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := cliOpts{home: s.home}
	src := filepath.Join(t.TempDir(), "run7")
	writeFiles(t, src, map[string]int{"a.dat": 300 << 10, "sub/empty.dat": 0, "sub/c.txt": 17, "with space.txt": 5000, "sub/deeper/big.bin": 1<<20 + 3})
	if err := os.Symlink("a.dat", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	id := batchID(t, cliOK(t, o, "put", src))

	// rm: says until when it can be undone.
	r := cliOK(t, o, "rm", "-b", idArg(id))
	if !strings.Contains(r.stdout, "tapefs undelete -b "+idArg(id)) {
		t.Errorf("rm does not say how to undo it\n%s", r)
	}
	_, until, ok := strings.Cut(strings.TrimSpace(r.stdout), " until ")
	if ok {
		when, err := time.Parse(time.RFC1123, until)
		switch {
		case err != nil:
			t.Errorf("rm: %q after \"until\" is not a date: %v", until, err)
		case time.Until(when) < 6*24*time.Hour:
			t.Errorf("rm: undoable until %v; want the default retention of 7 days", when)
		}
	} else {
		t.Errorf("rm does not say until when the batch can be undeleted\n%s", r)
	}
	if lsShowsBatch(t, o, id) {
		t.Errorf("ls still lists batch %d after rm", id)
	}

	r = cliOK(t, o, "undelete", "-b", idArg(id))
	if !strings.Contains(r.stdout, idArg(id)) {
		t.Errorf("undelete does not name the batch\n%s", r)
	}
	if !lsShowsBatch(t, o, id) {
		t.Errorf("ls does not list batch %d after undelete", id)
	}
	getAndCompare(t, o, id, src)

	// On tape, evicted from the cache: the next get recalls from tape.
	cliOK(t, o, "status", "-b", idArg(id), "--wait")
	cliOK(t, o, "cache", "evict", "-b", idArg(id))
	r = cliOK(t, o, "ls", "-b", idArg(id), "-L", "file")
	for _, name := range []string{"a.dat", "sub/c.txt", "with space.txt", "sub/deeper/big.bin"} {
		p := filepath.Join(src, name)
		if st := fileStateColumn(t, r, p); st != "offline" {
			t.Errorf("ls -b %d -L file after cache evict: state of %s is %q, want offline", id, p, st)
		}
	}
	getAndCompare(t, o, id, src)
	r = cliOK(t, o, "ls", "-b", idArg(id), "-L", "file")
	if st := fileStateColumn(t, r, filepath.Join(src, "a.dat")); st != "online" {
		t.Errorf("after the get from tape, a.dat is %q, want online (recalled into the cache)", st)
	}
}

// lsShowsBatch reports whether the batch level of ls (default workspace)
// lists the batch, in text and in JSON.
func lsShowsBatch(t *testing.T, o cliOpts, id uint64) bool {
	t.Helper()
	r := cliOK(t, o, "ls")
	text := false
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == idArg(id) {
			text = true
		}
	}
	js := false
	for _, b := range batchesJSON(t, o, "default") {
		js = js || b.ID == id
	}
	if text != js {
		t.Errorf("ls lists batch %d in text: %v, in JSON: %v\n%s", id, text, js, r)
	}
	return text
}

// fileStateColumn reads the state column of a file in `ls -L file`:
// /PATH SIZE MD5 STATE BATCH TAPES.
func fileStateColumn(t *testing.T, r cliResult, path string) string {
	t.Helper()
	for _, l := range strings.Split(r.stdout, "\n") {
		// A name with a space is quoted, as ls quotes it.
		rest, ok := strings.CutPrefix(l, path)
		if !ok {
			rest, ok = strings.CutPrefix(l, "'"+path+"'")
		}
		if ok && strings.HasPrefix(rest, " ") {
			if f := strings.Fields(rest); len(f) == 5 {
				return f[2]
			}
			t.Fatalf("ls -L file: line %q: want PATH SIZE MD5 STATE BATCH TAPES", l)
		}
	}
	t.Fatalf("ls -L file does not list %s\n%s", path, r)
	return ""
}

// getAndCompare restores a batch into a new directory and compares it
// with its source.
func getAndCompare(t *testing.T, o cliOpts, id uint64, src string) {
	t.Helper()
	restore := t.TempDir()
	cliOK(t, o, "get", "-b", idArg(id), "-r", restore)
	restored := filepath.Join(restore, src)
	if out, err := exec.Command("diff", "-r", "--no-dereference", src, restored).CombinedOutput(); err != nil {
		t.Fatalf("diff -r %s %s: %v\n%s", src, restored, err, lastLines(string(out), 30))
	}
	compareMeta(t, src, restored)
}

// writeFiles creates files of the given sizes (random bytes) under root.
func writeFiles(t *testing.T, root string, files map[string]int) {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{7})
	for name, size := range files {
		writeRandomFile(t, rng, filepath.Join(root, name), size)
	}
}

// writeRandomFile writes size bytes of rng to the file p (mode 0644),
// making its directory.
func writeRandomFile(t *testing.T, rng *rand.ChaCha8, p string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	_, _ = rng.Read(b)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCLIMalformedLists: each bad line of a list file is an error naming
// the file and line; nothing is archived without -c; with -c the line is
// reported as skipped, the rest archived, exit code 2. Run as an
// unprivileged user, so that an unreadable file is unreadable.
func TestCLIMalformedLists(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	root := cliOpts{home: s.home}
	user := cliOpts{home: s.home, nobody: true}
	uid := strconv.Itoa(nobodyUID)
	cliOK(t, root, "workspace", "create", "mine", "--owner", uid, "--group", uid)
	dir := filepath.Join(sharedTempDir(t), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := 0
	file := func(name string) string {
		n++
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(fmt.Sprintf("%s %d\n", name, n)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	list := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	archived := file("archived.dat")
	batchID(t, cliOK(t, user, "put", "-w", "mine", "-f", list("first.list", archived)))
	unreadable := file("secret.dat")
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}

	cases := []struct{ name, line, why string }{
		{"blank", "", "blank line"},
		{"relative", "relative/path.dat", "relative path"},
		{"missing", filepath.Join(dir, "missing.dat"), "no such file"},
		{"unreadable", unreadable, "permission denied"},
		{"duplicate", archived, "already archived"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			good1, good2 := file(c.name+"-1.dat"), file(c.name+"-2.dat")
			l := list(c.name+".list", good1, c.line, good2)
			where := l + ":2:"
			before := len(batchesJSON(t, user, "mine"))

			r := runTapefs(t, user, "put", "-w", "mine", "-f", l)
			wantCode(t, r, cli.ExitFailed)
			wantLine(t, r, where, c.line, c.why)
			if r.stdout != "" {
				t.Errorf("a put that archives nothing printed %q on stdout", r.stdout)
			}
			if after := len(batchesJSON(t, user, "mine")); after != before {
				t.Errorf("put without -c of a bad list: %d batches in the workspace, %d before: something was archived", after, before)
			}

			r = runTapefs(t, user, "put", "-c", "-w", "mine", "-f", l)
			wantCode(t, r, cli.ExitPartial)
			wantLine(t, r, where, c.line, c.why, "skipped")
			if r.code != cli.ExitPartial {
				return
			}
			id := batchID(t, r)
			got := regularPaths(filesJSON(t, user, id))
			want := map[string]bool{batchPath(good1): true, batchPath(good2): true}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("put -c: batch %d holds the files %v, want the good entries %v", id, got, want)
			}
		})
	}

	t.Run("all", func(t *testing.T) {
		good1, good2 := file("all-1.dat"), file("all-2.dat")
		lines := []string{good1}
		for _, c := range cases {
			lines = append(lines, c.line)
		}
		l := list("all.list", append(lines, good2)...)
		r := runTapefs(t, user, "put", "-w", "mine", "-f", l)
		wantCode(t, r, cli.ExitFailed)
		for i, c := range cases {
			wantLine(t, r, fmt.Sprintf("%s:%d:", l, i+2), c.line, c.why)
		}
		r = runTapefs(t, user, "put", "-c", "-w", "mine", "-f", l)
		wantCode(t, r, cli.ExitPartial)
		for i, c := range cases {
			wantLine(t, r, fmt.Sprintf("%s:%d:", l, i+2), c.line, c.why, "skipped")
		}
		if r.code == cli.ExitPartial {
			got := regularPaths(filesJSON(t, user, batchID(t, r)))
			if len(got) != 2 || !got[batchPath(good1)] || !got[batchPath(good2)] {
				t.Errorf("put -c: the batch holds %v, want only the 2 good entries", got)
			}
		}
	})
}

func batchPath(abs string) string { return strings.TrimPrefix(abs, "/") }

// wantLine checks that one line of stderr holds all the given strings,
// starting with the first (LISTFILE:N:).
func wantLine(t *testing.T, r cliResult, where string, more ...string) {
	t.Helper()
	for _, l := range strings.Split(r.stderr, "\n") {
		i := strings.Index(l, where)
		if i < 0 {
			continue
		}
		ok := true
		for _, m := range more {
			ok = ok && strings.Contains(strings.ToLower(l), strings.ToLower(m))
		}
		if ok {
			return
		}
	}
	t.Errorf("stderr has no line naming %q with %q\n%s", where, more, r)
}

// TestCLIUnprivilegedUser: a user who does not manage a workspace cannot
// put into it, rm from it or see it; nobody can archive a file they
// cannot read, even into their own workspace.
func TestCLIUnprivilegedUser(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	root := cliOpts{home: s.home}
	user := cliOpts{home: s.home, nobody: true}
	uid := strconv.Itoa(nobodyUID)
	dir := filepath.Join(sharedTempDir(t), "data")
	writeFiles(t, filepath.Join(dir, "rootdata"), map[string]int{"r.dat": 1000})
	writeFiles(t, filepath.Join(dir, "public"), map[string]int{"p.dat": 2000, "q/q.dat": 10})
	writeFiles(t, filepath.Join(dir, "mixed"), map[string]int{"ok.dat": 300, "secret.dat": 400})
	secret := filepath.Join(dir, "mixed", "secret.dat")
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	id := batchID(t, cliOK(t, root, "put", filepath.Join(dir, "rootdata")))
	cliOK(t, root, "workspace", "create", "theirs", "--owner", uid, "--group", uid)

	t.Run("put-into-others", func(t *testing.T) {
		before := len(batchesJSON(t, root, "default"))
		r := runTapefs(t, user, "put", "-w", "default", filepath.Join(dir, "public"))
		wantCode(t, r, cli.ExitFailed)
		if r.stdout != "" || r.stderr == "" {
			t.Errorf("a refused put should print nothing on stdout and say why on stderr\n%s", r)
		}
		if after := len(batchesJSON(t, root, "default")); after != before {
			t.Errorf("workspace default has %d batches after the refused put, %d before", after, before)
		}
		// The same through the configuration: TAPEFS_WORKSPACE.
		u := user
		u.env = []string{"TAPEFS_WORKSPACE=default"}
		wantCode(t, runTapefs(t, u, "put", filepath.Join(dir, "public")), cli.ExitFailed)
	})
	t.Run("rm-from-others", func(t *testing.T) {
		r := runTapefs(t, user, "rm", "-b", idArg(id))
		wantCode(t, r, cli.ExitFailed)
		if st := batchJSON(t, root, id).State; st == api.Deleted {
			t.Errorf("batch %d of workspace default is %s after an rm by uid %d", id, st, nobodyUID)
		}
		wantCode(t, runTapefs(t, user, "undelete", "-b", idArg(id)), cli.ExitFailed)
		wantCode(t, runTapefs(t, user, "cache", "evict", "-b", idArg(id)), cli.ExitFailed)
	})
	t.Run("cannot-see", func(t *testing.T) {
		r := cliOK(t, user, "ls", "-L", "workspace")
		if !hasField(r.stdout, 0, "theirs") {
			t.Errorf("ls -L workspace does not show the user's own workspace theirs\n%s", r)
		}
		if hasField(r.stdout, 0, "default") {
			t.Errorf("ls -L workspace shows workspace default to uid %d, who is neither its manager nor in its group\n%s", nobodyUID, r)
		}
		r = cliOK(t, user, "workspace", "list")
		if hasField(r.stdout, 0, "default") {
			t.Errorf("workspace list shows default to uid %d\n%s", nobodyUID, r)
		}
		for _, args := range [][]string{
			{"ls", "-w", "default"},
			{"ls", "-w", "default", "-L", "file"},
			{"ls", "-b", idArg(id)},
			{"status", "-b", idArg(id)},
			{"status", "-w", "default"},
		} {
			r := runTapefs(t, user, args...)
			if r.code == 0 || strings.Contains(r.stdout, "rootdata") || strings.Contains(r.stdout, idArg(id)+" ") {
				t.Errorf("uid %d sees workspace default\n%s", nobodyUID, r)
			}
		}
		restore := filepath.Join(dir, "restore-by-user")
		r = runTapefs(t, user, "get", "-b", idArg(id), "-r", restore)
		if r.code == 0 {
			t.Errorf("uid %d restored a batch of workspace default\n%s", nobodyUID, r)
		}
		if _, err := os.Stat(filepath.Join(restore, dir, "rootdata", "r.dat")); err == nil {
			t.Errorf("uid %d restored %s", nobodyUID, filepath.Join(dir, "rootdata", "r.dat"))
		}
		wantCode(t, runTapefs(t, user, "workspace", "create", "grab"), cli.ExitFailed)
	})
	t.Run("unreadable-file", func(t *testing.T) {
		r := runTapefs(t, user, "put", "-w", "theirs", filepath.Join(dir, "mixed"))
		wantCode(t, r, cli.ExitFailed)
		wantLine(t, r, secret, "permission denied")
		l := filepath.Join(dir, "secret.list")
		if err := os.WriteFile(l, []byte(secret+"\n"+filepath.Join(dir, "mixed", "ok.dat")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r = runTapefs(t, user, "put", "-w", "theirs", "-f", l)
		wantCode(t, r, cli.ExitFailed)
		wantLine(t, r, l+":1:", secret, "permission denied")
		if n := len(batchesJSON(t, user, "theirs")); n != 0 {
			t.Errorf("workspace theirs holds %d batches after puts that were refused", n)
		}
		r = runTapefs(t, user, "put", "-c", "-w", "theirs", "-f", l)
		wantCode(t, r, cli.ExitPartial)
		if r.code == cli.ExitPartial {
			got := regularPaths(filesJSON(t, user, batchID(t, r)))
			if len(got) != 1 || !got[batchPath(filepath.Join(dir, "mixed", "ok.dat"))] {
				t.Errorf("put -c of a list with a file uid %d cannot read: the batch holds %v, want only ok.dat", nobodyUID, got)
			}
		}
		// What the user can read, they can archive into their workspace,
		// and get back: written as the user.
		id := batchID(t, cliOK(t, user, "put", "-w", "theirs", filepath.Join(dir, "public")))
		cliOK(t, user, "status", "-b", idArg(id), "--wait")
		restore := filepath.Join(dir, "restore-own")
		if err := os.Mkdir(restore, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(restore, 0o777); err != nil {
			t.Fatal(err)
		}
		cliOK(t, user, "get", "-b", idArg(id), "-r", restore)
		p := filepath.Join(restore, dir, "public", "q", "q.dat")
		if st := stat(t, p); st.Uid != nobodyUID || st.Gid != nobodyUID {
			t.Errorf("%s restored by uid %d is owned by %d:%d, want the invoking user", p, nobodyUID, st.Uid, st.Gid)
		}
		sh(t, "/", "diff -r "+q(filepath.Join(dir, "public"))+" "+q(filepath.Join(restore, dir, "public")))
	})
}

// hasField reports whether a line of text has s as its field i.
func hasField(text string, i int, s string) bool {
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) > i && f[i] == s {
			return true
		}
	}
	return false
}

// TestCLIGetRefusesDotDot: a catalog path with ".." (injected into the
// catalog while the daemon is stopped) is refused by get, which writes
// nothing outside -r DIR.
func TestCLIGetRefusesDotDot(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := cliOpts{home: s.home}
	base := t.TempDir()
	src := filepath.Join(base, "src")
	writeFiles(t, src, map[string]int{"keep.dat": 5000, "evil1.dat": 11, "evil2.dat": 12, "evil3.dat": 13})
	id := batchID(t, cliOK(t, o, "put", src))
	cliOK(t, o, "status", "-b", idArg(id), "--wait")
	s.stop()

	// restore is base/a/b/restore: each path below, joined naively to
	// it, lands in base.
	evil := map[string]string{
		batchPath(filepath.Join(src, "evil1.dat")): "../escaped1",
		batchPath(filepath.Join(src, "evil2.dat")): "x/../../../escaped2",
		batchPath(filepath.Join(src, "evil3.dat")): "/../../../escaped3",
	}
	injectPaths(t, s.home, id, evil)
	s.start()

	restore := filepath.Join(base, "a", "b", "restore")
	work := filepath.Join(base, "work")
	for _, d := range []string{work, filepath.Dir(restore)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	before := treeSnapshot(t, base, restore, work)
	o.dir = work
	r := runTapefs(t, o, "get", "-b", idArg(id), "-r", restore)
	wantCode(t, r, cli.ExitPartial)
	for _, p := range evil {
		wantLine(t, r, strings.TrimPrefix(p, "/"), "not restored", "refused")
	}
	after := treeSnapshot(t, base, restore, work)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		var added []string
		for p := range after {
			if _, ok := before[p]; !ok {
				added = append(added, p)
			}
		}
		t.Errorf("get wrote outside -r %s: %v", restore, added)
	}
	// Nothing anywhere above base either.
	_ = filepath.WalkDir(filepath.Dir(base), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), "escaped") {
			t.Errorf("get created %s", p)
		}
		return nil
	})
	for _, p := range []string{"/escaped1", "/escaped2", "/escaped3"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists", p)
		}
	}
	// The good file is restored, intact.
	keep := filepath.Join(src, "keep.dat")
	if got, want := fileMD5(t, filepath.Join(restore, keep)), fileMD5(t, keep); got != want {
		t.Errorf("keep.dat restored with md5 %s, want %s", got, want)
	}
	// The refused files are in the retry list.
	retry, _ := filepath.Glob(filepath.Join(work, "tapefs-get-failed-*.list"))
	if len(retry) != 1 {
		t.Errorf("want one retry list in the working directory of get, found %v\n%s", retry, r)
	} else if b, err := os.ReadFile(retry[0]); err != nil || strings.Count(string(b), "escaped") != 3 {
		t.Errorf("retry list %s: %q (%v): want the 3 refused paths", retry[0], b, err)
	}
}

// injectPaths rewrites the path of files of a batch in a stopped
// daemon's catalog, with a raw bbolt update of their records (the
// catalog's own API refuses to change a path). old paths -> new paths.
func injectPaths(t *testing.T, home string, batch uint64, paths map[string]string) {
	t.Helper()
	db, err := openCatalogEngine(home)
	if err != nil {
		t.Fatalf("open the catalog of %s: %v", home, err)
	}
	defer db.Close()
	err = db.Update(func(b catalog.KVTxn) error {
		type edit struct {
			k []byte
			f catalog.File
		}
		var edits []edit
		err := b.Scan([]byte{'F'}, nil, false, func(k, v []byte) (bool, error) {
			if len(k) != 9 {
				return true, nil
			}
			var f catalog.File
			if err := json.Unmarshal(v, &f); err != nil {
				return false, fmt.Errorf("file %d: %w", binary.BigEndian.Uint64(k[1:]), err)
			}
			if np, ok := paths[f.Path]; ok && f.Batch == batch {
				f.Path = np
				edits = append(edits, edit{bytes.Clone(k), f})
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if len(edits) != len(paths) {
			return fmt.Errorf("found %d of the %d files to edit in batch %d", len(edits), len(paths), batch)
		}
		for _, e := range edits {
			data, err := json.Marshal(e.f)
			if err != nil {
				return err
			}
			if err := b.Put(e.k, data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("inject paths into the catalog of %s: %v", home, err)
	}
}

// TestCLIConfigPrecedence: [Batch] Workspace in /etc/tapefs.conf, in
// ~/.tapefs.conf, TAPEFS_WORKSPACE and -w: the highest present wins. An
// unknown key warns naming file and line; a bad value exits 4 naming
// them.
func TestCLIConfigPrecedence(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	root := cliOpts{home: s.home}
	places := []string{"ws_system", "ws_user", "ws_env", "ws_flag"}
	for _, ws := range places {
		cliOK(t, root, "workspace", "create", ws)
	}
	dir := t.TempDir()
	conf := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sysConf := conf("system.conf", "# /etc/tapefs.conf\n[Batch]\nWorkspace = ws_system\n")
	userConf := conf("user.conf", "[Directory]\noutputLevel = batch\n\n[Batch]\n  workspace = \"ws_user\"\n")

	for mask := range 16 {
		o := root
		args := []string{"put"}
		want := "default"
		var set []string
		if mask&1 != 0 {
			o.env, want, set = append(o.env, "TAPEFS_SYSTEM_CONFIG="+sysConf), "ws_system", append(set, "system")
		}
		if mask&2 != 0 {
			o.env, want, set = append(o.env, "TAPEFS_USER_CONFIG="+userConf), "ws_user", append(set, "user")
		}
		if mask&4 != 0 {
			o.env, want, set = append(o.env, "TAPEFS_WORKSPACE=ws_env"), "ws_env", append(set, "env")
		}
		if mask&8 != 0 {
			args, want, set = append(args, "-w", "ws_flag"), "ws_flag", append(set, "flag")
		}
		src := filepath.Join(dir, fmt.Sprintf("src%02d", mask))
		writeFiles(t, src, map[string]int{"f.dat": 100 + mask})
		r := runTapefs(t, o, append(args, src)...)
		if r.code != 0 {
			t.Errorf("set in %v: want exit 0\n%s", set, r)
			continue
		}
		if got := batchJSON(t, root, batchID(t, r)).Workspace; got != want {
			t.Errorf("workspace set in %v: the batch went to %s, want %s", set, got, want)
		}
	}

	t.Run("unknown-key", func(t *testing.T) {
		sys := conf("warn-system.conf", "[Batch]\nWorkspace = ws_system\nWorkspaec = typo\n")
		user := conf("warn-user.conf", "# comment\n[Nonsense]\nkey = 1\n")
		o := root
		o.env = []string{"TAPEFS_SYSTEM_CONFIG=" + sys, "TAPEFS_USER_CONFIG=" + user}
		r := runTapefs(t, o, "ls", "-L", "workspace")
		wantCode(t, r, 0)
		wantLine(t, r, sys+":3", "warning", "workspaec")
		wantLine(t, r, user+":3", "warning", "key")
		// The known key still applies.
		r = cliOK(t, o, "put", filepath.Join(dir, "src00"))
		if got := batchJSON(t, root, batchID(t, r)).Workspace; got != "ws_system" {
			t.Errorf("with an unknown key beside it, [Batch] Workspace = ws_system sent the batch to %s", got)
		}
	})
	t.Run("bad-value", func(t *testing.T) {
		bad := conf("bad.conf", "[Batch]\nWorkspace = ws_user\n[Directory]\noutputLevel = nonsense\n")
		malformed := conf("malformed.conf", "[Batch]\nthis line has no equals sign\n")
		for _, env := range []string{"TAPEFS_SYSTEM_CONFIG", "TAPEFS_USER_CONFIG"} {
			for _, f := range []struct {
				path, where string
			}{{bad, bad + ":4"}, {malformed, malformed + ":2"}} {
				o := root
				o.env = []string{env + "=" + f.path}
				for _, args := range [][]string{{"ls"}, {"put", filepath.Join(dir, "src00")}} {
					r := runTapefs(t, o, args...)
					wantCode(t, r, cli.ExitUsage)
					wantLine(t, r, f.where)
				}
			}
		}
	})
}

// TestCLINoDaemon: with no daemon, every command exits 3 and says how to
// start one.
func TestCLINoDaemon(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, filepath.Join(dir, "src"), map[string]int{"a.dat": 10})
	list := filepath.Join(dir, "a.list")
	if err := os.WriteFile(list, []byte(filepath.Join(dir, "src", "a.dat")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A home whose daemon is gone and left its socket behind.
	stale := filepath.Join(dir, "stale")
	if err := os.Mkdir(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(stale, "tapefs.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	commands := [][]string{
		{"put", filepath.Join(dir, "src")},
		{"put", "-f", list},
		{"get", "-b", "1", "-r", filepath.Join(dir, "restore")},
		{"rm", "-b", "1"},
		{"undelete", "-b", "1"},
		{"ls"},
		{"ls", "-L", "workspace"},
		{"status"},
		{"status", "-b", "1", "--wait"},
		{"seal", filepath.Join(dir, "mnt", "default", "put", "x")},
		{"workspace", "list"},
		{"workspace", "create", "x"},
		{"library", "status"},
		{"cache", "evict", "-b", "1"},
	}
	for _, home := range []string{filepath.Join(dir, "never"), stale} {
		for _, args := range commands {
			for _, viaFlag := range []bool{false, true} {
				o, a := cliOpts{home: home}, args
				if viaFlag {
					o, a = cliOpts{}, append([]string{args[0], "--home", home}, args[1:]...)
				}
				r := runTapefs(t, o, a...)
				wantCode(t, r, cli.ExitNoDaemon)
				if !strings.Contains(r.stderr, "no tapefs daemon") || !strings.Contains(r.stderr, "tapefs mount") || !strings.Contains(r.stderr, "tapefs serve") {
					t.Errorf("with no daemon, the command should say so and how to start one ('tapefs mount', 'tapefs serve')\n%s", r)
				}
				if !strings.Contains(r.stderr, filepath.Join(home, "tapefs.sock")) {
					t.Errorf("the message does not name the socket it tried (%s)\n%s", filepath.Join(home, "tapefs.sock"), r)
				}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "restore")); err == nil {
		t.Errorf("get with no daemon created its restore directory")
	}
}

// TestCLISealThroughMount: an entry copied into MOUNT/default/put/ is
// sealed at once by `tapefs seal`, whose printed ID is the batch's
// directory in the mount.
func TestCLISealThroughMount(t *testing.T) {
	t.Parallel()
	// A settle time long enough that only tapefs seal can seal the entry.
	d := startDaemon(t, "--time-scale", "0", "--settle", "10m", "--flush-age", "1s", "--recall-linger", "1ms")
	o := cliOpts{home: d.home}
	src := filepath.Join(t.TempDir(), "run9")
	writeFiles(t, src, map[string]int{"a.dat": 100 << 10, "b/c.dat": 0, "b/d e.txt": 33})
	if err := os.Symlink("b/c.dat", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	put := d.put("default")
	sh(t, "/", "cp -a "+q(src)+" "+q(put+"/"))
	before := d.batchIDs("default")
	t0 := time.Now()
	r := cliOK(t, o, "seal", filepath.Join(put, "run9"))
	id := idArg(batchID(t, r))
	t.Logf("tapefs seal: batch %s after %v", id, time.Since(t0).Round(time.Millisecond))
	for _, b := range before {
		if b == id {
			t.Fatalf("tapefs seal printed %s, a batch that existed before", id)
		}
	}
	batchDir := filepath.Join(d.ws("default"), id)
	if st, err := os.Stat(batchDir); err != nil || !st.IsDir() {
		t.Fatalf("the ID printed by tapefs seal is not a batch directory of the mount: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(put, "run9")); err == nil {
		t.Errorf("%s still in put/ after tapefs seal", filepath.Join(put, "run9"))
	}
	sh(t, "/", "diff -r --no-dereference "+q(src)+" "+q(filepath.Join(batchDir, "run9")))
	cliOK(t, o, "status", "-b", id, "--wait")

	// Not an entry of put/: refused.
	r = runTapefs(t, o, "seal", batchDir)
	wantCode(t, r, cli.ExitFailed)
}

// TestCLIHelp: every command's --help exits 0 and shows examples; `tapefs
// help exit-codes` lists the codes 0 to 4.
func TestCLIHelp(t *testing.T) {
	t.Parallel()
	o := cliOpts{home: filepath.Join(t.TempDir(), "no-daemon-here")}
	names := []string{"mount", "serve"}
	for _, c := range cli.Commands {
		names = append(names, c.Name)
	}
	for _, want := range []string{"put", "get", "rm", "undelete", "ls", "status", "seal", "workspace", "library", "cache"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("no command %q", want)
		}
	}
	for _, name := range names {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {"help", name}} {
			r := runTapefs(t, o, args...)
			wantCode(t, r, 0)
			if !strings.Contains(r.stdout, "Examples") || !strings.Contains(r.stdout, "tapefs "+name) {
				t.Errorf("want a help with 'Examples' and 'tapefs %s' on stdout\n%s", name, r)
			}
		}
	}
	r := cliOK(t, o, "--help")
	for _, name := range names {
		if !hasField(r.stdout, 0, name) {
			t.Errorf("tapefs --help does not list %s\n%s", name, r)
		}
	}
	r = cliOK(t, o, "help", "exit-codes")
	for code := range 5 {
		if !regexp.MustCompile(`(?m)^\s*` + strconv.Itoa(code) + `\s+\S`).MatchString(r.stdout) {
			t.Errorf("tapefs help exit-codes does not explain code %d\n%s", code, r)
		}
	}
}

package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tapefs/tapefs/cli"
)

// Linux file names are bytes: anything but NUL and '/'. These tests carry
// names that are not UTF-8, and names with tabs, newlines, backslashes and
// quotes, through every layer: the mount's put/, sealing, the catalog, the
// batch tree, a restart, tape (and GNU tar reading it), the CLI's put, get,
// ls and ls -F md5sum.

// byteNames are the entry names of the tree the tests archive, with their
// contents: the f/{a, x\xff, z}, and more.
var byteNames = map[string]string{
	"a":                 "a\n",
	"x\xff":             "b",
	"z":                 "c\n",
	"tab\there":         "tab",
	"new\nline":         "newline",
	"back\\slash":       "backslash",
	"cr\rname":          "carriage return",
	"quote'd \"x\"":     "quotes",
	"caf\xc3\xa9":       "valid UTF-8",
	"lat\xe9n1":         "latin-1",
	"d\xfe/inner\x80":   "in a directory with a bad name",
	"d\xfe/\x01ctl\x7f": "control characters",
}

// writeOddTree writes byteNames under dir (which must exist) with shell
// tools where the issue did (printf), so the bytes go through real
// syscalls of a real program, and adds a symlink whose target is not UTF-8.
func writeOddTree(t *testing.T, dir string) {
	t.Helper()
	for name, content := range byteNames {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", "-c", `printf %s "$2" > "$1"`, "-", p, content)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("printf > %q: %v\n%s", p, err, out)
		}
	}
	if err := os.Symlink("x\xff", filepath.Join(dir, "link\xfd")); err != nil {
		t.Fatal(err)
	}
}

// checkOddTree checks that dir holds exactly the tree writeOddTree wrote:
// every name byte for byte (readdir), every content (read through the
// name, so lookup works too), the symlink's target.
func checkOddTree(t *testing.T, dir string) {
	t.Helper()
	want := map[string]bool{"link\xfd": true, "d\xfe": true}
	for name := range byteNames {
		want[name] = true
	}
	got := map[string]bool{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			got[strings.TrimPrefix(p, dir+"/")] = true
		}
		return nil
	})
	if err != nil {
		t.Errorf("walk %q: %v", dir, err)
	}
	if !equalSets(got, want) {
		t.Errorf("%q holds %q, want %q", dir, sortedKeys(got), sortedKeys(want))
	}
	for name, content := range byteNames {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("read %q: %v", filepath.Join(dir, name), err)
			continue
		}
		if string(b) != content {
			t.Errorf("%q holds %q, want %q", filepath.Join(dir, name), b, content)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "link\xfd")); err != nil || target != "x\xff" {
		t.Errorf("readlink %q: %q, %v; want %q", filepath.Join(dir, "link\xfd"), target, err, "x\xff")
	}
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestNamesAreBytes is the scenario (#8, fault 1) end to end: a
// directory with a name that is not UTF-8 is sealed with setfattr, read
// back through the mount, after a restart and from tape; its tape file
// extracts byte-exact with GNU tar; ls -F md5sum | md5sum -c checks a get
// of it; ls -F json carries the exact bytes; and a CLI put -f of such a
// file is restored byte-exact by get.
func TestNamesAreBytes(t *testing.T) {
	t.Parallel()
	// Only an explicit seal seals.
	d := startDaemon(t, "--time-scale", "0", "--settle", "1h", "--flush-age", "1s", "--recall-linger", "1ms")
	o := cliOpts{home: d.home}
	put := d.put("default")
	entry := filepath.Join(put, "f")
	if err := os.Mkdir(entry, 0o755); err != nil {
		t.Fatal(err)
	}
	writeOddTree(t, entry)
	checkOddTree(t, entry)

	before := d.batchIDs("default")
	seal(t, entry)
	id := d.waitNewBatch("default", before, 30*time.Second)
	d.waitBatchState("default", id, "CACHED_SYNCED", 60*time.Second)
	batchDir := filepath.Join(d.ws("default"), id, "f")
	checkOddTree(t, batchDir)
	if left := listNames(put); len(left) != 0 {
		t.Errorf("put/ still holds %q after the seal", left)
	}

	// tapefs seal of an entry whose own name is not UTF-8 (the path
	// crosses the control API).
	entry2 := filepath.Join(put, "g\xff")
	sh(t, "/", "mkdir "+q(entry2)+" && printf g > "+q(entry2+"/\xfe"))
	sealed := idArg(batchID(t, cliOK(t, o, "seal", entry2)))
	if b, err := os.ReadFile(filepath.Join(d.ws("default"), sealed, "g\xff", "\xfe")); err != nil || string(b) != "g" {
		t.Errorf("batch %s sealed by tapefs seal: %q, %v", sealed, b, err)
	}
	d.waitBatchState("default", sealed, "CACHED_SYNCED", 60*time.Second) // before evict drops every object
	// The batch's TAG column names its entry by its own bytes (the wire
	// used to turn \xff into U+FFFD).
	if r := cliOK(t, o, "ls", "-w", "default"); !strings.Contains(r.stdout, `'g'$'\377'`) {
		t.Errorf("tapefs ls -w does not name batch %s's entry g\\xff as 'g'$'\\377':\n%s", sealed, r)
	}
	// So does the list of refused entries.
	refused := filepath.Join(put, "p\xfd")
	sh(t, "/", "mkdir "+q(refused)+" && mkfifo "+q(refused+"/fifo"))
	if r := runTapefs(t, o, "seal", refused); r.code == 0 {
		t.Errorf("tapefs seal of an entry holding a named pipe succeeded:\n%s", r)
	}
	if r := cliOK(t, o, "status", "-w", "default"); !strings.Contains(r.stdout, `default/put/'p'$'\375'`) {
		t.Errorf("tapefs status does not list the refused entry p\\xfd by its bytes:\n%s", r)
	}
	if err := os.RemoveAll(refused); err != nil {
		t.Fatal(err)
	}

	// A restart reads the names back from the catalog; eviction makes
	// every read a recall from tape.
	d.restart()
	checkOddTree(t, batchDir)
	d.evict()
	checkOddTree(t, batchDir)
	if st := mustXattr(t, filepath.Join(d.ws("default"), id), "user.tapefs.state"); st != "SYNCED" && st != "CACHED_SYNCED" {
		t.Errorf("batch %s is %s after the recalls", id, st)
	}

	// GNU tar extracts the tape files with the same bytes in the names.
	tapes, err := filepath.Glob(filepath.Join(d.home, "library", "*", "0*.tar"))
	if err != nil {
		t.Fatal(err)
	}
	extract := t.TempDir()
	aggregates := 0
	for _, tf := range tapes {
		if filepath.Base(tf) != "000000.tar" { // the label
			sh(t, extract, "tar --warning=no-unknown-keyword -xf "+q(tf))
			aggregates++
		}
	}
	if aggregates == 0 {
		t.Fatalf("no tape file in the library: %q", tapes)
	}
	checkOddTree(t, filepath.Join(extract, "default", id, "f"))

	// get restores the names; ls -F md5sum lists them in md5sum's own
	// escaping, which md5sum -c reads back.
	restore := t.TempDir()
	cliOK(t, o, "get", "-b", id, "-r", restore)
	checkOddTree(t, filepath.Join(restore, "f"))
	sums := cliOK(t, o, "ls", "-b", id, "-F", "md5sum")
	md5 := exec.Command("md5sum", "-c", "--strict")
	md5.Dir = restore
	md5.Stdin = strings.NewReader(sums.stdout)
	out, err := md5.CombinedOutput()
	if err != nil {
		t.Errorf("tapefs ls -F md5sum | md5sum -c (in the restore): %v\n%s\nls -F md5sum said:\n%s", err, out, sums.stdout)
	}
	if n := strings.Count(string(out), ": OK\n"); n != len(byteNames) {
		t.Errorf("md5sum -c checked %d files, want %d\n%s", n, len(byteNames), out)
	}

	// ls -F json: valid UTF-8 JSON whatever the names, and the paths
	// decode to the exact bytes.
	js := cliOK(t, o, "ls", "-b", id, "-L", "file", "-F", "json").stdout
	if !utf8.ValidString(js) || !regexp.MustCompile(`"path":\s*\{\s*"base64":\s*"Zi94/w=="\s*\}`).MatchString(js) {
		t.Errorf("ls -F json: not UTF-8, or f/x\\xff is not {\"base64\": \"Zi94/w==\"}:\n%s", js)
	}
	paths := map[string]bool{}
	for _, f := range filesJSON(t, o, mustUint(t, id)) {
		paths[f.Path] = true
	}
	for name := range byteNames {
		if !paths["f/"+name] {
			t.Errorf("ls -F json: no path %q in %q", "f/"+name, sortedKeys(paths))
		}
	}

	// ls -L file (text): one line per entry, whatever bytes the names
	// hold; names with control characters are quoted as GNU ls quotes them.
	text := cliOK(t, o, "ls", "-b", id, "-L", "file")
	lines := strings.Split(strings.TrimSuffix(text.stdout, "\n"), "\n")
	// f, d\xfe, link\xfd and the files.
	if want := len(byteNames) + 3; len(lines) != want {
		t.Errorf("ls -L file: %d lines, want %d (one per entry)\n%s", len(lines), want, text.stdout)
	}
	if strings.ContainsAny(text.stdout, "\t\r\x01\x7f") {
		t.Errorf("ls -L file prints raw control characters:\n%q", text.stdout)
	}
	for _, want := range []string{`'/f/tab'$'\t''here'`, `'/f/new'$'\n''line'`, `'/f/x'$'\377'`} {
		if !strings.Contains(text.stdout, want) {
			t.Errorf("ls -L file: no %s in\n%s", want, text.stdout)
		}
	}

	// A CLI put -f of a file whose name is not UTF-8, and get of it.
	src := filepath.Join(sharedTempDir(t), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeOddTree(t, src)
	list := filepath.Join(t.TempDir(), "list")
	if err := os.WriteFile(list, []byte(filepath.Join(src, "x\xff")+"\n"+filepath.Join(src, "d\xfe", "inner\x80")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := cliOK(t, o, "put", "-f", list)
	id2 := batchID(t, r)
	cliOK(t, o, "status", "-b", idArg(id2), "--wait")
	restore2 := t.TempDir()
	cliOK(t, o, "get", "-b", idArg(id2), "-r", restore2)
	for _, name := range []string{"x\xff", "d\xfe/inner\x80"} {
		p := filepath.Join(restore2, src, name)
		if b, err := os.ReadFile(p); err != nil || string(b) != byteNames[name] {
			t.Errorf("get -b %d: %q holds %q, %v; want %q", id2, p, b, err, byteNames[name])
		}
	}
	// The daemon knows those two paths are archived (put checks by path).
	r = runTapefs(t, o, "put", src)
	wantCode(t, r, cli.ExitFailed)
	if n := strings.Count(r.stderr, "already archived"); n != 2 {
		t.Errorf("put of the directory holding the two files put -f archived: %d \"already archived\", want 2\n%s", n, r)
	}
	// A put of a whole directory of such names.
	src = filepath.Join(sharedTempDir(t), "src2")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeOddTree(t, src)
	r = cliOK(t, o, "put", src)
	id3 := batchID(t, r)
	cliOK(t, o, "status", "-b", idArg(id3), "--wait")
	restore3 := t.TempDir()
	cliOK(t, o, "get", "-b", idArg(id3), "-r", restore3)
	checkOddTree(t, filepath.Join(restore3, src))
	sums = cliOK(t, o, "ls", "-b", idArg(id3), "-F", "md5sum")
	md5 = exec.Command("md5sum", "-c", "--strict", "--quiet")
	md5.Dir = restore3
	md5.Stdin = strings.NewReader(sums.stdout)
	if out, err := md5.CombinedOutput(); err != nil {
		t.Errorf("tapefs ls -b %d -F md5sum | md5sum -c: %v\n%s", id3, err, out)
	}
	// get -f of a list naming such a file.
	getList := filepath.Join(t.TempDir(), "get.list")
	if err := os.WriteFile(getList, []byte(filepath.Join(src, "lat\xe9n1")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	restore4 := t.TempDir()
	cliOK(t, o, "get", "-f", getList, "-r", restore4)
	if b, err := os.ReadFile(filepath.Join(restore4, src, "lat\xe9n1")); err != nil || string(b) != byteNames["lat\xe9n1"] {
		t.Errorf("get -f: %q, %v", b, err)
	}

	// Lists with -0 (find -print0) carry names a line list cannot: a
	// newline, blanks at the end. put -0 -f archives them and get -0 -f
	// restores them, byte for byte; a name get cannot find comes back in
	// a NUL-separated retry list.
	src5 := filepath.Join(sharedTempDir(t), "src5")
	odd := []string{"new\nline", "trailing ", " leading", "cr\r"}
	if err := os.Mkdir(src5, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range odd {
		if err := os.WriteFile(filepath.Join(src5, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list0 := filepath.Join(t.TempDir(), "list0")
	sh(t, "/", "find "+q(src5)+" -type f -print0 > "+q(list0))
	id5 := batchID(t, cliOK(t, o, "put", "-0", "-f", list0))
	cliOK(t, o, "status", "-b", idArg(id5), "--wait")
	get0 := filepath.Join(t.TempDir(), "get0")
	var want0 strings.Builder
	for _, n := range append(odd, "missing\nname") {
		want0.WriteString(filepath.Join(src5, n) + "\x00")
	}
	if err := os.WriteFile(get0, []byte(want0.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	restore5 := t.TempDir()
	o5 := o
	o5.dir = t.TempDir() // where the retry list is written
	r5 := runTapefs(t, o5, "get", "-0", "-f", get0, "-r", restore5)
	wantCode(t, r5, cli.ExitPartial)
	for _, n := range odd {
		if b, err := os.ReadFile(filepath.Join(restore5, src5, n)); err != nil || string(b) != n {
			t.Errorf("get -0 -f: %q holds %q, %v", n, b, err)
		}
	}
	retries, _ := filepath.Glob(filepath.Join(o5.dir, "tapefs-get-failed-*.list"))
	if len(retries) != 1 || !strings.Contains(r5.stderr, "tapefs get -w default -0 -f ") {
		t.Fatalf("get -0 with a missing name: retry lists %q, stderr:\n%s", retries, r5.stderr)
	}
	if b, err := os.ReadFile(retries[0]); err != nil || string(b) != filepath.Join(src5, "missing\nname")+"\x00" {
		t.Errorf("retry list %q, %v; want the missing name NUL-terminated", b, err)
	}
}

// mustUint parses a batch ID of the mount.
func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("batch ID %q: %v", s, err)
	}
	return n
}

package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapefs/tapefs/cli"
)

// End-to-end tests of Elastic Tape's script names: the binary under test
// run through links named et_put.py, et_get.py, et_rm.py and et_ls.py, as
// make install lays them out, with Elastic Tape's documented options.

// etLinks makes a directory of links to the binary under test under
// Elastic Tape's names and returns it.
func etLinks(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range cli.ETNames {
		if err := os.Symlink(tapefsBin, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runET runs one of Elastic Tape's scripts (name, in the links directory)
// with o's environment.
func runET(t *testing.T, links string, o cliOpts, name string, args ...string) cliResult {
	t.Helper()
	cmd := tapefsCmd(t, o, args...)
	cmd.Path = filepath.Join(links, name)
	cmd.Args = append([]string{cmd.Path}, args...)
	r, err := runCmd(cmd, append([]string{"(as " + name + ")"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// etOK runs a script that must exit 0.
func etOK(t *testing.T, links string, o cliOpts, name string, args ...string) cliResult {
	t.Helper()
	r := runET(t, links, o, name, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	return r
}

const etXNote = "-X is accepted for Elastic Tape's scripts and ignored"

// TestETScripts is Elastic Tape's documented workflow through its own
// command names: et_put.py of a file list with -v, -l, -w and -t prints
// the batch ID alone and logs every file; et_ls.py lists the batch's
// files; et_get.py restores it from tape with -t 8, identical to the
// source; et_rm.py removes it; -X is taken and ignored with a note.
func TestETScripts(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := cliOpts{home: s.home}
	cliOK(t, o, "workspace", "create", "gws_et", "--owner", "0", "--group", "0")
	links := etLinks(t)
	base := t.TempDir()
	src := filepath.Join(base, "run0007")
	files := genAcquisition(t, src, 80)
	list := filepath.Join(base, "run0007.list")
	if err := os.WriteFile(list, []byte(strings.Join(files, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(base, "put.log")

	r := etOK(t, links, o, "et_put.py", "-v", "-l", logFile, "-w", "gws_et", "-t", "run0007", "-f", list)
	id := batchID(t, r)
	logText, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatalf("et_put.py -l %s wrote no log: %v", logFile, err)
	}
	for _, f := range files {
		if !strings.Contains(string(logText), "put "+f+" (") {
			t.Fatalf("log file lacks %s:\n%s", f, lastLines(string(logText), 10))
		}
		if !strings.Contains(r.stderr, "put "+f+" (") {
			t.Fatalf("-v: stderr lacks %s\n%s", f, r)
		}
	}
	if b := batchJSON(t, o, id); b.Workspace != "gws_et" || b.Tag != "run0007" {
		t.Errorf("batch %d: workspace %q tag %q, want gws_et and run0007", id, b.Workspace, b.Tag)
	}

	// et_ls.py -b ID -L file names every file; -X changes nothing but a
	// note, while plain tapefs still refuses -X (the names are what take it).
	ls := etOK(t, links, o, "et_ls.py", "-b", idArg(id), "-L", "file")
	for _, f := range files {
		if !strings.Contains(ls.stdout, strings.TrimPrefix(f, "/")) {
			t.Fatalf("et_ls.py -b %d -L file lacks %s\n%s", id, f, ls)
		}
	}
	wantCode(t, runTapefs(t, o, "ls", "-X", "-b", idArg(id)), cli.ExitUsage)

	// From tape: wait until the batch is there, drop the cached copies,
	// and restore with 8 streams.
	cliOK(t, o, "status", "-b", idArg(id), "--wait")
	// Once on tape every md5 is recorded (sealing computes them in the
	// background, so a listing taken earlier may still show "-").
	ls = etOK(t, links, o, "et_ls.py", "-b", idArg(id), "-L", "file")
	lsX := etOK(t, links, o, "et_ls.py", "-X", "-b", idArg(id), "-L", "file")
	// The state column may change between the two calls (the batch goes
	// to tape and may be evicted meanwhile): compare name, size and md5.
	if etListingKey(lsX.stdout) != etListingKey(ls.stdout) || !strings.Contains(lsX.stderr, etXNote) {
		t.Errorf("et_ls.py -X: want the same listing and a note on stderr\n%s\nwithout -X:\n%s", lsX, ls)
	}
	cliOK(t, o, "cache", "evict", "-b", idArg(id))
	restore := filepath.Join(base, "restore")
	get := etOK(t, links, o, "et_get.py", "-b", idArg(id), "-r", restore, "-t", "8")
	t.Logf("et_get.py -b %d -t 8 of %d files from tape: %v", id, len(files), get.took)
	restored := filepath.Join(restore, src)
	if out, err := exec.Command("diff", "-r", src, restored).CombinedOutput(); err != nil {
		t.Fatalf("diff -r %s %s: %v\n%s", src, restored, err, lastLines(string(out), 30))
	}
	compareMeta(t, src, restored)

	// et_rm.py, with -X in a group of ET's letters.
	rm := etOK(t, links, o, "et_rm.py", "-vX", "-b", idArg(id))
	if !strings.Contains(rm.stderr, etXNote) {
		t.Errorf("et_rm.py -vX: no note about -X\n%s", rm)
	}
	for _, b := range batchesJSON(t, o, "gws_et") {
		if b.ID == id {
			t.Fatalf("batch %d still listed after et_rm.py", id)
		}
	}

	// Elastic Tape's exit codes, which scripts test.
	id2 := batchID(t, etOK(t, links, o, "et_put.py", "-w", "gws_et", src))
	cliOK(t, o, "status", "-b", idArg(id2), "--wait")
	missing := filepath.Join(base, "missing.list")
	os.WriteFile(missing, []byte(filepath.Join(base, "no-such-file")+"\n"), 0o644)
	inFile := filepath.Join(list, "sub") // under a regular file: cannot be made
	for _, c := range []struct {
		name string
		args []string
		want int
	}{
		{"et_put.py", []string{"--no-such-flag"}, 1},
		{"et_put.py", []string{"-w", "gws_et", "-f", missing}, 2},  // error processing the list
		{"et_get.py", []string{"-b", idArg(id2), "-r", inFile}, 2}, // cannot write to the target
		{"et_get.py", []string{"-b", "999999", "-r", filepath.Join(base, "r2")}, 3},
		{"et_ls.py", []string{"-w", "no_such_ws"}, 2}, // not a workspace the caller may see
		{"et_rm.py", []string{"-b", "999999"}, 2},
	} {
		if r := runET(t, links, o, c.name, c.args...); r.code != c.want {
			t.Errorf("%s %v: exit %d, want Elastic Tape's %d\n%s", c.name, c.args, r.code, c.want, r)
		}
	}
}

// TestETConfig: the et_*.py names read Elastic Tape's configuration after
// tapefs's own files, so ~/.et_config's workspace wins over ~/.tapefs.conf's
// and /etc/et_config's, and -w over both; ET's own sections are not warned
// about; tapefs's own commands do not read ET's files.
func TestETConfig(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, ws := range []string{"gws_et", "gws_tapefs", "gws_site"} {
		cliOK(t, cliOpts{home: s.home}, "workspace", "create", ws, "--owner", "0", "--group", "0")
	}
	links := etLinks(t)
	base := t.TempDir()
	home := filepath.Join(base, "home")
	write := func(p, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(home, ".et_config"), "[Batch]\nWorkspace = gws_et ; ET's workspace of the run\n\n[Core]\nserver = et.example.org:8080\n")
	write(filepath.Join(base, "etc_et_config"), "[Batch]\nWorkspace = gws_site\n[Directory]\noutputLevel = workspace\n")
	write(filepath.Join(base, "tapefs.conf"), "[Batch]\nWorkspace = gws_tapefs\n")
	o := cliOpts{home: s.home, env: []string{"HOME=" + home,
		"TAPEFS_USER_CONFIG=" + filepath.Join(base, "tapefs.conf"),
		"TAPEFS_ET_SYSTEM_CONFIG=" + filepath.Join(base, "etc_et_config")}}
	dir := func(name string) string {
		d := filepath.Join(base, name)
		write(filepath.Join(d, "data.bin"), name+"\n")
		return d
	}

	for _, c := range []struct {
		name string
		args []string
		ws   string
	}{
		{"et_put.py", []string{dir("a")}, "gws_et"},
		{"et_put.py", []string{"-w", "gws_site", dir("b")}, "gws_site"},
		{"", []string{"put", dir("c")}, "gws_tapefs"},
	} {
		var r cliResult
		if c.name == "" {
			r = cliOK(t, o, c.args...)
		} else {
			r = etOK(t, links, o, c.name, c.args...)
		}
		if strings.Contains(r.stderr, "warning") {
			t.Errorf("ET's [Core] section should not be warned about\n%s", r)
		}
		id := batchID(t, r)
		if b := batchJSON(t, cliOpts{home: s.home}, id); b.Workspace != c.ws {
			t.Errorf("%s %q: batch %d in workspace %q, want %q\n%s", c.name, c.args, id, b.Workspace, c.ws, r)
		}
	}
	// /etc/et_config's outputLevel applies to et_ls.py (workspace level:
	// the quota table), not to tapefs ls (batch level: the batches).
	etLs := etOK(t, links, o, "et_ls.py", "-H")
	tLs := cliOK(t, o, "ls", "-H")
	if !strings.HasPrefix(etLs.stdout, "WORKSPACE") || !strings.Contains(etLs.stdout, "gws_et") {
		t.Errorf("et_ls.py -H: want the workspace table (outputLevel = workspace in /etc/et_config)\n%s", etLs)
	}
	if !strings.HasPrefix(tLs.stdout, "BATCH") {
		t.Errorf("tapefs ls -H: want the batches (ET's files are not tapefs's)\n%s", tLs)
	}
}

// etListingKey keeps the first three columns (name, size, md5) of each line
// of an et_ls.py listing: what must not change while a batch moves to tape.
func etListingKey(listing string) string {
	var b strings.Builder
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		if len(f) > 3 {
			f = f[:3]
		}
		b.WriteString(strings.Join(f, " "))
		b.WriteByte('\n')
	}
	return b.String()
}

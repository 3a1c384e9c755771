package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/cli"
)

// TestCLIPutListRepeats: a list naming one path 100,000 times reports the
// first repeats one by one and the rest in one counted line (issue 8: it
// printed 99,999 lines), and -c archives the path once.
func TestCLIPutListRepeats(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := cliOpts{home: s.home}
	dir := sharedTempDir(t)
	one := filepath.Join(dir, "one.dat")
	if err := os.WriteFile(one, []byte("once\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, "repeats.list")
	if err := os.WriteFile(list, []byte(strings.Repeat(one+"\n", 100_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runTapefs(t, o, "put", "-f", list)
	wantCode(t, r, cli.ExitFailed)
	if n := strings.Count(r.stderr, "\n"); n > 20 {
		t.Errorf("put of a list with 99,999 repeats printed %d lines on stderr, want a few and a count\n%s", n, r)
	}
	wantLine(t, r, list+":2:", one, "listed twice (first at "+list+":1)")
	wantLine(t, r, list+":12:", "99989 more lines", "listed before")
	if !strings.Contains(r.stderr, "fix the 99999 problem(s)") {
		t.Errorf("the summary does not count the 99,999 repeats\n%s", r)
	}
	if r.stdout != "" {
		t.Errorf("a refused put printed %q on stdout", r.stdout)
	}

	r = runTapefs(t, o, "put", "-c", "-f", list)
	wantCode(t, r, cli.ExitPartial)
	if n := strings.Count(r.stderr, "\n"); n > 20 {
		t.Errorf("put -c printed %d lines on stderr\n%s", n, r)
	}
	wantLine(t, r, list+":12:", "skipped", "99989 more lines")
	if r.code == cli.ExitPartial {
		if got := regularPaths(filesJSON(t, o, batchID(t, r))); len(got) != 1 || !got[batchPath(one)] {
			t.Errorf("the batch holds %v, want %s once", got, one)
		}
	}
}

// TestCLIPutOversizedFile: a put with a file over the daemon's maximum
// file size is refused before a batch exists, naming the file and the
// limit, and prints no batch ID (issue 8: it left a FAILED batch of 0
// files and printed its ID).
func TestCLIPutOversizedFile(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-file-size", "1K")
	o := cliOpts{home: s.home}
	dir := filepath.Join(sharedTempDir(t), "run")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	small, big := filepath.Join(dir, "small.dat"), filepath.Join(dir, "big.dat")
	if err := os.WriteFile(small, []byte("small\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(filepath.Dir(dir), "list")
	if err := os.WriteFile(list, []byte(small+"\n"+big+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"put", "-f", list}, {"put", dir}, {"put", "-c", "-f", list}} {
		r := runTapefs(t, o, args...)
		wantCode(t, r, cli.ExitFailed)
		if !strings.Contains(r.stderr, big) || !strings.Contains(r.stderr, "2.0 KiB (2048 bytes)") || !strings.Contains(r.stderr, "maximum file size of 1.0 KiB (1024 bytes)") {
			t.Errorf("%s: the message should name %s, its size and the limit\n%s", args, big, r)
		}
		if r.stdout != "" {
			t.Errorf("%s: a refused put printed %q on stdout (a batch ID?)", args, r.stdout)
		}
	}
	if bs := batchesJSON(t, o, "default"); len(bs) != 0 {
		t.Errorf("refused puts left %d batch(es): %+v", len(bs), bs)
	}
	// What fits still goes.
	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}
	batchID(t, cliOK(t, o, "put", dir))
}

// TestCLILsShowsEntryName: `tapefs ls -w` shows, in its TAG column, the
// name of the put/ entry a batch was sealed from, as the status page does
// (issue 8: it showed "-"); a tag still wins, and "-" is for a CLI put
// without one.
func TestCLILsShowsEntryName(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, fastFlags()...)
	o := cliOpts{home: d.home}
	entry := filepath.Join(d.put("default"), "run42")
	sh(t, "/", "mkdir "+q(entry)+" && echo a > "+q(entry+"/a.dat"))
	fromMount := d.waitNewBatch("default", nil, 60*time.Second)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "b.dat"), []byte("b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	untagged := batchID(t, cliOK(t, o, "put", src))
	if err := os.WriteFile(filepath.Join(src, "c.dat"), []byte("c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(t.TempDir(), "list")
	if err := os.WriteFile(list, []byte(filepath.Join(src, "c.dat")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tagged := batchID(t, cliOK(t, o, "put", "-t", "mytag", "-f", list))
	r := cliOK(t, o, "ls", "-w", "default", "-L", "batch")
	want := map[string]string{fromMount: "run42", idArg(untagged): "-", idArg(tagged): "mytag"}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("ls line %q", line)
		}
		if w, ok := want[f[0]]; ok {
			if f[1] != w {
				t.Errorf("batch %s: TAG column %q, want %q\n%s", f[0], f[1], w, r)
			}
			delete(want, f[0])
		}
	}
	if len(want) > 0 {
		t.Errorf("ls -w default does not list %v\n%s", want, r)
	}
}

// TestConfigInlineComments: the README's configuration example, with
// its comments after values and after [Daemon], works pasted into a file:
// the CLI's workspace is the word before the comment, and the daemon
// starts (issue 14: the workspace took the comment, [Daemon] ; ... stopped
// the daemon).
func TestConfigInlineComments(t *testing.T) {
	t.Parallel()
	conf := filepath.Join(sharedTempDir(t), "tapefs.conf")
	text := "[Batch]\nWorkspace = ws2        ; TAPEFS_WORKSPACE, -w\n\n" +
		"[Directory]\noutputLevel = batch         ; TAPEFS_OUTPUTLEVEL, -L (workspace, batch, file)\n\n" +
		"[Daemon]                    ; each also TAPEFS_<KEY> and --<key>\n" +
		"log-level = info ; debug for more\nretention = 168h # a week\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", conf)
	cliOK(t, cliOpts{home: s.home}, "workspace", "create", "ws2", "--owner", "0", "--group", "0")
	o := cliOpts{home: s.home, env: []string{"TAPEFS_USER_CONFIG=" + conf}}
	src := filepath.Join(t.TempDir(), "run")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a.dat"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := cliOK(t, o, "put", src)
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("the README's example gives warnings\n%s", r)
	}
	id := batchID(t, r)
	if st := batchJSON(t, o, id); st.Workspace != "ws2" {
		t.Errorf("batch %d went into workspace %q, want ws2 (the word before the comment)", id, st.Workspace)
	}
	r = cliOK(t, o, "ls")
	if !strings.HasPrefix(r.stdout, fmt.Sprint(id)+" ") {
		t.Errorf("ls with outputLevel = batch ; ... should list batch %d\n%s", id, r)
	}
}

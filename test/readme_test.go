package test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README paste test: what the README tells a newcomer to paste is
// taken from README.md itself and run, so the README cannot rot.

// readmeBlock returns the first fenced block of language lang after the
// heading of the README (e.g. "## First steps").
func readmeBlock(t *testing.T, heading, lang string) string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inSection, inBlock := false, false
	var b strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !inSection:
			inSection = strings.TrimSpace(line) == heading
		case !inBlock && strings.HasPrefix(line, "## "):
			t.Fatalf("README.md: no ```%s block under %q", lang, heading)
		case !inBlock:
			inBlock = strings.TrimSpace(line) == "```"+lang
		case strings.TrimSpace(line) == "```":
			return b.String()
		default:
			b.WriteString(line + "\n")
		}
	}
	t.Fatalf("README.md: no ```%s block under %q", lang, heading)
	return ""
}

// makeRunFlags are the daemon flags of `make run`, from the Makefile: the
// README's first steps run against that daemon.
func makeRunFlags(t *testing.T) []string {
	t.Helper()
	mk, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\t\$\(BIN\) mount --home \$\(RUN_HOME\) (.*) \$\(RUN_MNT\)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile: no '$(BIN) mount --home $(RUN_HOME) ... $(RUN_MNT)' line in the run target")
	}
	return strings.Fields(string(m[1]))
}

// TestReadmeFirstSteps runs the README's "First steps" block as pasted
// into a second shell at the top of the repository while `make run`
// runs: bin/tapefs, run/home and run/mnt are those of a daemon started
// with make run's flags. Only /tmp/ is moved into the test's directory,
// so that parallel runs do not share it.
func TestReadmeFirstSteps(t *testing.T) {
	t.Parallel()
	script := readmeBlock(t, "## First steps", "sh")
	d := startDaemon(t, makeRunFlags(t)...)
	top := t.TempDir()
	for _, l := range [][2]string{{tapefsBin, "bin/tapefs"}, {d.home, "run/home"}, {d.mnt, "run/mnt"}} {
		if err := os.MkdirAll(filepath.Join(top, filepath.Dir(l[1])), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(l[0], filepath.Join(top, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	script = strings.ReplaceAll(script, "/tmp/", tmp+"/")
	cmd := exec.Command("bash", "-e", "-x", "-c", script)
	cmd.Dir = top
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's first steps fail: %v\n%s", err, out)
	}
	t.Logf("first steps:\n%s", out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^1\nput$`),                            // ls run/mnt/default/   # 1  put
		regexp.MustCompile(`(?m)^1\s+default\s+CACHED_SYNCED\s+100%`), // status -b 1 --wait
		regexp.MustCompile(`(?m)^2\s+run2\s+`),                        // ls -w default -H: batch 2, tag run2
	} {
		if !want.Match(out) {
			t.Errorf("the output of the README's first steps lacks %s", want)
		}
	}
}

// TestReadmeConfigExample writes the README's configuration example to a
// file and gives it to the daemon (every [Daemon] key read and checked;
// --home and the test's flags win over the file's) and to the command
// line: no warning, no error, and the workspace is the word before the
// comment.
func TestReadmeConfigExample(t *testing.T) {
	t.Parallel()
	ini := readmeBlock(t, "## Configuration", "ini")
	conf := filepath.Join(sharedTempDir(t), "tapefs.conf")
	if err := os.WriteFile(conf, []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", conf)
	if log := s.proc.output(); strings.Contains(log, "warning") || strings.Contains(log, "unknown") {
		t.Errorf("the daemon warns about the README's configuration:\n%s", log)
	}
	o := cliOpts{home: s.home, env: []string{"TAPEFS_USER_CONFIG=" + conf}}
	r := runTapefs(t, o, "status")
	if r.code == 0 || strings.Contains(r.stderr, "warning") || !strings.Contains(r.stderr, "gws_run3") || strings.Contains(r.stderr, "TAPEFS_WORKSPACE") {
		t.Errorf("tapefs status with the README's configuration, before gws_run3 exists: want a refusal naming gws_run3 (without the comment) and no warning\n%s", r)
	}
	cliOK(t, cliOpts{home: s.home}, "workspace", "create", "gws_run3", "--owner", "0", "--group", "0")
	r = cliOK(t, o, "status") // the workspace of the example, comment stripped
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("warnings:\n%s", r)
	}
}

// TestReadmeCommandLine runs the README's command-line block in order, as
// root, on a fresh daemon with enough cartridges for the block's own:
// /data, /tape and /restore are moved into the test's directories, and
// the user alice and the group run3 the block names are made for it (and
// removed after) when the machine has none.
func TestReadmeCommandLine(t *testing.T) {
	t.Parallel()
	script := readmeBlock(t, "## The command line", "sh")
	ensureGroup(t, "run3")
	ensureUser(t, "alice", "run3")
	d := startDaemon(t, append(fastFlags(), "--cartridges", "8")...)
	top := t.TempDir()
	data := filepath.Join(top, "data")
	for _, run := range []string{"run1234", "run1235", "run1236", "run1237"} {
		writeFiles(t, filepath.Join(data, run), map[string]int{"a.dat": 50_000, "sub/b.dat": 3000, "sub/c.txt": 10})
	}
	restore := filepath.Join(top, "restore")
	script = strings.NewReplacer("/data/", data+"/", "/tape/", d.mnt+"/", "/restore", restore).Replace(script)
	cmd := exec.Command("bash", "-e", "-x", "-c", script)
	cmd.Dir = top
	cmd.Env = cleanEnv("TAPEFS_HOME="+d.home, "PATH="+filepath.Dir(tapefsBin)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's command-line block fails: %v\n%s", err, out)
	}
	for _, want := range []string{": OK", "repacked: scratch", "gws_run3"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the README's command-line block's output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "run1234")); !os.IsNotExist(err) {
		t.Errorf("the block's rm -r of the source once on tape did not happen: %v", err)
	}
}

// ensureGroup makes the group name if the machine has none, for this
// test only.
func ensureGroup(t *testing.T, name string) {
	t.Helper()
	if exec.Command("getent", "group", name).Run() == nil {
		return
	}
	if out, err := exec.Command("groupadd", name).CombinedOutput(); err != nil {
		t.Fatalf("groupadd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("groupdel", name).Run() })
}

// ensureUser makes the user name (in group) if the machine has none, for
// this test only.
func ensureUser(t *testing.T, name, group string) {
	t.Helper()
	if exec.Command("getent", "passwd", name).Run() == nil {
		return
	}
	if out, err := exec.Command("useradd", "-M", "-N", "-g", group, name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
}

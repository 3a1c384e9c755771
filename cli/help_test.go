package cli

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tapefs/tapefs/api"
)

// TestSuggest: a typo of a command gets its name; something unlike every
// command gets nothing.
func TestSuggest(t *testing.T) {
	cmds := []string{"put", "get", "rm", "ls", "status", "seal", "workspace", "library", "verify"}
	for in, want := range map[string]string{"stauts": "status", "statu": "status", "wrokspace": "workspace", "lib": "", "xyzzy": "", "pt": "put", "s": ""} {
		got, ok := Suggest(in, cmds)
		if got != want || ok != (want != "") {
			t.Errorf("Suggest(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// TestBadFlagValue: a bad number names the flag and what it takes, and
// no Go parser text reaches the user.
func TestBadFlagValue(t *testing.T) {
	var out, errb bytes.Buffer
	code := Run(lsCommand, []string{"-b", "1x"}, &out, &errb)
	if code != ExitUsage {
		t.Errorf("exit %d, want %d", code, ExitUsage)
	}
	msg := errb.String()
	if strings.Contains(msg, "strconv") || strings.Contains(msg, "ParseUint") || !strings.Contains(msg, `-b/--batch "1x": want a batch ID`) {
		t.Errorf("message %q", msg)
	}
}

// TestBashCompletion: the generated script, loaded in bash, completes
// command names, subcommands, flags and flag values.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash: %v (make deps installs it)", err)
	}
	var script bytes.Buffer
	if err := Completion(&script, "bash", Specs()); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tapefs.bash")
	os.WriteFile(p, script.Bytes(), 0o644)
	for words, want := range map[string]string{
		"tapefs st":            "status",
		"tapefs w":             "workspace",
		"tapefs workspace ":    "create list set-quota set-copies",
		"tapefs ls -F ":        "text json md5sum",
		"tapefs library st":    "status",
		"tapefs status --wa":   "--wait",
		"tapefs status -w x -": "--home --batch -b --workspace -w --wait --format -F --help -h",
	} {
		w := strings.Split(words, " ")
		arr := ""
		for _, x := range w {
			arr += " '" + x + "'"
		}
		out, err := exec.Command(bash, "--norc", "-c", `source "$1" && complete -p tapefs >/dev/null && COMP_WORDS=(`+arr+`) && COMP_CWORD=`+
			itoa(len(w)-1)+` && _tapefs && echo "${COMPREPLY[*]}"`, "bash", p).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", words, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%q<TAB>: %q, want %q", words, got, want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestOtherShells: the zsh and fish scripts name every command and flag
// (neither shell is a test dependency; their syntax is checked when the
// shell is there).
func TestOtherShells(t *testing.T) {
	for _, sh := range []string{"zsh", "fish"} {
		var b bytes.Buffer
		if err := Completion(&b, sh, Specs()); err != nil {
			t.Fatal(err)
		}
		for _, c := range Commands {
			if !strings.Contains(b.String(), c.Name) {
				t.Errorf("%s: no %s", sh, c.Name)
			}
		}
		if !strings.Contains(b.String(), "workspace") || !strings.Contains(b.String(), "md5sum") {
			t.Errorf("%s: no flag values", sh)
		}
		if path, err := exec.LookPath(sh); err == nil {
			p := filepath.Join(t.TempDir(), "c")
			os.WriteFile(p, b.Bytes(), 0o644)
			if out, err := exec.Command(path, "-n", p).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", sh, err, out)
			}
		}
	}
	if err := Completion(&bytes.Buffer{}, "tcsh", Specs()); err == nil {
		t.Error("tcsh: no error")
	}
}

// TestManPages: every page renders with man -l (and groff) without a
// warning, and holds its command's flags and examples.
func TestManPages(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Fatalf("groff: %v (make deps installs groff-base)", err)
	}
	dir := t.TempDir()
	files, err := ManPages(dir, "v1.2.3", "Intro line.\n\nExamples:\n  tapefs mount /mnt/tape\n", Specs())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(Commands)+1 {
		t.Fatalf("%d pages, want %d", len(files), len(Commands)+1)
	}
	man, manErr := exec.LookPath("man")
	for _, f := range files {
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", f)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff %s: %v\n%s", f, err, out)
		}
		if manErr != nil {
			continue
		}
		cmd = exec.Command(man, "--warnings", "-l", f)
		cmd.Env = append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=80", "LC_ALL=C.UTF-8")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man -l %s: %v\n%s", f, err, stderr.String())
		}
		if filepath.Base(f) == "tapefs-ls.1" {
			text := stdout.String()
			for _, want := range []string{"tapefs-ls - list workspaces", "-F, --format", "md5sum -c", "EXAMPLES", "OPTIONS"} {
				if !strings.Contains(text, want) {
					t.Errorf("man tapefs-ls: no %q in\n%s", want, text)
				}
			}
		}
	}
}

// TestModeText: modes as ls -l writes them.
func TestModeText(t *testing.T) {
	for mode, want := range map[uint32]string{0o755: "rwxr-xr-x", 0o644: "rw-r--r--", 0o4755: "rwsr-xr-x", 0o2640: "rw-r-S---", 0o1777: "rwxrwxrwt", 0: "---------"} {
		if got := modeText(mode); got != want {
			t.Errorf("modeText(%04o) = %q, want %q", mode, got, want)
		}
	}
}

// TestFileTypeJSON: types are words on the wire, and numbers (older
// daemons) still read.
func TestFileTypeJSON(t *testing.T) {
	b, _ := json.Marshal(api.FileInfo{Type: api.TypeDir, Mode: 0o755})
	if !strings.Contains(string(b), `"type":"dir"`) || !strings.Contains(string(b), `"mode":493`) {
		t.Errorf("%s", b)
	}
	var f api.FileInfo
	if err := json.Unmarshal([]byte(`{"type":102}`), &f); err != nil || f.Type != api.TypeFile {
		t.Errorf("number: %v %v", f.Type, err)
	}
	if err := json.Unmarshal([]byte(`{"type":"symlink"}`), &f); err != nil || f.Type != api.TypeSymlink {
		t.Errorf("word: %v %v", f.Type, err)
	}
	if err := json.Unmarshal([]byte(`{"type":"socket"}`), &f); err == nil {
		t.Error("socket accepted")
	}
}

// fakeDaemon answers the control API on a socket in a home the commands
// are pointed to (TAPEFS_HOME) with fixed replies.
func fakeDaemon(t *testing.T, replies map[string]any) {
	t.Helper()
	home, err := os.MkdirTemp("/tmp", "clitest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	l, err := net.Listen("unix", filepath.Join(home, "tapefs.sock"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for path, v := range replies {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(v)
		})
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	t.Setenv("TAPEFS_HOME", home)
	t.Setenv("HOME", home) // no ~/.tapefs.conf of the one running the tests
}

func runCmd(t *testing.T, c Command, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(c, args, &out, &errb)
	return out.String(), errb.String(), code
}

// TestJSONAndNames: status, library status and workspace list have -F
// json; people read user and group names, scripts get names and numbers.
func TestJSONAndNames(t *testing.T) {
	const nobody = 4_000_000_001 // no such user or group
	fakeDaemon(t, map[string]any{
		"GET /v1/workspaces":  []api.Workspace{{Name: "gws_run3", Manager: 0, Group: 0, Quota: 1 << 30, Copies: 2, CopiesMissing: 3}, {Name: "orphan", Manager: nobody, Group: nobody, Copies: 1}},
		"GET /v1/batches/507": api.Batch{ID: 507, Workspace: "gws_run3", Owner: 0, State: api.Synced, Files: 3, Bytes: 10, Progress: 1},
		"GET /v1/batches/507/files": []api.FileInfo{{ID: 1, Batch: 507, Path: "run", Type: api.TypeDir, Mode: 0o755},
			{ID: 2, Batch: 507, Path: "run/a", Type: api.TypeFile, Mode: 0o644}, {ID: 3, Batch: 507, Path: "run/b", Type: api.TypeFile}},
		"GET /v1/library": api.LibraryStatus{Drives: []api.Drive{{Index: 0, State: "idle", VOLSER: "TF0001", Counters: api.Counters{Mounts: 2}}},
			Cartridges: []api.Cartridge{{VOLSER: "TF0001", Capacity: 100, Used: 10, State: "mounted", Drive: 0}, {VOLSER: "TF0002", Capacity: 100, Drive: -1}}},
	})

	out, errs, code := runCmd(t, workspaceCommand, "list")
	if code != 0 || !regexpMatch(`(?m)^gws_run3\s+1\.0 GiB\s+0 B\s+0%\s+root\s+root\s+2 \(3 batches short\)$`, out) || !regexpMatch(`(?m)^orphan .*4000000001\s+4000000001\s+1$`, out) {
		t.Errorf("workspace list: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = runCmd(t, workspaceCommand, "list", "-F", "json")
	var wss []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &wss) != nil || len(wss) != 2 ||
		wss[0]["manager_name"] != "root" || wss[0]["group_name"] != "root" || wss[0]["manager"] != 0.0 || wss[1]["manager_name"] != "4000000001" {
		t.Errorf("workspace list -F json: exit %d %v\n%s%s", code, wss, out, errs)
	}

	out, errs, code = runCmd(t, statusCommand, "-b", "507", "-F", "json")
	var bs []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &bs) != nil || len(bs) != 1 || bs[0]["id"] != 507.0 || bs[0]["state"] != "SYNCED" || bs[0]["owner_name"] != "root" || bs[0]["owner"] != 0.0 {
		t.Errorf("status -F json: exit %d %v\n%s%s", code, bs, out, errs)
	}
	if k, _ := bs[0]["kinds"].(map[string]any); k["regular_files"] != 2.0 || k["dirs"] != 1.0 || bs[0]["files"] != 3.0 {
		t.Errorf("status -F json: kinds %v, files %v; want 2 regular files and 1 dir of 3 entries", k, bs[0]["files"])
	}
	// Text: 2 files and 1 directory, not 3 files.
	out, errs, code = runCmd(t, statusCommand, "-b", "507")
	if code != 0 || !regexpMatch(`(?m)^BATCH\s+WORKSPACE\s+STATE\s+PROGRESS\s+FILES\s+DIRS\s+BYTES`, out) || !regexpMatch(`(?m)^507\s+gws_run3\s+SYNCED\s+100%\s+2\s+1\s+10 B`, out) {
		t.Errorf("status: exit %d\n%s%s", code, out, errs)
	}
	if _, errs, code = runCmd(t, statusCommand, "-b", "507", "-F", "yaml"); code != ExitUsage || !strings.Contains(errs, `-F "yaml": use text or json`) {
		t.Errorf("status -F yaml: exit %d %s", code, errs)
	}

	out, errs, code = runCmd(t, libraryCommand, "status", "-F", "json")
	var lib struct {
		Drives []struct {
			Index  int    `json:"index"`
			VOLSER string `json:"volser"`
			Mounts int64  `json:"mounts"`
		} `json:"drives"`
		Cartridges []struct {
			VOLSER string `json:"volser"`
			Drive  *int   `json:"drive"`
			Used   int64  `json:"used"`
		} `json:"cartridges"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &lib) != nil || len(lib.Drives) != 1 || lib.Drives[0].VOLSER != "TF0001" || lib.Drives[0].Mounts != 2 ||
		len(lib.Cartridges) != 2 || lib.Cartridges[0].Drive == nil || *lib.Cartridges[0].Drive != 0 || lib.Cartridges[1].Drive != nil || lib.Cartridges[0].Used != 10 {
		t.Errorf("library status -F json: exit %d %+v\n%s%s", code, lib, out, errs)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// A misspelt subcommand or flag gets the nearest one suggested, and exit
// code 4, before any daemon is asked.
func TestSuggestSubcommandsAndFlags(t *testing.T) {
	for _, tc := range []struct {
		cmd  Command
		args []string
		want string
	}{
		{libraryCommand, []string{"stauts"}, `did you mean "status"?`},
		{cacheCommand, []string{"evit"}, `did you mean "evict"?`},
		{workspaceCommand, []string{"lsit"}, `did you mean "list"?`},
		{lsCommand, []string{"--batc", "1"}, "did you mean --batch?"},
		{statusCommand, []string{"--wiat"}, "did you mean --wait?"},
	} {
		var out, errOut strings.Builder
		code := Run(tc.cmd, append([]string{"--home", t.TempDir()}, tc.args...), &out, &errOut)
		if code != ExitUsage || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("tapefs %s %v: exit %d, stderr %q; want 4 and %q", tc.cmd.Name, tc.args, code, errOut.String(), tc.want)
		}
	}
}

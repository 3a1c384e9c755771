package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestCLINamesJSONCompletionMan: the built binary against a real daemon:
// user and group names where people read them (numbers too in JSON),
// -F json of status, library status and workspace list, types and modes
// as words, clear errors for a bad batch ID and a mistyped command, and
// the completion script and man pages it generates.
func TestCLINamesJSONCompletionMan(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := cliOpts{home: s.home}
	src := filepath.Join(t.TempDir(), "run7")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "a.dat"), []byte("alpha"), 0o640)
	os.WriteFile(filepath.Join(src, "sub", "b.dat"), []byte("beta"), 0o755)
	os.Chmod(filepath.Join(src, "a.dat"), 0o640)
	os.Chmod(filepath.Join(src, "sub", "b.dat"), 0o755)
	id := batchID(t, cliOK(t, o, "put", src))
	cliOK(t, o, "status", "-b", idArg(id), "--wait")

	// status -F json: the batch with its owner's name and uid.
	var bs []map[string]any
	r := cliOK(t, o, "status", "-b", idArg(id), "-F", "json")
	if json.Unmarshal([]byte(r.stdout), &bs) != nil || len(bs) != 1 || bs[0]["owner_name"] != "root" || bs[0]["owner"] != 0.0 || bs[0]["id"] != float64(id) {
		t.Errorf("status -F json: %v\n%s", bs, r)
	}
	// Files and directories counted apart: a.dat and sub/b.dat are 2
	// files; the directories are sub and each of src's path (put keeps
	// absolute paths).
	dirs := len(strings.Split(strings.Trim(src, "/"), "/")) + 1
	if k, _ := bs[0]["kinds"].(map[string]any); k["regular_files"] != 2.0 || k["dirs"] != float64(dirs) || bs[0]["files"] != float64(2+dirs) {
		t.Errorf("status -F json: kinds %v of %v entries, want 2 files and %d dirs", bs[0]["kinds"], bs[0]["files"], dirs)
	}
	r = cliOK(t, o, "status", "-b", idArg(id))
	if !regexp.MustCompile(`(?m)^` + idArg(id) + `\s+default\s+\S+\s+100%\s+2\s+` + strconv.Itoa(dirs) + `\s`).MatchString(r.stdout) {
		t.Errorf("status: want FILES 2 and DIRS %d\n%s", dirs, r)
	}
	// ls -w counts files too, not entries (the daemon counted them at
	// registration: no listing of the batch needed).
	r = cliOK(t, o, "ls", "-w", "default")
	if !regexp.MustCompile(`(?m)^` + idArg(id) + `\s+\S+\s+CACHED_SYNCED\s+2\s`).MatchString(r.stdout) {
		t.Errorf("ls -w: want FILES 2 for batch %d\n%s", id, r)
	}
	// library status -F json: drives and cartridges with snake_case names.
	var lib struct {
		Drives         []map[string]any `json:"drives"`
		Cartridges     []map[string]any `json:"cartridges"`
		Used, Capacity int64
	}
	r = cliOK(t, o, "library", "status", "-F", "json")
	if json.Unmarshal([]byte(r.stdout), &lib) != nil || len(lib.Drives) == 0 || len(lib.Cartridges) == 0 || lib.Drives[0]["state"] == nil || lib.Cartridges[0]["volser"] == nil ||
		lib.Used <= 0 || lib.Capacity < lib.Used {
		t.Errorf("library status -F json: %+v\n%s", lib, r)
	}
	// The library as a whole, which df of the mount (the cache) does not say.
	if r := cliOK(t, o, "library", "status"); !regexp.MustCompile(`(?m)^library: \d+ cartridges, \S+ \S+ used of \S+ \S+ \(`).MatchString(r.stdout) {
		t.Errorf("library status: no line for the library as a whole\n%s", r)
	}
	// workspace list: names in the text, names and numbers in JSON.
	r = cliOK(t, o, "workspace", "list")
	if !regexp.MustCompile(`(?m)^default\s.*\sroot\s+root\s+1$`).MatchString(r.stdout) {
		t.Errorf("workspace list: want MANAGER and GROUP root, COPIES 1\n%s", r)
	}
	var wss []map[string]any
	r = cliOK(t, o, "workspace", "list", "-F", "json")
	if json.Unmarshal([]byte(r.stdout), &wss) != nil || len(wss) == 0 || wss[0]["manager_name"] != "root" || wss[0]["group_name"] != "root" || wss[0]["manager"] != 0.0 {
		t.Errorf("workspace list -F json: %v\n%s", wss, r)
	}

	// ls -F json: type and mode as words beside the numbers, user and group.
	var files []map[string]any
	r = cliOK(t, o, "ls", "-b", idArg(id), "-L", "file", "-F", "json")
	if err := json.Unmarshal([]byte(r.stdout), &files); err != nil {
		t.Fatalf("ls -F json: %v\n%s", err, r)
	}
	byName := map[string]map[string]any{}
	for _, f := range files {
		if p, ok := f["path"].(string); ok {
			byName[filepath.Base(p)] = f
		}
	}
	for name, want := range map[string][2]any{"a.dat": {"file", "rw-r-----"}, "b.dat": {"file", "rwxr-xr-x"}, "sub": {"dir", "rwxr-x---"}} {
		f := byName[name]
		if f == nil || f["type"] != want[0] || f["mode_text"] != want[1] || f["user"] != "root" || f["group"] != "root" || f["uid"] != 0.0 {
			t.Errorf("ls -F json: %s is %v, want type %v, mode %v, user and group root", name, f, want[0], want[1])
		}
	}
	// filesJSON (api.FileInfo) still reads the listing.
	if got := regularPaths(filesJSON(t, o, id)); len(got) != 2 {
		t.Errorf("api.FileInfo from ls -F json: regular files %v", got)
	}

	// A bad batch ID and a mistyped command: what to do, no Go text.
	r = runTapefs(t, o, "ls", "-b", "1x")
	wantCode(t, r, 4)
	if strings.Contains(r.stderr, "strconv") || !strings.Contains(r.stderr, `-b/--batch "1x": want a batch ID`) {
		t.Errorf("ls -b 1x: %s", r)
	}
	r = runTapefs(t, o, "stauts")
	wantCode(t, r, 4)
	if !strings.Contains(r.stderr, `tapefs: unknown command "stauts"; did you mean "status"?`) {
		t.Errorf("stauts: %s", r)
	}

	// tapefs completion bash, loaded in bash, completes "tapefs st".
	script := filepath.Join(t.TempDir(), "tapefs.bash")
	os.WriteFile(script, []byte(cliOK(t, o, "completion", "bash").stdout), 0o644)
	out, err := exec.Command("bash", "--norc", "-c", `source "$1" && COMP_WORDS=(tapefs st) COMP_CWORD=1 && _tapefs && echo "${COMPREPLY[*]}"`, "bash", script).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "status" {
		t.Errorf("bash completion of 'tapefs st': %v %q", err, out)
	}
	// tapefs man DIR: every page renders with man -l without a warning.
	dir := t.TempDir()
	r = cliOK(t, o, "man", dir)
	pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	if len(pages) < 12 || !strings.Contains(r.stdout, "tapefs-mount.1") {
		t.Fatalf("man: %d pages\n%s", len(pages), r)
	}
	for _, p := range pages {
		cmd := exec.Command("man", "--warnings", "-l", p)
		cmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=80", "LC_ALL=C.UTF-8")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		text, err := cmd.Output()
		if err != nil || stderr.Len() > 0 || !strings.Contains(string(text), "NAME") {
			t.Errorf("man -l %s: %v\n%s", p, err, stderr.String())
		}
	}
}

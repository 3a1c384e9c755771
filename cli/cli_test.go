package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadListProblems: every malformed line is reported with file, line
// and what to do.
func TestReadListProblems(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.dat")
	os.WriteFile(good, []byte("x"), 0o644)
	list := filepath.Join(dir, "list")
	os.WriteFile(list, []byte(good+"\n\nrelative/path\n"+filepath.Join(dir, "missing")+"\n"+good+"\n"), 0o644)
	srcs, problems, err := readList(listFile{name: list})
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 1 || srcs[0].path != good {
		t.Fatalf("sources %+v", srcs)
	}
	want := []string{list + ":2: \"\": blank line", list + ":3: relative/path: relative path", list + ":4: " + filepath.Join(dir, "missing") + ": no such file", list + ":5: " + good + ": listed twice (first at " + list + ":1)"}
	if len(problems) != len(want) {
		t.Fatalf("problems %v", problems)
	}
	for i, w := range want {
		if !strings.HasPrefix(problems[i].String(), w) {
			t.Errorf("problem %d: %q, want prefix %q", i, problems[i], w)
		}
	}
}

func TestSafeJoin(t *testing.T) {
	for _, bad := range []string{"../etc/passwd", "a/../../b", "a//b", "./a", ""} {
		if _, err := safeJoin("/restore", bad); err == nil {
			t.Errorf("safeJoin accepted %q", bad)
		}
	}
	if p, err := safeJoin("/restore", "/data/run1/f"); err != nil || p != "/restore/data/run1/f" {
		t.Errorf("safeJoin: %q %v", p, err)
	}
}

func TestMD5SumLine(t *testing.T) {
	if l := md5sumLine("abc", "a b/c"); l != "abc  a b/c" {
		t.Errorf("%q", l)
	}
	if l := md5sumLine("abc", "new\nline\\x"); l != `\abc  new\nline\\x` {
		t.Errorf("%q", l)
	}
}

// TestSettingsPrecedence: /etc, then ~/.tapefs.conf, then the environment.
func TestSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	sys, user := filepath.Join(dir, "etc.conf"), filepath.Join(dir, "user.conf")
	os.WriteFile(sys, []byte("[Batch]\nWorkspace = from_etc\n[Directory]\noutputLevel = file\n[Daemon]\nhome = /etc-home\n"), 0o644)
	os.WriteFile(user, []byte("[Batch]\nWorkspace = from_user\nColour = blue\n"), 0o644)
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	s, err := LoadSettings([]string{sys, user}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if s.Workspace != "from_user" || s.OutputLevel != "file" || s.Home != "/etc-home" {
		t.Fatalf("%+v", s)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], user+":3") {
		t.Fatalf("warnings %v", s.Warnings)
	}
	env["TAPEFS_WORKSPACE"] = "from_env"
	if s, _ = LoadSettings([]string{sys, user}, getenv); s.Workspace != "from_env" {
		t.Fatalf("env did not win: %+v", s)
	}
	os.WriteFile(user, []byte("[Directory]\noutputLevel = everything\n"), 0o644)
	if _, err := LoadSettings([]string{sys, user}, getenv); err == nil || !strings.Contains(err.Error(), user+":2") {
		t.Fatalf("bad value: %v", err)
	}
}

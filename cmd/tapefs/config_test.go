package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "4096": 4096, "500M": 500 << 20, "10G": 10 << 30, "10g": 10 << 30,
		"1.5T": 3 << 39, "2GiB": 2 << 30, "3KB": 3 << 10, " 7 M ": 7 << 20,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "10X", "1..2M", "1e30P"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tapefs.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFile(t *testing.T) {
	p := writeConfig(t, `# a comment
[Batch]
Workspace = atlas

[Daemon]
settle = 2s
Cache-Size = 10G
time-scale = 0
log-level = debug
colour = blue
`)
	c := defaultDaemonConfig()
	warnings, err := c.configFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.settle != 2*time.Second || c.cacheSize != 10<<30 || c.timeScale != 0 || c.logLevel != zerolog.DebugLevel {
		t.Errorf("config read as %+v", c)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], p+":10:") || !strings.Contains(warnings[0], "colour") {
		t.Errorf("warnings: %q", warnings)
	}
}

func TestConfigFileBadValue(t *testing.T) {
	for text, want := range map[string]string{
		"[Daemon]\nsettle = soon\n":   ":2: bad value \"soon\" for settle",
		"[Daemon]\n\ntime-scale=-1\n": ":3: bad value \"-1\" for time-scale",
		"[Daemon\n":                   ":1: malformed section header",
		"[Daemon]\njust words\n":      ":2: expected KEY = VALUE",
	} {
		p := writeConfig(t, text)
		c := defaultDaemonConfig()
		_, err := c.configFile(p)
		if err == nil || !strings.Contains(err.Error(), p+want) {
			t.Errorf("config %q: error %v, want %q", text, err, p+want)
		}
	}
}

func TestConfigurePrecedence(t *testing.T) {
	p := writeConfig(t, "[Daemon]\nsettle = 5s\nhome = /from/file\ntime-scale = 0.5\n")
	t.Setenv("TAPEFS_HOME", "/from/env")
	f := newDaemonFlags("mount", "", "", "")
	if err := f.fs.Parse([]string{"--config", p, "--time-scale", "0", "/mnt"}); err != nil {
		t.Fatal(err)
	}
	c, _, err := f.configure()
	if err != nil {
		t.Fatal(err)
	}
	if c.settle != 5*time.Second || c.home != "/from/env" || c.timeScale != 0 {
		t.Errorf("settle %v (file), home %q (env), time-scale %v (flag)", c.settle, c.home, c.timeScale)
	}

	f = newDaemonFlags("mount", "", "", "")
	f.fs.Parse([]string{"--config", filepath.Join(t.TempDir(), "missing.conf")})
	if _, _, err := f.configure(); err == nil {
		t.Errorf("a missing --config file is not an error")
	}
	f = newDaemonFlags("mount", "", "", "")
	f.fs.Parse([]string{"--cache-size", "lots"})
	if _, _, err := f.configure(); err == nil || !strings.Contains(err.Error(), "--cache-size") {
		t.Errorf("bad flag value: %v", err)
	}
}

func TestPrepareMountpoint(t *testing.T) {
	dir := t.TempDir()
	log := zerolog.Nop()
	if err := prepareMountpoint(filepath.Join(dir, "missing"), log); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	if err := prepareMountpoint(filepath.Join(dir, "f"), log); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file: %v", err)
	}
	if err := prepareMountpoint(dir, log); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	if err := prepareMountpoint(empty, log); err != nil {
		t.Errorf("empty: %v", err)
	}
	if err := prepareMountpoint("/proc", log); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("/proc: %v", err)
	}
}

func TestLockHome(t *testing.T) {
	dir := t.TempDir()
	l, err := lockHome(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = lockHome(dir)
	if err == nil || !strings.Contains(err.Error(), "in use by another tapefs daemon (pid ") {
		t.Errorf("second lock: %v", err)
	}
}

func TestWarnRequestTimeout(t *testing.T) {
	dir := t.TempDir()
	var buf strings.Builder
	log := zerolog.New(&buf)
	for value, warn := range map[string]bool{"0\n": false, "120\n": true} {
		p := filepath.Join(dir, "knob")
		os.WriteFile(p, []byte(value), 0o644)
		if got := warnRequestTimeout(log, p); got != warn {
			t.Errorf("timeout %q: warned %v", value, got)
		}
	}
	if warnRequestTimeout(log, filepath.Join(dir, "missing")) {
		t.Errorf("warned without the knob")
	}
	if !strings.Contains(buf.String(), "after 120 s") {
		t.Errorf("log: %s", buf.String())
	}
}

// TestCheckListenAddress: the form of --http is checked with the other
// settings, so that a typo is a configuration error (exit 4).
func TestCheckListenAddress(t *testing.T) {
	for _, ok := range []string{"", "127.0.0.1:7070", ":7070", "[::1]:0", "localhost:http"} {
		if err := checkListenAddress(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"localhost", "127.0.0.1:99999", "127.0.0.1:nosuchservice", "1.2.3.4:5:6"} {
		if err := checkListenAddress(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	c := defaultDaemonConfig()
	if err := c.set("http", "7070"); err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
		t.Errorf("set http 7070: %v", err)
	}
}

package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadINI(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.conf")
	os.WriteFile(p, []byte("# comment\n[Batch]\nWorkspace = gws_1\n\n[Directory]\n outputLevel=\"batch\"\n"), 0o644)
	es, err := ReadINI(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Section != "batch" || es[0].Key != "workspace" || es[0].Value != "gws_1" || es[0].Line != 3 ||
		es[1].Key != "outputlevel" || es[1].Value != "batch" || es[1].Line != 6 {
		t.Fatalf("%+v", es)
	}
	os.WriteFile(p, []byte("[Batch]\nthis is not a setting\n"), 0o644)
	if _, err := ReadINI(p); err == nil || !strings.Contains(err.Error(), p+":2:") {
		t.Fatalf("malformed line: %v", err)
	}
	os.WriteFile(p, []byte("[Batch\n"), 0o644)
	if _, err := ReadINI(p); err == nil || !strings.Contains(err.Error(), ":1: malformed section") {
		t.Fatalf("malformed section: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "500M": 500 << 20, "10G": 10 << 30, "1.5T": 3 << 39, "4KiB": 4096, "12": 12, "2 GB": 2 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1", "10X", "ten"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

// TestReadINIInlineComments: the README's example, pasted with its
// comments, reads as meant: a ; or # after a blank starts a comment after
// a value or a section header; quoting keeps one in a value.
func TestReadINIInlineComments(t *testing.T) {
	text := "[Batch]\n" +
		"Workspace = gws_run3        ; TAPEFS_WORKSPACE, -w\n" +
		"[Directory]\n" +
		"outputLevel = batch         # TAPEFS_OUTPUTLEVEL\n" +
		"[Daemon]                    ; each also TAPEFS_<KEY>\n" +
		"http-token = a;b#c\n" +
		"home = \"/srv/a ; b\"   ; quoted\n" +
		"settle =   ; nothing\n" +
		"[Other]# tight\n" +
		"tab = x\t#tab comment\n"
	es, err := ParseINI(strings.NewReader(text), "t.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Section: "batch", Key: "workspace", Value: "gws_run3", Line: 2},
		{Section: "directory", Key: "outputlevel", Value: "batch", Line: 4},
		{Section: "daemon", Key: "http-token", Value: "a;b#c", Line: 6},
		{Section: "daemon", Key: "home", Value: "/srv/a ; b", Line: 7},
		{Section: "daemon", Key: "settle", Value: "", Line: 8},
		{Section: "other", Key: "tab", Value: "x", Line: 10},
	}
	if len(es) != len(want) {
		t.Fatalf("entries %+v, want %+v", es, want)
	}
	for i, w := range want {
		w.File = "t.conf"
		if es[i] != w {
			t.Errorf("entry %d: %+v, want %+v", i, es[i], w)
		}
	}
	for text, msg := range map[string]string{
		"[Daemon] x\n":                    "t.conf:1: malformed section header",
		"[]\n":                            "t.conf:1: empty section name",
		"= v\n":                           "t.conf:1: a value without a key",
		"a b = v\n":                       "t.conf:1: malformed key",
		"[A]\n\nword\n":                   "t.conf:3: expected KEY = VALUE",
		strings.Repeat("x", maxINILine+1): "t.conf:1: line longer than",
	} {
		if _, err := ParseINI(strings.NewReader(text), "t.conf"); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%.40q: error %v, want %q", text, err, msg)
		}
	}
}

// FuzzParseINI: any bytes either parse into well-formed entries or give
// an error naming file and line; what parsed is read back the same when
// written out again.
func FuzzParseINI(f *testing.F) {
	f.Add("[Batch]\nWorkspace = gws ; c\n[Daemon] # x\nhome = \"/a ; b\"\n")
	f.Add("k=v\n[s]\n;c\n#c\nk2 = \"q\" x\n")
	f.Fuzz(func(t *testing.T, text string) {
		es, err := ParseINI(strings.NewReader(text), "f.conf")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.conf:") {
				t.Fatalf("error without file and line: %v", err)
			}
			return
		}
		prev := 0
		quotes := false
		for _, e := range es {
			if e.File != "f.conf" || e.Line <= prev || e.Key == "" || e.Key != strings.ToLower(e.Key) ||
				e.Section != strings.ToLower(e.Section) || strings.ContainsAny(e.Key, "= \t\n") || strings.Contains(e.Value, "\n") {
				t.Fatalf("malformed entry %+v", e)
			}
			prev = e.Line
			quotes = quotes || strings.Contains(e.Value, `"`)
		}
		if quotes {
			return // no escape for a quote inside quotes: not written back
		}
		var b strings.Builder
		section := ""
		for _, e := range es {
			if e.Section != section {
				fmt.Fprintf(&b, "[%s] ; section\n", e.Section)
				section = e.Section
			}
			fmt.Fprintf(&b, "%s = \"%s\" # value\n", e.Key, e.Value)
		}
		again, err := ParseINI(strings.NewReader(b.String()), "f.conf")
		if err != nil {
			t.Fatalf("written back %q: %v", b.String(), err)
		}
		if len(again) != len(es) {
			t.Fatalf("written back %q: %d entries, want %d", b.String(), len(again), len(es))
		}
		for i := range es {
			if again[i].Section != es[i].Section || again[i].Key != es[i].Key || again[i].Value != es[i].Value {
				t.Fatalf("written back %q: entry %+v, want %+v", b.String(), again[i], es[i])
			}
		}
	})
}

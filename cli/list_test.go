package cli

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestParseListRepeats: a list holding one path 100,000 times reports the
// first repeats one by one and the rest as one counted line.
func TestParseListRepeats(t *testing.T) {
	text := strings.Repeat("/data/one\n", 100_000)
	entries, problems, err := parseList(strings.NewReader(text), "dup.list", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].path != "/data/one" {
		t.Fatalf("entries %v", entries)
	}
	if len(problems) != maxRepeatsShown+1 {
		t.Fatalf("%d problem lines, want %d", len(problems), maxRepeatsShown+1)
	}
	if got := count(problems); got != 99_999 {
		t.Errorf("problems stand for %d lines, want 99999", got)
	}
	if p := problems[0].String(); p != "dup.list:2: /data/one: listed twice (first at dup.list:1)" {
		t.Errorf("first: %q", p)
	}
	last := problems[len(problems)-1].String()
	if want := fmt.Sprintf("dup.list:%d: %d more lines", maxRepeatsShown+2, 99_999-maxRepeatsShown); !strings.HasPrefix(last, want) {
		t.Errorf("last: %q, want prefix %q", last, want)
	}
}

// TestParseListLines: what each kind of line becomes.
func TestParseListLines(t *testing.T) {
	text := "/a/b\r\n\n  \nrel/x\n/a//b/\n/a/./c\n/with\x00nul\n" + strings.Repeat("/", maxListLine+1) + "\n"
	_, _, err := parseList(strings.NewReader(text), "l", false)
	if err == nil || !strings.Contains(err.Error(), "l:8: line longer than") {
		t.Fatalf("over-long line: %v", err)
	}
	text = strings.SplitAfter(text, "nul\n")[0]
	entries, problems, err := parseList(strings.NewReader(text), "l", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0] != (listEntry{"/a/b", "l:1", 1}) || entries[1] != (listEntry{"/a/c", "l:6", 6}) {
		t.Fatalf("entries %+v", entries)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := []string{`l:2: "": blank line`, `l:3: "": blank line`, "l:4: rel/x: relative path", "l:5: /a//b/: listed twice (first at l:1)", `l:7: "/with\x00nul": a path cannot hold a NUL byte`}
	if len(got) != len(want) {
		t.Fatalf("problems %q", got)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d: %q, want prefix %q", i, got[i], want[i])
		}
	}
}

// TestParseListNull: a NUL-separated list (-0) carries any byte of a
// name but NUL, newlines, blanks and CRs included.
func TestParseListNull(t *testing.T) {
	text := "/a\nb\x00/c \x00/d\r\x00\x00rel\x00/e"
	entries, problems, err := parseList(strings.NewReader(text), "l", true)
	if err != nil {
		t.Fatal(err)
	}
	want := []listEntry{{"/a\nb", "l:1", 1}, {"/c ", "l:2", 2}, {"/d\r", "l:3", 3}, {"/e", "l:6", 6}}
	if !slices.Equal(entries, want) {
		t.Errorf("entries %+v, want %+v", entries, want)
	}
	if len(problems) != 2 || !strings.HasPrefix(problems[0].String(), `l:4: "": blank line`) || !strings.HasPrefix(problems[1].String(), "l:5: rel: relative path") {
		t.Errorf("problems %v", problems)
	}
	var b strings.Builder
	if ok := writeList(&b, []string{"/a\nb", "/c "}, false); ok {
		t.Error("writeList of a name holding a newline into a line list says it is fine")
	}
	b.Reset()
	writeList(&b, []string{"/a\nb", "/c "}, true)
	back, _, err := parseList(strings.NewReader(b.String()), "w", true)
	if err != nil || len(back) != 2 || back[0].path != "/a\nb" || back[1].path != "/c " {
		t.Errorf("writeList -0 read back as %+v, %v", back, err)
	}
}

// FuzzParseList: any list text gives clean absolute paths, each once, and
// a problem for every other line, each naming its line; nothing panics.
func FuzzParseList(f *testing.F) {
	f.Add("/a\n/b\r\n\nrel\n/a\n", false)
	f.Add(strings.Repeat("/x\n", 20), false)
	f.Add("/a\nb\x00/c \x00\x00rel", true)
	f.Fuzz(func(t *testing.T, text string, null bool) {
		entries, problems, err := parseList(strings.NewReader(text), "f", null)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error without file and line: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, e := range entries {
			if !filepath.IsAbs(e.path) || filepath.Clean(e.path) != e.path || strings.IndexByte(e.path, 0) >= 0 || seen[e.path] {
				t.Fatalf("entry %+v: not clean, absolute and unique", e)
			}
			seen[e.path] = true
			if !strings.HasPrefix(e.where, "f:") {
				t.Fatalf("entry %+v without its line", e)
			}
		}
		for _, p := range problems {
			if !strings.HasPrefix(p.where, "f:") {
				t.Fatalf("problem %+v without its line", p)
			}
		}
		sep := "\n"
		if null {
			sep = "\x00"
		}
		lines := strings.Count(text, sep)
		if text != "" && !strings.HasSuffix(text, sep) {
			lines++
		}
		if got := len(entries) + count(problems); got != lines {
			t.Fatalf("%d lines, but %d entries and %d problem lines", lines, len(entries), count(problems))
		}
		if shown := len(problems); shown > lines {
			t.Fatalf("%d problems printed for %d lines", shown, lines)
		}
	})
}

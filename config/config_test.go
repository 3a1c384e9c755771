package config

import (
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
	if s := FormatSize(3 << 30); s != "3.0 GiB" {
		t.Errorf("FormatSize: %s", s)
	}
}

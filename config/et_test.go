package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestETFilesUnknown: a section of Elastic Tape's that tapefs does not use
// is no warning in ET's files, but a misspelt key of a section tapefs reads
// is, and the same section in tapefs's own file is too.
func TestETFilesUnknown(t *testing.T) {
	dir := t.TempDir()
	et := filepath.Join(dir, "et_config")
	own := filepath.Join(dir, "tapefs.conf")
	text := "[Core]\nserver = et.example.org\n[Batch]\nWorkspace = gws\nWorkspaec = typo\n"
	for _, p := range []string{et, own} {
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("TAPEFS_ET_USER_CONFIG", et)
	t.Setenv("TAPEFS_ET_SYSTEM_CONFIG", filepath.Join(dir, "none"))
	es, err := ReadAll(append([]string{own}, ETFiles()...))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(Unknown(es), "\n")
	for _, want := range []string{own + ":2: unknown setting \"server\" in [core]", own + ":5:", et + ":5:"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, et+":2:") {
		t.Errorf("ET's own [Core] warned about:\n%s", got)
	}
	if e, _ := Lookup(es, "batch", "workspace"); e.File != et {
		t.Errorf("workspace from %s, want the ET file read last", e.File)
	}
}

package tape

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzLoadCartridge: a cartridge directory is read back years later, by a
// newer tapefs, from whatever the medium holds. Any bytes as its INDEX and
// its label (tape file 0) give a cartridge or a problem in words, never a
// panic; a cartridge accepted names the VOLSER asked for and lists its
// label.
func FuzzLoadCartridge(f *testing.F) {
	dir := f.TempDir()
	if err := labelCartridge(dir, "TF0001", 1<<30, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		f.Fatal(err)
	}
	index, err := os.ReadFile(filepath.Join(dir, indexName))
	if err != nil {
		f.Fatal(err)
	}
	label, err := os.ReadFile(filepath.Join(dir, tapeFileName(0, 0)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(index, label)
	f.Add([]byte(`{"format":1,"volser":"TF0001","files":[]}`), label)
	f.Add(index, []byte("not a tar file"))
	f.Add([]byte(strings.Replace(string(index), "TF0001", "TF0002", 1)), label)
	f.Add([]byte("{"), []byte{})
	f.Fuzz(func(t *testing.T, index, label []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, indexName), index, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, tapeFileName(0, 0)), label, 0o644); err != nil {
			t.Fatal(err)
		}
		idx, gen, problem, err := loadCartridge(dir, "TF0001", 1<<30, false)
		if err != nil || problem != "" {
			return
		}
		if idx.VOLSER != "TF0001" || len(idx.Files) == 0 || gen < 1 {
			t.Fatalf("accepted a cartridge %+v generation %d from INDEX %q", idx, gen, index)
		}
	})
}

// FuzzReadLabel: any bytes as a label give a label or an error.
func FuzzReadLabel(f *testing.F) {
	l, err := labelBytes("TF0007", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 3)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(l)
	f.Add(l[:len(l)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "label.tar")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		lbl, err := readLabel(p)
		if err == nil && lbl.Generation < 1 {
			t.Fatalf("label %+v with generation %d", lbl, lbl.Generation)
		}
	})
}

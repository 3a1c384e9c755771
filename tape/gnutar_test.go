package tape

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runTar runs GNU tar and returns its stdout, failing the test on a
// non-zero exit.
func runTar(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command("tar", args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("tar %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String()
}

// TestCartridgeReadableWithGNUTar is the promise that a cartridge needs no
// tapefs to be read: every tape file lists and extracts with plain tar, and
// gives back the names and bytes that were written.
func TestCartridgeReadableWithGNUTar(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Fatal("GNU tar is needed for this test (apt-get install tar)")
	}
	out, _ := runTar(t, "--version")
	if !strings.Contains(out, "GNU tar") {
		t.Fatal("tar is not GNU tar; install GNU tar")
	}

	l := openTest(t, Config{Drives: 1, Cartridges: 1})
	d := acquire(t, l, "TF0001")
	aggregates := [][]testMember{sampleMembers()[:8], { // the first eight: no setuid, ids a user can restore
		{Member{FileID: 20, Workspace: "ws", Batch: 13, Path: "run1234", Type: MemberDir, Mode: 0o750,
			Mtime: time.Unix(1_600_000_000, 0)}, nil},
		fileMember(21, "run1234/raw.dat", bytes.Repeat([]byte("detector data "), 5000)),
		{Member{FileID: 22, Workspace: "ws", Batch: 13, Path: "run1234/latest", Type: MemberSymlink,
			Mode: 0o777, Mtime: time.Unix(1_600_000_000, 0), Target: "raw.dat"}, nil},
	}}
	for _, ms := range aggregates {
		if _, err := d.SeekEOD(); err != nil {
			t.Fatal(err)
		}
		writeAggregate(t, d, ms)
		if err := d.WriteFilemark(); err != nil {
			t.Fatal(err)
		}
	}
	l.Release(d)
	cdir := filepath.Join(l.dir, "TF0001")

	// Tape file 0, the label.
	dest := t.TempDir()
	runTar(t, "-xf", filepath.Join(cdir, tapeFileName(0, 0)), "-C", dest)
	var lbl volumeLabel
	data, err := os.ReadFile(filepath.Join(dest, labelMember))
	if err != nil || json.Unmarshal(data, &lbl) != nil || lbl.VOLSER != "TF0001" {
		t.Errorf("label extracted by tar: %s, %v", data, err)
	}

	for i, ms := range aggregates {
		file := filepath.Join(cdir, tapeFileName(i+1, 0))
		// GNU tar warns once per TAPEFS record it does not know (exit
		// status 0); --warning=no-unknown-keyword silences that.
		out, stderr := runTar(t, "-tvf", file)
		for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
			if line != "" && !strings.Contains(line, "unknown extended header keyword 'TAPEFS.") {
				t.Errorf("tar -tvf said: %s", line)
			}
		}
		if n := strings.Count(out, "\n"); n != len(ms) {
			t.Errorf("tar -tvf lists %d members, want %d:\n%s", n, len(ms), out)
		}
		out, _ = runTar(t, "--warning=no-unknown-keyword", "-tf", file)
		var want []string
		for _, tm := range ms {
			name := memberName(tm.m)
			if tm.m.Type == MemberDir {
				name += "/"
			}
			want = append(want, name)
		}
		if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("tar -tf names:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}

		dest := t.TempDir()
		runTar(t, "--warning=no-unknown-keyword", "-xf", file, "-C", dest)
		for _, tm := range ms {
			p := filepath.Join(dest, filepath.FromSlash(memberName(tm.m)))
			st, err := os.Lstat(p)
			if err != nil {
				t.Errorf("extracted: %v", err)
				continue
			}
			switch tm.m.Type {
			case MemberDir:
				if !st.IsDir() {
					t.Errorf("%s: not a directory", p)
				}
			case MemberSymlink:
				if target, err := os.Readlink(p); err != nil || target != tm.m.Target {
					t.Errorf("%s: link to %q (%v), want %q", p, target, err, tm.m.Target)
				}
			case MemberFile:
				got, err := os.ReadFile(p)
				if err != nil || !bytes.Equal(got, tm.data) {
					t.Errorf("%s: %d bytes (%v), want %d written", p, len(got), err, len(tm.data))
				}
				if st.Mode().Perm() != os.FileMode(tm.m.Mode).Perm() {
					t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), os.FileMode(tm.m.Mode).Perm())
				}
				if !st.ModTime().Equal(tm.m.Mtime) {
					t.Errorf("%s: mtime %v, want %v", p, st.ModTime(), tm.m.Mtime)
				}
			}
		}
	}
}

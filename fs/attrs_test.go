package fs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestListingAttrsOnDemand: a process that only walks a batch tree
// (`find`) is listed names and types, and the daemon makes no node for a
// file it never looks up; a process that stats what it lists (`ls -lR`)
// looks up the files of its first directory and from then on gets the
// attributes with its listings, one request a directory instead of one an
// entry. Both see the whole tree, with the right types and sizes.
func TestListingAttrsOnDemand(t *testing.T) {
	m := mountWith(t, time.Hour, Options{TreeNodeBudget: -1})
	const dirs, per = 10, 300
	dir, entries := bigBatch(t, m, "tree", dirs, per)
	lookups := func() uint64 { return m.fsys.ops.snapshot()["lookup"] }

	out, err := exec.Command("find", dir, "-type", "f").Output()
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	if n := strings.Count(string(out), "\n"); n != dirs*per {
		t.Fatalf("find -type f listed %d files, want %d", n, dirs*per)
	}
	out, err = exec.Command("find", dir, "-mindepth", "1").Output()
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	if n := strings.Count(string(out), "\n"); n != entries {
		t.Fatalf("find listed %d entries, want %d", n, entries)
	}
	// The directories it descended into (the batch's top entry and its
	// subdirectories), not the files.
	if n := m.fsys.Nodes(); n > dirs+1 {
		t.Errorf("after find the daemon holds %d nodes of the tree, want ≤ %d (its directories)", n, dirs+1)
	}

	before := lookups()
	out, err = exec.Command("ls", "-lR", dir).Output()
	if err != nil {
		t.Fatalf("ls -lR: %v", err)
	}
	files := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "-rw-r--r--") {
			if f := strings.Fields(line); len(f) < 5 || f[4] != "0" {
				t.Fatalf("ls -lR: %q, want a file of 0 bytes", line)
			}
			files++
		}
	}
	if files != dirs*per {
		t.Fatalf("ls -lR showed %d files, want %d", files, dirs*per)
	}
	if n := lookups() - before; n > per+dirs+50 {
		t.Errorf("ls -lR of %d entries took %d lookups, want ≤ %d: the files of its first directory, then attributes with the listings", entries, n, per+dirs+50)
	}
	if n := m.fsys.Nodes(); n < dirs*per {
		t.Errorf("after ls -lR the daemon holds %d nodes, want every entry's (%d)", n, entries)
	}

	// A listing of names hides what rm removed inside the batch, as one
	// with attributes does.
	gone := filepath.Join(dir, "tree", "d003", "f7")
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command("find", dir, "-type", "f").Output()
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	if n := strings.Count(string(out), "\n"); n != dirs*per-1 || strings.Contains(string(out), gone+"\n") {
		t.Errorf("find after rm %s: %d files listed, want %d without it", gone, n, dirs*per-1)
	}
}

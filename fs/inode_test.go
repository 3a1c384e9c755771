package fs

import (
	"testing"
)

func TestInodeRangesDoNotMeet(t *testing.T) {
	seen := map[uint64]string{rootIno: "root"}
	add := func(ino uint64, what string) {
		t.Helper()
		if prev, ok := seen[ino]; ok {
			t.Fatalf("inode %#x of %s is also %s", ino, what, prev)
		}
		seen[ino] = what
	}
	for _, ws := range []string{"default", "atlas", "cms", "a", "b", "put"} {
		add(workspaceIno(ws), "workspace "+ws)
		add(putIno(ws), "put of "+ws)
	}
	for _, id := range []uint64{1, 2, 507, 1<<40 + 3} {
		add(batchIno(id), "batch")
		add(fileIno(id), "file")
	}
	for ino, what := range seen {
		if ino == rootIno {
			continue
		}
		if ino < workspaceBit {
			t.Errorf("%s has inode %#x in the loopback's range", what, ino)
		}
	}
}

func TestInodesAreStable(t *testing.T) {
	// Numbers must survive a remount: they are computed, and these values
	// are what earlier mounts handed out.
	if got := fileIno(42); got != 1<<62|42 {
		t.Errorf("fileIno(42) = %#x", got)
	}
	if got := batchIno(7); got != 1<<61|7 {
		t.Errorf("batchIno(7) = %#x", got)
	}
	if got, want := workspaceIno("default"), workspaceIno("default"); got != want {
		t.Errorf("workspaceIno not deterministic")
	}
	if workspaceIno("default")&1 != 0 || putIno("default") != workspaceIno("default")|1 {
		t.Errorf("workspace and put inodes: %#x %#x", workspaceIno("default"), putIno("default"))
	}
	if workspaceIno("default")&(batchBit|fileBit) != 0 {
		t.Errorf("workspace inode %#x has batch or file bits", workspaceIno("default"))
	}
}

func TestParseBatchName(t *testing.T) {
	for name, want := range map[string]uint64{"1": 1, "507": 507, "18446744073709551615": 1<<64 - 1} {
		if id, ok := parseBatchName(name); !ok || id != want {
			t.Errorf("parseBatchName(%q) = %d, %v", name, id, ok)
		}
	}
	for _, name := range []string{"", "0", "0507", "+5", "5 ", "put", "-1", "18446744073709551616"} {
		if id, ok := parseBatchName(name); ok {
			t.Errorf("parseBatchName(%q) = %d, want no batch", name, id)
		}
	}
}

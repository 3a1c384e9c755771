package archive

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapefs/tapefs/catalog"
)

func batchesOf(t *testing.T, e *Engine) []catalog.Batch {
	t.Helper()
	var bs []catalog.Batch
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		bs, err = tx.Batches(catalog.ListOptions{Workspace: "ws"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return bs
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A write-failed mark that the disk refuses (here: the file is immutable)
// is kept in memory and holds the entry; it is set on the file once that
// works, and then survives a restart; a rewrite of the file releases the
// entry.
func TestWriteFailedMarkSetWhenTheDiskAllows(t *testing.T) {
	home := t.TempDir()
	te := testSetup{Home: home}.open(t)
	staging := te.StagingDir("ws")
	makeTree(t, staging, []srcFile{
		{path: "e/f", typ: catalog.TypeFile, data: []byte("short"), mode: 0o644},
		{path: "e/g", typ: catalog.TypeFile, data: []byte("whole"), mode: 0o644},
	})
	f := filepath.Join(staging, "e/f")
	if out, err := exec.Command("chattr", "+i", f).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i (the test needs root and a file system with the immutable flag, like ext4): %v\n%s", err, out)
	}
	defer exec.Command("chattr", "-i", f).Run()
	if err := unix.Lsetxattr(f, xattrWriteFailed, []byte("x"), 0); err == nil {
		t.Fatal("an immutable file took an xattr: the test proves nothing")
	}

	te.WriteFailed("ws", "e/f", -1, "write", syscall.ENOSPC)
	state, why := te.EntryState("ws", "e")
	if state != EntryWriteFailed || !strings.Contains(why, "e/f: write failed with ENOSPC") {
		t.Fatalf("entry state %q (%q), want write-failed naming e/f and ENOSPC", state, why)
	}
	time.Sleep(10 * te.cfg.Settle)
	if bs := batchesOf(t, te.Engine); len(bs) != 0 {
		t.Fatalf("sealed while a write into e/f had failed: %v", bs)
	}

	// The disk takes the mark again: it is set without any change to the
	// entry.
	if out, err := exec.Command("chattr", "-i", f).CombinedOutput(); err != nil {
		t.Fatalf("chattr -i: %v\n%s", err, out)
	}
	waitUntil(t, "the mark on the file", func() bool {
		_, err := unix.Lgetxattr(f, xattrWriteFailed, make([]byte, 128))
		return err == nil
	})

	// A restart reads it back.
	te.close()
	te = testSetup{Home: home}.open(t)
	waitUntil(t, "write-failed after the restart", func() bool {
		s, _ := te.EntryState("ws", "e")
		return s == EntryWriteFailed
	})
	time.Sleep(10 * te.cfg.Settle)
	if bs := batchesOf(t, te.Engine); len(bs) != 0 {
		t.Fatalf("sealed after a restart although a write into e/f had failed: %v", bs)
	}

	// Truncated and written again: sealed.
	te.FileRewritten("ws", "e/f", -1)
	if err := os.WriteFile(f, []byte("the whole file"), 0o644); err != nil {
		t.Fatal(err)
	}
	te.EntryChanged("ws", "e")
	waitUntil(t, "the entry sealed after the rewrite", func() bool { return len(batchesOf(t, te.Engine)) == 1 })
}

// A file that could not be marked and is then replaced under its name
// does not pass its mark to the new file.
func TestWriteFailedMarkNotMovedToAReplacement(t *testing.T) {
	te := testSetup{Home: t.TempDir()}.open(t)
	staging := te.StagingDir("ws")
	makeTree(t, staging, []srcFile{{path: "e/f", typ: catalog.TypeFile, data: []byte("short"), mode: 0o644}})
	f := filepath.Join(staging, "e/f")
	if out, err := exec.Command("chattr", "+i", f).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i: %v\n%s", err, out)
	}
	te.WriteFailed("ws", "e/f", -1, "write", syscall.EIO)
	if out, err := exec.Command("chattr", "-i", f).CombinedOutput(); err != nil {
		t.Fatalf("chattr -i: %v\n%s", err, out)
	}
	// rsync's way: a new file renamed over the short one.
	tmp := filepath.Join(staging, "e/.f.tmp")
	if err := os.WriteFile(tmp, []byte("the whole file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f); err != nil {
		t.Fatal(err)
	}
	te.EntryChanged("ws", "e")
	waitUntil(t, "the entry sealed", func() bool { return len(batchesOf(t, te.Engine)) == 1 })
}

// A write-failed entry renamed in put/ keeps its marks under the new name
// (they are on its files) and the old name is forgotten.
func TestWriteFailedEntryRenamed(t *testing.T) {
	te := testSetup{Home: t.TempDir()}.open(t)
	staging := te.StagingDir("ws")
	makeTree(t, staging, []srcFile{{path: "a/f", typ: catalog.TypeFile, data: []byte("short"), mode: 0o644}})
	te.WriteFailed("ws", "a/f", -1, "write", syscall.ENOSPC)
	if err := os.Rename(filepath.Join(staging, "a"), filepath.Join(staging, "b")); err != nil {
		t.Fatal(err)
	}
	te.EntryChanged("ws", "a")
	te.EntryChanged("ws", "b")
	waitUntil(t, "b write-failed and a forgotten", func() bool {
		sb, _ := te.EntryState("ws", "b")
		sa, _ := te.EntryState("ws", "a")
		return sb == EntryWriteFailed && sa == EntryPending && te.HasWriteFailures("ws")
	})
	te.mu.Lock()
	_, stale := te.entries[entryKey{"ws", "a"}]
	te.mu.Unlock()
	if stale {
		t.Error("the old name of a renamed write-failed entry is still tracked")
	}
	time.Sleep(10 * te.cfg.Settle)
	if bs := batchesOf(t, te.Engine); len(bs) != 0 {
		t.Fatalf("a renamed write-failed entry was sealed: %v", bs)
	}
}

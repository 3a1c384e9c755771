package test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The kernel caches workspace and batch directories for --kernel-cache;
// changes made behind the mount's back must show at once anyway. These
// tests run the mount with an hour of kernel cache, so a change that is
// not notified stays visibly stale for the rest of the test.

const longKernelCache = "1h"

// notifiedWithin is how long a change made outside the mount may take to
// reach the kernel: the notification is delivered right after the change
// commits, so this is slack for a loaded machine, far below the hour the
// kernel would otherwise keep the stale entry.
const notifiedWithin = 3 * time.Second

// gone reports whether path does not exist (ENOENT).
func gone(path string) (bool, string) {
	_, err := os.Lstat(path)
	if errors.Is(err, syscall.ENOENT) {
		return true, ""
	}
	if err != nil {
		return false, err.Error()
	}
	return false, "still there"
}

// TestKernelCacheRemoveUndelete: tapefs rm -b ID makes MOUNT/ws/ID vanish
// at once although the kernel had it cached (looked up, listed, its
// attributes read), and tapefs undelete brings it back at once.
func TestKernelCacheRemoveUndelete(t *testing.T) {
	d := startDaemon(t, append(fastFlags(), "--kernel-cache", longKernelCache)...)
	src := t.TempDir()
	sh(t, src, "mkdir run && echo hello > run/a && echo world > run/b")
	id := d.cpSynced(filepath.Join(src, "run"), 2*time.Minute)
	dir := filepath.Join(d.ws("default"), id)
	// Get the batch directory and its tree into the kernel's caches.
	sh(t, "/", "ls -la "+q(dir)+" >/dev/null && stat "+q(dir)+" >/dev/null && cat "+q(dir+"/run/a")+" >/dev/null")

	o := cliOpts{home: d.home}
	cliOK(t, o, "rm", "-b", id)
	// At once: the CLI answers after the mount heard of the change.
	if ok, why := gone(dir); !ok {
		t.Errorf("right after tapefs rm -b %s, %s: %s (the kernel's cached entry was not dropped)", id, dir, why)
	}
	if slices.Contains(d.batchIDs("default"), id) {
		t.Errorf("right after tapefs rm -b %s, ls %s still lists it", id, d.ws("default"))
	}
	if ok, why := gone(filepath.Join(dir, "run", "a")); !ok {
		t.Errorf("a file of the removed batch: %s", why)
	}

	cliOK(t, o, "undelete", "-b", id)
	if _, err := os.Stat(filepath.Join(dir, "run", "a")); err != nil {
		t.Errorf("right after tapefs undelete -b %s: %v", id, err)
	}
	if !slices.Contains(d.batchIDs("default"), id) {
		t.Errorf("right after tapefs undelete -b %s, ls does not list it", id)
	}
	if got := sh(t, "/", "cat "+q(filepath.Join(dir, "run", "b"))); got != "world\n" {
		t.Errorf("undeleted batch reads %q", got)
	}

	// And once more through the mount itself (rm -r), then undelete.
	sh(t, "/", "rm -rf "+q(dir))
	if ok, why := gone(dir); !ok {
		t.Errorf("after rm -r through the mount: %s", why)
	}
	cliOK(t, o, "undelete", "-b", id)
	if _, err := os.Stat(filepath.Join(dir, "run", "a")); err != nil {
		t.Errorf("after undelete of a batch removed through the mount: %v", err)
	}
}

// TestKernelCacheTimerSeal: an entry sealed by the settle timer leaves put/
// and its batch shows in the workspace at once, although the kernel had
// the entry cached.
func TestKernelCacheTimerSeal(t *testing.T) {
	d := startDaemon(t, "--time-scale", "0", "--settle", "2s", "--flush-age", "1s", "--recall-linger", "1ms", "--kernel-cache", longKernelCache, "--log-level", "debug")
	before := d.batchIDs("default")
	entry := filepath.Join(d.put("default"), "timed")
	sh(t, "/", "mkdir "+q(entry)+" && echo timed > "+q(entry+"/f"))
	// Keep the entry in the kernel's cache while it settles.
	stat(t, entry)
	stat(t, entry+"/f")
	id := d.waitNewBatch("default", before, time.Minute)
	t0 := time.Now()
	waitFor(t, notifiedWithin, "put/timed to vanish once its batch appeared", func() (bool, string) { return gone(entry) })
	t.Logf("put/timed gone %v after its batch %s showed in ls", time.Since(t0).Round(time.Millisecond), id)
	// put/ itself is cached for a second only, so its vanishing alone does
	// not prove the notification: the kernel must have been told to drop
	// the very entry it held.
	dropped := false
	for _, e := range d.waitLogEvents("kernel entry dropped", 1, notifiedWithin) {
		dropped = dropped || (e.str("name") == "timed" && filepath.Base(e.str("dir")) == "put")
	}
	if !dropped {
		t.Errorf("no notification dropped the kernel's entry put/timed: %v", d.logEvents("kernel entry dropped"))
	}
	if got := sh(t, "/", "cat "+q(filepath.Join(d.ws("default"), id, "timed", "f"))); got != "timed\n" {
		t.Errorf("the timer-sealed batch reads %q", got)
	}
	// A new entry of the same name is a new entry, not the cached one.
	sh(t, "/", "mkdir "+q(entry)+" && echo again > "+q(entry+"/f"))
	if got := sh(t, "/", "cat "+q(entry+"/f")); got != "again\n" {
		t.Errorf("a new put/timed reads %q", got)
	}
}

// TestKernelCacheCLIPut: a batch put with the CLI shows in the mount at once
// and a removal through the CLI hides it at once, with long kernel caches.
func TestKernelCacheCLIPut(t *testing.T) {
	d := startDaemon(t, append(fastFlags(), "--kernel-cache", longKernelCache)...)
	src := t.TempDir()
	sh(t, src, "mkdir clidir && echo cli > clidir/one.txt")
	o := cliOpts{home: d.home}
	r := cliOK(t, o, "put", "-w", "default", filepath.Join(src, "clidir"))
	id := strconv.FormatUint(batchID(t, r), 10)
	if !slices.Contains(d.batchIDs("default"), id) {
		t.Fatalf("batch %s put with the CLI is not listed in the mount", id)
	}
	dir := filepath.Join(d.ws("default"), id)
	stat(t, dir)
	cliOK(t, o, "rm", "-b", id)
	if ok, why := gone(dir); !ok {
		t.Errorf("right after tapefs rm -b %s: %s", id, why)
	}
}

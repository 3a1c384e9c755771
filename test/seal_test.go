package test

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSealReturnsWhileHashing: setfattr -n user.tapefs.seal returns as soon
// as the entry has left put/ and has its batch, long before its md5s are
// computed (hashing paced to 12 s here). The batch shows at once as
// SEALING with its progress in tapefs status, its files read back right
// meanwhile, and after a kill -9 during the hashing the next daemon
// finishes the batch with the right md5s.
func TestSealReturnsWhileHashing(t *testing.T) {
	const hashRate = 4 << 20 // bytes per second
	const size = 48 << 20
	paced := append(fastFlags(), "--settle", "1h", "--hash-rate", "4M")
	d := startDaemon(t, paced...)
	src := t.TempDir()
	sh(t, src, fmt.Sprintf("mkdir big && head -c %d /dev/urandom > big/data.bin && echo small > big/small.txt", size))
	sums := sh(t, filepath.Join(src, "big"), "md5sum data.bin small.txt")
	sh(t, "/", "cp -a "+q(filepath.Join(src, "big"))+" "+q(d.put("default")+"/"))

	before := d.batchIDs("default")
	t0 := time.Now()
	seal(t, filepath.Join(d.put("default"), "big"))
	took := time.Since(t0)
	hashing := time.Duration(size / hashRate * int64(time.Second))
	t.Logf("setfattr user.tapefs.seal of %d MiB returned after %v (hashing is paced to %v)", size>>20, took.Round(time.Millisecond), hashing)
	if took > hashing/2 {
		t.Fatalf("the seal request took %v: it waited for the hashing (%v)", took, hashing)
	}
	// At once: the batch is listed, SEALING, and put/ no longer holds the entry.
	ids := d.batchIDs("default")
	if len(ids) != len(before)+1 {
		t.Fatalf("right after the seal returned the workspace lists %v (before: %v)", ids, before)
	}
	id := ids[len(ids)-1]
	dir := filepath.Join(d.ws("default"), id)
	if st := mustXattr(t, dir, "user.tapefs.state"); st != "SEALING" {
		t.Fatalf("batch %s is %s right after the seal, want SEALING", id, st)
	}
	if ok, why := gone(filepath.Join(d.put("default"), "big")); !ok {
		t.Fatalf("put/big after the seal returned: %s", why)
	}
	// Progress moves and shows in tapefs status.
	o := cliOpts{home: d.home}
	waitFor(t, hashing/2, "the hashing progress to show in tapefs status", func() (bool, string) {
		r := cliOK(t, o, "status", "-b", id)
		for _, line := range strings.Split(r.stdout, "\n") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[0] == id && f[2] == "SEALING" && f[3] != "0%" && f[3] != "100%" {
				return true, ""
			}
		}
		return false, r.stdout
	})
	// The files read back right while the batch is SEALING.
	if got := sh(t, filepath.Join(dir, "big"), "md5sum data.bin small.txt"); got != sums {
		t.Fatalf("md5sum through the mount while SEALING:\n%s\nwant\n%s", got, sums)
	}
	if st := mustXattr(t, dir, "user.tapefs.state"); st != "SEALING" {
		t.Fatalf("batch %s is %s after the reads; the test needs it still SEALING (hashing paced to %v)", id, st, hashing)
	}

	// tapefs seal returns as fast: its batch waits behind the first one's
	// hashing, SEALING, and reads right.
	sh(t, src, "mkdir second && echo second > second/s.txt")
	sh(t, "/", "cp -a "+q(filepath.Join(src, "second"))+" "+q(d.put("default")+"/"))
	r := cliOK(t, o, "seal", filepath.Join(d.put("default"), "second"))
	id2 := strconv.FormatUint(batchID(t, r), 10)
	t.Logf("tapefs seal returned batch %s after %v", id2, r.took.Round(time.Millisecond))
	if st := mustXattr(t, filepath.Join(d.ws("default"), id2), "user.tapefs.state"); st != "SEALING" {
		t.Fatalf("batch %s is %s right after tapefs seal, want SEALING (queued behind batch %s)", id2, st, id)
	}
	if got := sh(t, "/", "cat "+q(filepath.Join(d.ws("default"), id2, "second", "s.txt"))); got != "second\n" {
		t.Fatalf("second/s.txt of the SEALING batch %s reads %q", id2, got)
	}

	d.kill9()
	d.flags = append(fastFlags(), "--settle", "1h") // no pacing now
	d.startAfterKill9()
	d.waitBatchState("default", id, "CACHED_SYNCED", 2*time.Minute)
	want := strings.Fields(sums)[0]
	if got := mustXattr(t, filepath.Join(dir, "big", "data.bin"), "user.tapefs.md5"); got != want {
		t.Fatalf("user.tapefs.md5 after the restart %s, want %s", got, want)
	}
	if got := sh(t, filepath.Join(dir, "big"), "md5sum data.bin small.txt"); got != sums {
		t.Fatalf("md5sum after the restart:\n%s\nwant\n%s", got, sums)
	}
	d.waitBatchState("default", id2, "CACHED_SYNCED", 2*time.Minute)
	if got := mustXattr(t, filepath.Join(d.ws("default"), id2, "second", "s.txt"), "user.tapefs.md5"); got != md5Hex("second\n") {
		t.Fatalf("md5 of second/s.txt after the restart %s, want %s", got, md5Hex("second\n"))
	}
	if n := len(d.logEvents("checksums of a sealed batch are computed again after restart")); n != 2 {
		t.Errorf("%d log lines say the hashing was taken up again after the restart, want 2", n)
	}
}

// TestFreshBatchReadableAfterKill9 is issue 8's fault 10: a batch must
// never be visible before its files can be read. One mv into put/, kill
// -9 about when the settle timer seals it, restart, and read a file of the
// batch the moment it shows: the read may wait, never fail. Each round
// kills at another moment of the seal.
func TestFreshBatchReadableAfterKill9(t *testing.T) {
	d := startDaemon(t, fastFlags()...)
	const files = 1500
	seen := map[string]bool{}
	for round := 0; round < 5; round++ {
		src := t.TempDir()
		entry := fmt.Sprintf("run%d", round)
		content := fmt.Sprintf("round %d\n", round)
		// Many small files first, sub/h.txt last: it is adopted last.
		sh(t, src, fmt.Sprintf("mkdir -p %s/sub && for i in $(seq 1000 %d); do echo $i > %s/a$i; done && printf %q > %s/sub/h.txt",
			entry, 999+files, entry, content, entry))
		sh(t, "/", "mv "+q(filepath.Join(src, entry))+" "+q(d.put("default")+"/"))
		// The settle timer (1 s) seals it about now.
		time.Sleep(700*time.Millisecond + time.Duration(round)*200*time.Millisecond)
		d.kill9()
		d.startAfterKill9()

		var id string
		deadline := time.Now().Add(time.Minute)
		for id == "" {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no batch of %s appeared within a minute; put/: %v", round, entry, listNames(d.put("default")))
			}
			for _, x := range d.batchIDs("default") {
				if !seen[x] {
					id = x
				}
			}
			if id == "" {
				time.Sleep(5 * time.Millisecond)
			}
		}
		seen[id] = true
		// Read at once: the read must succeed (waiting if it must).
		p := filepath.Join(d.ws("default"), id, entry, "sub", "h.txt")
		b, err := os.ReadFile(p)
		if err != nil {
			var errno syscall.Errno
			errors.As(err, &errno)
			t.Fatalf("round %d: batch %s was listed but reading %s failed: %v (errno %d)", round, id, p, err, errno)
		}
		if string(b) != content {
			t.Fatalf("round %d: %s reads %q, want %q", round, p, b, content)
		}
		if n := strings.Count(sh(t, filepath.Join(d.ws("default"), id), "ls "+q(entry)), "\n"); n != files+1 {
			t.Fatalf("round %d: batch %s holds %d entries under %s, want %d", round, id, n, entry, files+1)
		}
		t.Logf("round %d: batch %s read right after the restart", round, id)
	}
}

// TestBatchReadableAfterKill9BetweenRegisterAndAdopt is fault 10 at the
// exact point: a test hook holds the seal after the batch is registered
// and before its files are moved into the cache; the daemon is killed
// there. After the restart the batch shows only with its files readable
// (recovery adopts them before the mount serves), so a read the moment
// it shows succeeds.
func TestBatchReadableAfterKill9BetweenRegisterAndAdopt(t *testing.T) {
	d := newDaemon(t, append(fastFlags(), "--settle", "1h")...)
	d.env = []string{"TAPEFS_TEST_PAUSE_AFTER_REGISTER=1h"}
	d.start()
	src := t.TempDir()
	sh(t, src, "mkdir -p run/sub && for i in $(seq 1 200); do echo $i > run/a$i; done && echo hello > run/sub/h.txt")
	sh(t, "/", "mv "+q(filepath.Join(src, "run"))+" "+q(d.put("default")+"/"))
	go shErr("/", "setfattr -n user.tapefs.seal "+q(filepath.Join(d.put("default"), "run"))) // held by the hook; it dies with the daemon
	d.waitLogEvents("test hook TAPEFS_TEST_PAUSE_AFTER_REGISTER: pausing here", 1, time.Minute)
	d.kill9()
	d.env = nil
	d.startAfterKill9()
	if n := len(d.logEvents("sealed batch adopted into the cache after restart")); n != 1 {
		t.Fatalf("%d batches adopted by the recovery, want 1: the kill did not land between registration and adoption", n)
	}
	ids := d.batchIDs("default")
	if len(ids) != 1 {
		t.Fatalf("batches after the restart: %v, want one", ids)
	}
	b, err := os.ReadFile(filepath.Join(d.ws("default"), ids[0], "run", "sub", "h.txt"))
	if err != nil || string(b) != "hello\n" {
		t.Fatalf("the batch shows but reading its file gives %q, %v", b, err)
	}
	if n := strings.Count(sh(t, filepath.Join(d.ws("default"), ids[0]), "ls run"), "\n"); n != 201 {
		t.Errorf("batch %s holds %d entries under run, want 201", ids[0], n)
	}
	d.waitBatchState("default", ids[0], "CACHED_SYNCED", time.Minute)
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestWatermarkEvictionShowsSynced: when the cache evicts a batch by itself
// to make room (its high watermark), the batch says SYNCED, as after
// tapefs cache evict, and its files read back from tape.
func TestWatermarkEvictionShowsSynced(t *testing.T) {
	d := startDaemon(t, append(fastFlags(), "--cache-size", "20M")...)
	src := t.TempDir()
	sh(t, src, "mkdir first second && head -c 8M /dev/urandom > first/a && head -c 12M /dev/urandom > second/b")
	sum := sh(t, filepath.Join(src, "first"), "md5sum a")
	first := d.cpSynced(filepath.Join(src, "first"), 2*time.Minute)
	// 8 + 12 MiB passes 90 % of 20 MiB: the first batch, on tape, is
	// evicted to make room for the second.
	d.cpSynced(filepath.Join(src, "second"), 2*time.Minute)
	d.waitBatchState("default", first, "SYNCED", time.Minute)
	dir := filepath.Join(d.ws("default"), first, "first")
	if st := mustXattr(t, filepath.Join(dir, "a"), "user.tapefs.state"); st != "offline" {
		t.Errorf("a file of the evicted batch is %s, want offline", st)
	}
	if got := sh(t, dir, "md5sum a"); got != sum {
		t.Errorf("md5sum of the evicted batch's file (recalled): %s, want %s", got, sum)
	}
}

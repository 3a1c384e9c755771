package tape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// openTest opens a library with TimeScale 0 (no real sleeping) and closes it
// when the test ends.
func openTest(t *testing.T, cfg Config) *library {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	lib, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { lib.Close() })
	return lib.(*library)
}

func acquire(t *testing.T, l Library, volser string) Drive {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := l.Acquire(ctx, volser)
	if err != nil {
		t.Fatalf("Acquire %s: %v", volser, err)
	}
	return d
}

func cartInfo(t *testing.T, l Library, volser string) CartridgeInfo {
	t.Helper()
	ci, err := l.Cartridge(volser)
	if err != nil {
		t.Fatal(err)
	}
	return ci
}

func almostEqual(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

func TestNewLibraryDefaults(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir})
	carts := l.Cartridges()
	if len(carts) != 20 {
		t.Fatalf("%d cartridges, want 20", len(carts))
	}
	if len(l.Drives()) != 2 {
		t.Fatalf("%d drives, want 2", len(l.Drives()))
	}
	if l.timing != LTO9() {
		t.Errorf("timing %+v, want LTO9", l.timing)
	}
	for i, ci := range carts {
		want := fmt.Sprintf("TF%04d", i+1)
		if ci.VOLSER != want || ci.Capacity != 18e12 || ci.State != CartridgeScratch ||
			ci.TapeFiles != 1 || ci.Used <= 0 || ci.Drive != -1 {
			t.Errorf("cartridge %d: %+v", i, ci)
		}
		lbl, err := readLabel(filepath.Join(dir, want, "000000.tar"))
		if err != nil || lbl.VOLSER != want || lbl.Format != formatVersion {
			t.Errorf("label of %s: %+v, %v", want, lbl, err)
		}
	}
	for _, name := range []string{"library.json", "TF0001/INDEX", "TF0020/000000.tar"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
}

func TestReopenKeepsAndGrows(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir, Drives: 1, Cartridges: 3, Prefix: "AB", Capacity: 1 << 20})
	d := acquire(t, l, "AB0002")
	writeTapeFile(t, d, []byte("kept"))
	l.Release(d)
	l.Close()

	// Zero counts and a different prefix or capacity do not reshape it.
	l = openTest(t, Config{Dir: dir, Prefix: "ZZ", Capacity: 5})
	if n := len(l.Cartridges()); n != 3 || len(l.Drives()) != 1 {
		t.Fatalf("reopen: %d cartridges, %d drives; want 3, 1", n, len(l.Drives()))
	}
	l.Close()

	l = openTest(t, Config{Dir: dir, Drives: 3, Cartridges: 5})
	carts := l.Cartridges()
	if len(carts) != 5 || len(l.Drives()) != 3 {
		t.Fatalf("grown: %d cartridges, %d drives; want 5, 3", len(carts), len(l.Drives()))
	}
	if carts[4].VOLSER != "AB0005" || carts[4].State != CartridgeScratch || carts[4].Capacity != 1<<20 {
		t.Errorf("new cartridge %+v", carts[4])
	}
	d = acquire(t, l, "AB0002")
	if got := readTapeFile(t, d, 1); string(got) != "kept" {
		t.Errorf("after growing, AB0002 file 1 = %q", got)
	}
	l.Release(d)
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	openTest(t, Config{Dir: dir, Cartridges: 1})
	_, err := Open(Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v, want an in-use error", err)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Dir: t.TempDir(), Drives: -1},
		{Dir: t.TempDir(), Cartridges: 10000},
		{Dir: t.TempDir(), Prefix: "t/"},
	} {
		if l, err := Open(cfg); err == nil {
			l.Close()
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}

func TestMountAndUnmountCounting(t *testing.T) {
	l := openTest(t, Config{Drives: 2, Cartridges: 3})
	t9 := LTO9()
	mount := (t9.RobotMove + t9.Load).Seconds()
	unmount := (t9.Unload + t9.RobotMove).Seconds()

	d1 := acquire(t, l, "TF0001")
	if n, off := d1.Position(); n != 1 || off != 0 {
		t.Errorf("after mount at (%d, %d), want (1, 0)", n, off)
	}
	if ci := cartInfo(t, l, "TF0001"); ci.Drive != d1.Index() {
		t.Errorf("TF0001 in drive %d, want %d", ci.Drive, d1.Index())
	}
	di := l.Drives()[d1.Index()]
	if !di.InUse || di.VOLSER != "TF0001" || di.State != DriveIdle || di.Counters.Mounts != 1 {
		t.Errorf("drive after mount: %+v", di)
	}
	l.Release(d1)

	// Already loaded: no new mount.
	d1 = acquire(t, l, "TF0001")
	l.Release(d1)
	// An empty drive is preferred over unloading TF0001.
	d2 := acquire(t, l, "TF0002")
	if d2.Index() == d1.Index() {
		t.Errorf("TF0002 took TF0001's drive while another was empty")
	}
	l.Release(d2)
	if c := l.Counters(); c.Mounts != 2 || c.Unmounts != 0 {
		t.Errorf("counters %+v, want 2 mounts, 0 unmounts", c)
	}

	// Both drives loaded: TF0003 unloads the least recently used (TF0001).
	d3 := acquire(t, l, "TF0003")
	if d3.Index() != d1.Index() {
		t.Errorf("TF0003 in drive %d, want %d (LRU)", d3.Index(), d1.Index())
	}
	l.Release(d3)
	if ci := cartInfo(t, l, "TF0001"); ci.Drive != -1 {
		t.Errorf("TF0001 still in drive %d", ci.Drive)
	}
	c := l.Counters()
	if c.Mounts != 3 || c.Unmounts != 1 || !almostEqual(c.SimSeconds, 3*mount+unmount) {
		t.Errorf("counters %+v, want 3 mounts, 1 unmount, %v s", c, 3*mount+unmount)
	}
	var sum Counters
	for _, di := range l.Drives() {
		sum = sum.Add(di.Counters)
		if di.InUse || di.State != DriveIdle {
			t.Errorf("released drive %+v", di)
		}
	}
	if sum != c {
		t.Errorf("drive counters add up to %+v, library says %+v", sum, c)
	}
}

func TestAcquireWaitsForCartridgeInHeldDrive(t *testing.T) {
	l := openTest(t, Config{Drives: 2, Cartridges: 2})
	held := acquire(t, l, "TF0001")

	got := make(chan Drive)
	go func() {
		d, err := l.Acquire(context.Background(), "TF0001")
		if err != nil {
			t.Error(err)
		}
		got <- d
	}()
	select {
	case <-got:
		t.Fatal("Acquire of a cartridge held in another drive did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	l.Release(held)
	d := <-got
	if d.Index() != held.Index() {
		t.Errorf("waiter got drive %d, want %d where the cartridge is", d.Index(), held.Index())
	}
	if c := l.Counters(); c.Mounts != 1 {
		t.Errorf("%d mounts, want 1", c.Mounts)
	}
	l.Release(d)
}

func TestAcquireWaitsForAFreeDrive(t *testing.T) {
	l := openTest(t, Config{Drives: 1, Cartridges: 2})
	held := acquire(t, l, "TF0001")
	got := make(chan Drive)
	go func() {
		d, err := l.Acquire(context.Background(), "TF0002")
		if err != nil {
			t.Error(err)
		}
		got <- d
	}()
	select {
	case <-got:
		t.Fatal("Acquire with every drive busy did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	l.Release(held)
	d := <-got
	if d.VOLSER() != "TF0002" {
		t.Errorf("got %s", d.VOLSER())
	}
	if c := l.Counters(); c.Mounts != 2 || c.Unmounts != 1 {
		t.Errorf("counters %+v, want 2 mounts and 1 unmount", c)
	}
	l.Release(d)
}

func TestAcquireContext(t *testing.T) {
	l := openTest(t, Config{Drives: 1, Cartridges: 2})
	held := acquire(t, l, "TF0001")
	defer l.Release(held)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(ctx, "TF0002"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire with all drives busy: %v, want deadline exceeded", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := l.Acquire(ctx, "TF0001")
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Acquire: %v", err)
	}
}

func TestAcquireUnknownAndClosed(t *testing.T) {
	l := openTest(t, Config{Cartridges: 1})
	if _, err := l.Acquire(context.Background(), "TF0009"); !errors.Is(err, ErrNoCartridge) {
		t.Errorf("unknown VOLSER: %v", err)
	}
	if _, err := l.Cartridge("XX0001"); !errors.Is(err, ErrNoCartridge) {
		t.Errorf("unknown VOLSER: %v", err)
	}
	l.Close()
	if _, err := l.Acquire(context.Background(), "TF0001"); err == nil {
		t.Error("Acquire after Close succeeded")
	}
}

func TestReleasedHandleFails(t *testing.T) {
	l := openTest(t, Config{Cartridges: 1})
	d := acquire(t, l, "TF0001")
	l.Release(d)
	l.Release(d) // harmless
	if _, err := d.Write([]byte("x")); err == nil {
		t.Error("Write after Release succeeded")
	}
	if err := d.Locate(1, 0); err == nil {
		t.Error("Locate after Release succeeded")
	}
}

func TestIdleUnloadHoldsCartridge(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	// Steps cost nanoseconds, so TimeScale 1 sleeps nothing noticeable but
	// makes IdleUnload a real hour.
	tm := Timing{RobotMove: 1, Load: 1, Unload: 1, LocateBase: 1, StreamRate: 1 << 40}
	l := openTest(t, Config{Drives: 1, Cartridges: 2, Timing: tm, TimeScale: 1, IdleUnload: time.Hour})
	l.now = clock

	d := acquire(t, l, "TF0001")
	l.Release(d)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(ctx, "TF0002"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("TF0002 during TF0001's idle hold: %v, want to wait", err)
	}
	// The held cartridge itself is served at once.
	d = acquire(t, l, "TF0001")
	l.Release(d)

	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	d = acquire(t, l, "TF0002")
	l.Release(d)
}

// TestConcurrentUse hammers the pool from many goroutines (run with -race)
// and checks that no cartridge is ever held twice.
func TestConcurrentUse(t *testing.T) {
	l := openTest(t, Config{Drives: 2, Cartridges: 4, Capacity: 1 << 30})
	var mu sync.Mutex
	holding := map[string]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 15; i++ {
				volser := fmt.Sprintf("TF%04d", 1+(g+i)%4)
				d, err := l.Acquire(context.Background(), volser)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if holding[volser] {
					t.Errorf("%s held twice", volser)
				}
				holding[volser] = true
				mu.Unlock()
				l.Drives()
				l.Cartridges()
				if _, err := d.SeekEOD(); err != nil {
					t.Error(err)
				}
				if _, err := d.Write([]byte(volser)); err != nil {
					t.Error(err)
				}
				if err := d.WriteFilemark(); err != nil {
					t.Error(err)
				}
				mu.Lock()
				holding[volser] = false
				mu.Unlock()
				l.Release(d)
			}
		}()
	}
	wg.Wait()
	files := 0
	for _, ci := range l.Cartridges() {
		files += ci.TapeFiles - 1
	}
	if files != 8*15 {
		t.Errorf("%d tape files written, want %d", files, 8*15)
	}
}

// TestTimeScaleSleeps is the one test that really sleeps: a mount of 2
// simulated seconds at TimeScale 0.02 takes at least 40 ms, and many tiny
// writes add up to real time too.
func TestTimeScaleSleeps(t *testing.T) {
	tm := Timing{RobotMove: time.Second, Load: time.Second, StreamRate: 1000}
	l := openTest(t, Config{Drives: 1, Cartridges: 1, Timing: tm, TimeScale: 0.02})
	start := time.Now()
	d := acquire(t, l, "TF0001")
	if el := time.Since(start); el < 40*time.Millisecond || el > 2*time.Second {
		t.Errorf("mount of 2 simulated s at scale 0.02 took %v", el)
	}
	// 200 bytes at 1000 B/s = 0.2 s simulated = 4 ms real, in writes that
	// each owe only 20 µs: owed time is collected, at most minSleep of it
	// is left unslept.
	for i := 0; i < 200; i++ {
		if _, err := d.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 44*time.Millisecond-minSleep {
		t.Errorf("2.2 simulated s at scale 0.02 took %v, want ≥ %v", el, 44*time.Millisecond-minSleep)
	}
	l.Release(d)
	if c := l.Counters(); !almostEqual(c.SimSeconds, 2.2) {
		t.Errorf("simulated %v s, want 2.2", c.SimSeconds)
	}
}

// TestStreamingOverlapsTheHost: a drive streams on its own while the host
// handles the previous block, so a host that spends 40 ms on each block of
// 50 ms of streaming reads at the drive's rate (about 8 × 50 ms), not at
// the sum of the two (8 × 90 ms), and never faster than the drive.
func TestStreamingOverlapsTheHost(t *testing.T) {
	const block, blocks = 1000, 8
	tm := Timing{StreamRate: block * 20} // 50 ms per block at TimeScale 1
	l := openTest(t, Config{Drives: 1, Cartridges: 1, Timing: tm, TimeScale: 1})
	d := acquire(t, l, "TF0001")
	defer l.Release(d)
	data := make([]byte, block*blocks)
	// Written at TimeScale 1 too, with no host time: blocks × 50 ms.
	start := time.Now()
	if _, err := d.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < blocks*50*time.Millisecond-minSleep {
		t.Errorf("writing %d blocks took %v, want ≥ %v", blocks, el, blocks*50*time.Millisecond)
	}
	// The clock starts before the locate (which costs nothing in this
	// timing): the drive may stream from the moment the locate ends. The
	// locate itself must stop the stream the write left: before, a step
	// of zero cost returned before resetting it, so the first read was
	// credited with all the time since the write, and on a loaded machine
	// the read looked faster than the drive.
	buf := make([]byte, block)
	start = time.Now()
	if err := d.Locate(1, 0); err != nil {
		t.Fatal(err)
	}
	for i := range blocks {
		if _, err := io.ReadFull(d, buf); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		time.Sleep(40 * time.Millisecond) // the host's work on the block
	}
	el := time.Since(start)
	drive, sum := blocks*50*time.Millisecond, blocks*90*time.Millisecond
	if el < drive-minSleep {
		t.Errorf("read %d blocks in %v: faster than the drive (%v)", blocks, el, drive)
	}
	// The drive's time, the host's work on the last block, and timer slack.
	if limit := drive + 40*time.Millisecond + 150*time.Millisecond; el > limit {
		t.Errorf("read %d blocks in %v, want ≤ %v (the drive's time; the sum of drive and host is %v)", blocks, el, limit, sum)
	}
}

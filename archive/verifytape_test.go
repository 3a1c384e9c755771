package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// TestTapeScrubSchedule drives the tape scrub with a fake clock: a
// cartridge is read back only once a period has passed (since it was
// first seen, then since its last read-back), never while a migration
// waits, and the most overdue one first.
func TestTapeScrubSchedule(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	te := testSetup{Home: t.TempDir(), Settle: time.Hour, clock: clk, VerifyPeriod: time.Hour}.open(t)
	b1, _ := sealTree(t, te, "one", map[string][]byte{"a": []byte("alpha"), "b": randomBytes(1, 300_000)})
	clk.Add(time.Minute) // past the flush age
	waitSynced(t, te.Engine, b1.ID)

	if vol, err := te.tapeScrubStep(); err != nil || vol != "" {
		t.Fatalf("scrub step before a period passed read %q (%v); want nothing", vol, err)
	}
	clk.Add(2 * time.Hour)
	// A sealed batch waiting for migration: the scrub keeps off the drives.
	b2, _ := sealTree(t, te, "two", map[string][]byte{"c": []byte("gamma")})
	if vol, err := te.tapeScrubStep(); err != nil || vol != "" {
		t.Fatalf("scrub step with a migration waiting read %q (%v); want nothing", vol, err)
	}
	clk.Add(time.Minute)
	waitSynced(t, te.Engine, b2.ID)
	vol, err := te.tapeScrubStep()
	if err != nil || vol == "" {
		t.Fatalf("scrub step once due and idle: %q %v; want a cartridge read back", vol, err)
	}
	verified, _ := te.CartridgesVerified()
	if !verified[vol].Equal(clk.Now()) {
		t.Fatalf("cartridge %s last verified %v, want %v", vol, verified[vol], clk.Now())
	}
	if evs := eventsOf(t, te.Engine, EvTapeVerified); len(evs) != 1 || evs[0].VOLSER != vol || !strings.Contains(evs[0].Message, "0 damaged") {
		t.Fatalf("tape-verified events: %+v", evs)
	}
	// The other written cartridges, one per step, then none.
	written := 0
	for _, c := range te.lib.Cartridges() {
		if c.TapeFiles > 0 {
			written++
		}
	}
	for i := 1; i < written; i++ {
		other, err := te.tapeScrubStep()
		if err != nil || other == "" || other == vol {
			t.Fatalf("scrub step %d of %d written cartridges read %q (%v)", i+1, written, other, err)
		}
	}
	// Not due again until another period has passed.
	if again, err := te.tapeScrubStep(); err != nil || again != "" {
		t.Fatalf("scrub step right after a read-back read %q (%v)", again, err)
	}
	clk.Add(59 * time.Minute)
	if again, err := te.tapeScrubStep(); err != nil || again != "" {
		t.Fatalf("scrub step 59 minutes after a read-back read %q (%v)", again, err)
	}
	clk.Add(2 * time.Minute)
	if again, err := te.tapeScrubStep(); err != nil || again != vol {
		t.Fatalf("scrub step a period after the read-back read %q (%v), want %s", again, err, vol)
	}
}

// TestDueCartridge: the most overdue cartridge first; never verified
// counts from the engine's start.
func TestDueCartridge(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	vols := []string{"A", "B", "C"}
	verified := map[string]time.Time{"A": start.Add(10 * time.Hour), "B": start.Add(5 * time.Hour)}
	cases := []struct {
		now  time.Time
		want string
	}{
		{start.Add(time.Hour), ""},
		{start.Add(25 * time.Hour), "C"}, // never verified: due a period after start, oldest
		{start.Add(29 * time.Hour), "C"},
	}
	for _, c := range cases {
		if got := dueCartridge(vols, verified, start, c.now, 24*time.Hour); got != c.want {
			t.Errorf("at %v: %q, want %q", c.now.Sub(start), got, c.want)
		}
	}
	verified["C"] = start.Add(29 * time.Hour)
	if got := dueCartridge(vols, verified, start, start.Add(30*time.Hour), 24*time.Hour); got != "B" {
		t.Errorf("with C just verified: %q, want B (older than A)", got)
	}
}

// TestVerifyTapeFindsDamage flips a byte of a member inside its tape file:
// VerifyTape of the batch names the file, cartridge and tape file, and puts
// nothing into the cache.
func TestVerifyTapeFindsDamage(t *testing.T) {
	te := testSetup{Home: t.TempDir()}.open(t)
	b, _ := sealTree(t, te, "e", map[string][]byte{"good": randomBytes(2, 100_000), "bad": randomBytes(3, 200_000)})
	waitSynced(t, te.Engine, b.ID)
	files := batchFiles(t, te.Engine, b.ID)
	rep, err := te.VerifyTape(context.Background(), TapeScope{Batch: b.ID})
	if err != nil || len(rep.Damaged) != 0 || rep.Files != 2 || rep.Bytes != 300_000 {
		t.Fatalf("verify of a good batch: %+v %v", rep, err)
	}
	bad := files["e/bad"]
	c := bad.Copies[0]
	flipOnTape(t, te.setup.Home, c, 1000)
	objects := te.cache.Stats().Objects
	rep, err = te.VerifyTape(context.Background(), TapeScope{Batch: b.ID})
	if err != nil || len(rep.Damaged) != 1 {
		t.Fatalf("verify of a damaged batch: %+v %v", rep, err)
	}
	// Found by the CRC32C sealed with the md5: the md5 is not computed.
	d := rep.Damaged[0]
	if d.Path != "e/bad" || d.VOLSER != c.VOLSER || d.TapeFile != c.TapeFile || d.Want != bad.MD5 || d.Got != "" ||
		bad.CRC32C == "" || d.WantCRC != bad.CRC32C || d.GotCRC == bad.CRC32C || d.GotCRC == "" {
		t.Fatalf("damage report %+v, want e/bad on %s tape file %d found by its CRC32C %s", d, c.VOLSER, c.TapeFile, bad.CRC32C)
	}
	// Asked to, it compares the md5 as well.
	rep, err = te.VerifyTape(context.Background(), TapeScope{Batch: b.ID, MD5: true})
	if err != nil || len(rep.Damaged) != 1 {
		t.Fatalf("verify --md5 of a damaged batch: %+v %v", rep, err)
	}
	if d := rep.Damaged[0]; d.Path != "e/bad" || d.Want != bad.MD5 || d.Got == bad.MD5 || d.Got == "" || d.GotCRC == bad.CRC32C {
		t.Fatalf("damage report with md5 %+v, want e/bad with the md5 it read", d)
	}
	if got := te.cache.Stats().Objects; got != objects {
		t.Fatalf("verify changed the cache: %d objects, had %d", got, objects)
	}
	if n := te.TapeVerifyFailures(); n != 2 {
		t.Fatalf("failures counter %d, want 2", n)
	}
	if evs := eventsOf(t, te.Engine, EvTapeDamaged); len(evs) != 2 || evs[0].Batch != b.ID || !strings.Contains(evs[0].Message, c.VOLSER) ||
		!strings.Contains(evs[0].Message, "CRC32C sealed "+bad.CRC32C) || !strings.Contains(evs[1].Message, "md5 sealed "+bad.MD5) {
		t.Fatalf("tape-damaged events: %+v", evs)
	}
	// The whole cartridge: the same damage, and the read-back recorded.
	rep, err = te.VerifyTape(context.Background(), TapeScope{VOLSER: c.VOLSER})
	if err != nil || len(rep.Damaged) != 1 {
		t.Fatalf("verify of the cartridge: %+v %v", rep, err)
	}
	_, damaged := te.CartridgesVerified()
	if damaged[c.VOLSER] != 1 {
		t.Fatalf("cartridge %s recorded %d damaged, want 1", c.VOLSER, damaged[c.VOLSER])
	}
	// A file sealed before tapefs recorded CRC32Cs is checked by its md5.
	setFile(t, te.Engine, bad.ID, func(f *catalog.File) { f.CRC32C = "" })
	rep, err = te.VerifyTape(context.Background(), TapeScope{Batch: b.ID})
	if err != nil || len(rep.Damaged) != 1 || rep.Files != 2 {
		t.Fatalf("verify without a CRC32C: %+v %v", rep, err)
	}
	if d := rep.Damaged[0]; d.Path != "e/bad" || d.Got == "" || d.Got == bad.MD5 || d.WantCRC != "" {
		t.Fatalf("damage report without a CRC32C %+v, want the md5 read", d)
	}
}

// BenchmarkVerifyCartridge fills one cartridge with mixed files and
// compares reading it back with VerifyTape (locate each member, hash it)
// against streaming the raw bytes of its tape files (no hashing), both
// with the library not sleeping (TimeScale 0): the overhead of
// verification itself. Each is run twice; the second run is reported.
func BenchmarkVerifyCartridge(b *testing.B) {
	te := testSetup{Home: b.TempDir(), Cartridges: 2, Settle: time.Hour}.open(b)
	files := map[string][]byte{}
	var total int64
	for i := 0; total < 256<<20; i++ {
		size := 8 << 20
		if i%4 != 0 {
			size = 64<<10 + i*1000
		}
		files[fmt.Sprintf("f%04d", i)] = randomBytes(int64(i), size)
		total += int64(size)
	}
	bt, _ := sealTree(b, te, "e", files)
	waitSynced(b, te.Engine, bt.ID)
	vol := batchFiles(b, te.Engine, bt.ID)["e/f0000"].Copies[0].VOLSER
	raw := func() (int64, time.Duration) {
		t0 := time.Now()
		d, err := te.lib.Acquire(context.Background(), vol)
		if err != nil {
			b.Fatal(err)
		}
		defer te.lib.Release(d)
		var n int64
		buf := make([]byte, verifyBuffer)
		for _, c := range te.lib.Cartridges() {
			if c.VOLSER != vol {
				continue
			}
			for f := 1; f <= c.TapeFiles; f++ {
				if err := d.Locate(f, 0); err != nil {
					b.Fatal(err)
				}
				m, err := io.CopyBuffer(io.Discard, d, buf)
				if err != nil {
					b.Fatal(err)
				}
				n += m
			}
		}
		return n, time.Since(t0)
	}
	verify := func() (int64, time.Duration) {
		t0 := time.Now()
		rep, err := te.VerifyTape(context.Background(), TapeScope{VOLSER: vol})
		if err != nil || len(rep.Damaged) > 0 {
			b.Fatalf("%+v %v", rep, err)
		}
		return rep.Bytes, time.Since(t0)
	}
	raw()
	verify()
	c0 := te.lib.Counters()
	rn, rt := raw()
	c1 := te.lib.Counters()
	vn, vt := verify()
	c2 := te.lib.Counters()
	rSim, vSim := c1.SimSeconds-c0.SimSeconds, c2.SimSeconds-c1.SimSeconds
	b.ReportMetric(vSim/rSim, "sim-seconds-ratio")
	rRate := float64(rn) / rt.Seconds() / (1 << 20)
	vRate := float64(vn) / vt.Seconds() / (1 << 20)
	b.ReportMetric(rRate, "raw-MiB/s")
	b.ReportMetric(vRate, "verify-MiB/s")
	b.ReportMetric(vRate/rRate, "ratio")
	b.Logf("cartridge %s: %d files, raw %d bytes in %v (%.0f MiB/s, %.1f simulated tape s), verify %d bytes in %v (%.0f MiB/s, %.1f simulated tape s), wall ratio %.2f",
		vol, len(files), rn, rt.Round(time.Millisecond), rRate, rSim, vn, vt.Round(time.Millisecond), vRate, vSim, vRate/rRate)
}

// A scrub that keeps giving its drive back goes on where it stopped: the
// cartridge is read back whole, each copy once, a piece at a time, and
// recorded verified with what every piece found.
func TestTapeScrubResumes(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	te := testSetup{Home: t.TempDir(), Settle: time.Hour, clock: clk, VerifyPeriod: time.Hour}.open(t)
	files := map[string][]byte{}
	for i := range 6 {
		files[fmt.Sprintf("f%d", i)] = randomBytes(int64(i), 50_000)
	}
	b, _ := sealTree(t, te, "six", files)
	clk.Add(time.Minute)
	waitSynced(t, te.Engine, b.ID)
	var vol string
	if err := te.eachDataFile(b, func(f catalog.File) error {
		vol = f.Copies[0].VOLSER
		return nil
	}); err != nil || vol == "" {
		t.Fatalf("no copy on tape: %v", err)
	}
	// Give the drive back before every second copy.
	calls := 0
	yield := func() bool { calls++; return calls%2 == 0 }
	pieces := 0
	for {
		pieces++
		rep, err := te.scrubCartridge(vol, yield)
		if err == nil {
			// The last piece reports the whole cartridge.
			if rep.Files != 6 {
				t.Errorf("the last piece reports %d files for the cartridge, want 6", rep.Files)
			}
			break
		}
		if !errors.Is(err, errVerifyYield) {
			t.Fatal(err)
		}
		if pieces > 20 {
			t.Fatal("the scrub never finishes the cartridge: it starts over each time")
		}
	}
	if pieces < 3 {
		t.Errorf("%d pieces: the yield was not honoured", pieces)
	}
	verified, _ := te.CartridgesVerified()
	if verified[vol].IsZero() {
		t.Errorf("cartridge %s not recorded verified after the last piece", vol)
	}
	if evs := eventsOf(t, te.Engine, EvTapeVerified); len(evs) != 1 || !strings.Contains(evs[0].Message, "6 files") {
		t.Errorf("tape-verified events: %+v; want one naming 6 files", evs)
	}
}

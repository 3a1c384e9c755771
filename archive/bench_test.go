package archive

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// recallScenario puts files spread over about ten cartridges, evicts them,
// then recalls all of them in random order and reports what the library
// did for the recalls alone.
func recallScenario(tb testing.TB, files int, fcfs bool) (delta tape.Counters, carts int) {
	d, carts, _ := readScenario(tb, scenario{files: files, fcfs: fcfs, upfront: true, readers: 16, linger: 100 * time.Millisecond})
	return d, carts
}

// scenario is a recall workload: files of one batch over about ten
// cartridges, read (through Engine.Open, as the mount does) by readers
// workers, each file on its own like `xargs -P readers cat`.
type scenario struct {
	files   int
	read    int  // how many of them are read, in random order; 0: all
	upfront bool // queue every recall at once first (tapefs get)
	ordered bool // read in directory order (cp -r), not shuffled
	readers int
	fcfs    bool
	linger  time.Duration
}

func readScenario(tb testing.TB, sc scenario) (delta tape.Counters, carts int, st Stats) {
	const size = 32 << 10
	// Each cartridge holds about a tenth of the data.
	capacity := int64(sc.files) * (size + 2048) / 10
	te := testSetup{Home: tb.TempDir(), Cartridges: 14, Capacity: capacity, Settle: time.Hour, FCFS: sc.fcfs, Linger: sc.linger}.open(tb)
	_, files := offlineBatch(tb, te, sc.files, size)
	var ids []uint64
	sums := map[uint64]string{}
	for _, f := range files {
		ids = append(ids, f.ID)
		sums[f.ID] = f.MD5
	}
	if sc.ordered {
		slices.Sort(ids)
	} else {
		rand.New(rand.NewSource(1)).Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	}
	if sc.read > 0 {
		ids = ids[:sc.read]
	}
	read := map[uint64]bool{}
	for _, id := range ids {
		read[id] = true
	}
	vols := map[string]bool{}
	for _, f := range files {
		if read[f.ID] {
			vols[f.Copies[0].VOLSER] = true
		}
	}
	before := te.lib.Counters()
	statsBefore := te.Stats()
	if sc.upfront {
		if err := te.Recall(ids...); err != nil {
			tb.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, sc.readers)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if sum, err := md5Through(context.Background(), te.Engine, id); err != nil {
				tb.Error(err)
			} else if sum != sums[id] {
				tb.Errorf("file %d: md5 %s, sealed %s", id, sum, sums[id])
			}
		}()
	}
	wg.Wait()
	after := te.lib.Counters()
	st = te.Stats()
	st.BackwardLocates -= statsBefore.BackwardLocates
	st.RecallPasses -= statsBefore.RecallPasses
	return tape.Counters{
		Mounts: after.Mounts - before.Mounts, Unmounts: after.Unmounts - before.Unmounts, Locates: after.Locates - before.Locates,
		SimSeconds: after.SimSeconds - before.SimSeconds, BytesRead: after.BytesRead - before.BytesRead,
	}, len(vols), st
}

// TestRecallReadersOneMountPerCartridge reads 200 random files of 1,000
// on about ten cartridges with 16 readers, each file opened on its own as
// `xargs -P16 cat` does through the mount (one request per reader at a
// time): one mount per cartridge, no locate backwards.
func TestRecallReadersOneMountPerCartridge(t *testing.T) {
	// The batch is read from the catalog in chunks, as a batch of
	// millions of files would be.
	defer func(n int) { listChunk = n }(listChunk)
	listChunk = 100
	d, carts, st := readScenario(t, scenario{files: 1000, read: 200, readers: 16, linger: 2 * time.Second})
	t.Logf("%d cartridges: %+v, %d passes, %d backward, %d staged ahead", carts, d, st.RecallPasses, st.BackwardLocates, st.StagedAheadFiles)
	if carts < 5 {
		t.Fatalf("files on %d cartridges; the scenario needs them spread", carts)
	}
	if d.Mounts > int64(carts) {
		t.Errorf("%d mounts for %d cartridges", d.Mounts, carts)
	}
	if st.BackwardLocates != 0 {
		t.Errorf("%d backward locates", st.BackwardLocates)
	}
	if st.StagedAheadFiles < 500 {
		t.Errorf("%d of 1,000 files staged ahead; want most (the listing goes on past its first chunk of %d)", st.StagedAheadFiles, listChunk)
	}
}

// TestRecallOneMountPerCartridge: requests in random order over several
// cartridges cost at most one mount per cartridge.
func TestRecallOneMountPerCartridge(t *testing.T) {
	d, carts := recallScenario(t, 200, false)
	if carts < 5 {
		t.Fatalf("files on %d cartridges; the scenario needs them spread", carts)
	}
	if d.Mounts > int64(carts) {
		t.Fatalf("%d mounts for %d cartridges", d.Mounts, carts)
	}
}

// TestRecallSequentialReaderOneMountPerCartridge reads a whole offline
// batch on about ten cartridges in directory order with one reader, as
// cp -r does: one mount per cartridge, no locate backwards.
func TestRecallSequentialReaderOneMountPerCartridge(t *testing.T) {
	d, carts, st := readScenario(t, scenario{files: 400, readers: 1, ordered: true, linger: 200 * time.Millisecond})
	t.Logf("%d cartridges: %+v, %d passes, %d backward, %d staged ahead", carts, d, st.RecallPasses, st.BackwardLocates, st.StagedAheadFiles)
	if d.Mounts > int64(carts) {
		t.Errorf("%d mounts for %d cartridges", d.Mounts, carts)
	}
	if st.BackwardLocates != 0 {
		t.Errorf("%d backward locates", st.BackwardLocates)
	}
}

// BenchmarkRecallOrdering: 1,000 files on 10 cartridges in random order,
// the scheduler against first-come-first-served.
func BenchmarkRecallOrdering(b *testing.B) {
	for _, mode := range []struct {
		name string
		fcfs bool
	}{{"scheduler", false}, {"fcfs", true}} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				d, carts := recallScenario(b, 1000, mode.fcfs)
				b.ReportMetric(float64(carts), "cartridges")
				b.ReportMetric(float64(d.Mounts), "mounts")
				b.ReportMetric(float64(d.Unmounts), "unmounts")
				b.ReportMetric(float64(d.Locates), "locates")
				b.ReportMetric(d.SimSeconds, "sim-s")
			}
		})
	}
}

// BenchmarkMigrationThroughput: 4 GiB of mixed files sealed and written to
// the virtual library, against cp -r of the same tree on the same disk.
func BenchmarkMigrationThroughput(b *testing.B) {
	total := int64(4 << 30)
	if s := os.Getenv("TAPEFS_BENCH_BYTES"); s != "" {
		fmt.Sscan(s, &total)
	}
	for i := 0; i < b.N; i++ {
		te := testSetup{Home: b.TempDir(), Settle: time.Hour, FlushAge: time.Hour, FlushBytes: 1 << 50, FlushFiles: 1 << 30}.open(b)
		src := filepath.Join(b.TempDir(), "src")
		// Mixed sizes: a few large files, many middle ones, many small.
		var written int64
		for n := 0; written < total; n++ {
			size := int64(4 << 10)
			switch {
			case n%100 == 0:
				size = 256 << 20
			case n%10 == 0:
				size = 8 << 20
			case n%3 == 0:
				size = 256 << 10
			}
			size = min(size, total-written)
			writeBigFile(b, filepath.Join(src, fmt.Sprintf("d%02d", n%50), fmt.Sprintf("f%06d", n)), size, int64(n))
			written += size
		}
		if out, err := exec.Command("cp", "-r", src, filepath.Join(te.StagingDir("ws"), "e")).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		quiesce()
		t1 := time.Now()
		bt, err := te.Seal(context.Background(), "ws", "e", 0, "")
		if err != nil {
			b.Fatal(err)
		}
		sealTime := time.Since(t1)
		// The disk writes a burst fast and then throttles, so order
		// matters: cp runs before and after the migration, each from a
		// cold page cache and followed by sync, and the baseline is their
		// mean.
		cpRun := func(dst string) time.Duration {
			quiesce()
			t0 := time.Now()
			if out, err := exec.Command("cp", "-r", src, filepath.Join(b.TempDir(), dst)).CombinedOutput(); err != nil {
				b.Fatalf("cp: %v %s", err, out)
			}
			exec.Command("sync").Run()
			return time.Since(t0)
		}
		cp1 := cpRun("copy1")
		quiesce()
		t2 := time.Now()
		te.Flush()
		waitSynced(b, te.Engine, bt.ID)
		exec.Command("sync").Run()
		migTime := time.Since(t2)
		cp2 := cpRun("copy2")
		cpTime := (cp1 + cp2) / 2
		b.ReportMetric(float64(written)/cpTime.Seconds()/1e6, "cp-MB/s")
		b.ReportMetric(float64(written)/migTime.Seconds()/1e6, "migrate-MB/s")
		b.ReportMetric(float64(written)/sealTime.Seconds()/1e6, "seal-MB/s")
		b.ReportMetric(cpTime.Seconds()/migTime.Seconds(), "migrate/cp")
		b.ReportMetric(cpTime.Seconds()/(migTime+sealTime).Seconds(), "seal+migrate/cp")
	}
}

// BenchmarkSmallFiles: 100,000 files of 4 KiB in one batch become a handful
// of tape files, and their simulated write time is compared with streaming
// the same bytes at drive speed.
func BenchmarkSmallFiles(b *testing.B) {
	const n, size = 100_000, 4 << 10
	for i := 0; i < b.N; i++ {
		te := testSetup{Home: b.TempDir(), Settle: time.Hour, FlushAge: time.Hour}.open(b)
		staging := te.StagingDir("ws")
		for j := 0; j < n; j++ {
			p := filepath.Join(staging, "e", fmt.Sprintf("d%03d", j%100), fmt.Sprintf("f%06d", j))
			if j < 100 {
				os.MkdirAll(filepath.Dir(p), 0o755)
			}
			if err := os.WriteFile(p, randomBytes(int64(j), size), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		bt, err := te.Seal(context.Background(), "ws", "e", 0, "")
		if err != nil {
			b.Fatal(err)
		}
		before := te.lib.Counters()
		te.Flush()
		waitSynced(b, te.Engine, bt.ID)
		after := te.lib.Counters()
		tapeFiles := map[[2]any]bool{}
		for _, f := range batchFiles(b, te.Engine, bt.ID) {
			for _, c := range f.Copies {
				tapeFiles[[2]any{c.VOLSER, c.TapeFile}] = true
			}
		}
		timing := tape.LTO9()
		mount := (timing.RobotMove + timing.Load).Seconds() * float64(after.Mounts-before.Mounts)
		write := after.SimSeconds - before.SimSeconds - mount
		stream := float64(n*size) / float64(timing.StreamRate)
		b.ReportMetric(float64(len(tapeFiles)), "tape-files")
		b.ReportMetric(write, "write-sim-s")
		b.ReportMetric(stream, "stream-sim-s")
		b.ReportMetric(write/stream, "write/stream")
		b.ReportMetric(write/(stream+timing.Filemark.Seconds()*float64(len(tapeFiles))), "write/(stream+filemarks)")
	}
}

// quiesce flushes dirty pages and drops the page cache (as root), so each
// timed step starts from the same state.
func quiesce() {
	exec.Command("sync").Run()
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
	time.Sleep(2 * time.Second)
}

// BenchmarkMigrationCopies: the same batch written with copies = 1 and
// copies = 2 (two pools, two drives), wall time and simulated tape seconds.
// The drives are made slower than the disk (10 MB/s simulated, a tenth of
// the time really waited: 100 MB/s each), so the wall time is the drives'
// and not the disk's, as on a real library; the second copy should then
// cost no more than 1.1 times the wall time of one, being written in
// parallel on the second drive. TAPEFS_BENCH_COPIES_BYTES sets the size
// (default 1 GiB, in 64 MiB files).
func BenchmarkMigrationCopies(b *testing.B) {
	total := int64(1 << 30)
	if s := os.Getenv("TAPEFS_BENCH_COPIES_BYTES"); s != "" {
		fmt.Sscan(s, &total)
	}
	wall := map[int]time.Duration{}
	for _, copies := range []int{1, 2} {
		b.Run(fmt.Sprintf("copies-%d", copies), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				te := testSetup{Home: b.TempDir(), Settle: time.Hour, FlushAge: time.Hour, FlushBytes: 1 << 50, FlushFiles: 1 << 30,
					Cartridges: 4, StreamRate: 10_000_000, TimeScale: 0.1}.open(b)
				if err := te.AssignPools("pool-a", "pool-b"); err != nil {
					b.Fatal(err)
				}
				if _, err := te.SetCopies("ws", copies); err != nil {
					b.Fatal(err)
				}
				staging := te.StagingDir("ws")
				for n := int64(0); n*(64<<20) < total; n++ {
					writeBigFile(b, filepath.Join(staging, "e", fmt.Sprintf("f%03d", n)), min(64<<20, total-n*(64<<20)), n)
				}
				bt, err := te.Seal(context.Background(), "ws", "e", 0, "")
				if err != nil {
					b.Fatal(err)
				}
				for st, _ := te.Status(bt.ID); st.State != catalog.Cached; st, _ = te.Status(bt.ID) {
					time.Sleep(10 * time.Millisecond)
				}
				exec.Command("sync").Run()
				before := te.lib.Counters()
				t0 := time.Now()
				te.Flush()
				waitSynced(b, te.Engine, bt.ID)
				took := time.Since(t0)
				after := te.lib.Counters()
				wall[copies] = took
				b.ReportMetric(took.Seconds(), "wall-s")
				b.ReportMetric(after.SimSeconds-before.SimSeconds, "sim-s")
				b.ReportMetric(float64(after.BytesWritten-before.BytesWritten)/1e6, "MB-written")
				if copies == 2 && wall[1] > 0 {
					b.ReportMetric(took.Seconds()/wall[1].Seconds(), "wall/one-copy")
				}
			}
		})
	}
}

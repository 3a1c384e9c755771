package catalog

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// BenchmarkCatalog builds a catalog of 1,000,000 files in 10 batches on
// bbolt once, then measures against it (go test -run XXX -bench . ./catalog/):
//
//	build          seconds to register the files (one transaction per batch)
//	heap/100k, 1M  heap in use after reopening the catalog at each size: it
//	               must not grow with the catalog
//	lookup         one View with one Lookup (a FUSE LOOKUP)
//	getattr        one View with one File (a FUSE GETATTR)
//	readdir-100k   listing the 100,000-entry top directory of batch 1
//	readdir-page   one page of 1,000 entries from a random point of it
//
// It runs on bbolt and on PostgreSQL (a throwaway server), so that the
// ratios between the engines come from one run on one machine.
func BenchmarkCatalog(b *testing.B) {
	b.Run("bolt", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "catalog.db")
		benchCatalog(b, func() (*Catalog, error) { return Open(path) }, func() int64 {
			fi, err := os.Stat(path)
			if err != nil {
				return 0
			}
			return fi.Size()
		})
	})
	b.Run("postgres", func(b *testing.B) {
		eng := newPostgresEngine(b)
		eng.Close()
		url := pgServer.URL(fmt.Sprintf("cat%d", pgSeq.Load()))
		benchCatalog(b, func() (*Catalog, error) {
			eng, err := OpenPostgresEngine(url, PostgresOptions{})
			if err != nil {
				return nil, err
			}
			return New(eng)
		}, func() int64 { return 0 })
	})
}

func benchCatalog(b *testing.B, open func() (*Catalog, error), size func() int64) {
	const (
		batches  = 10
		perBatch = 100_000
	)
	c, err := open()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { c.Close() }()
	if err := c.Update(func(tx *Tx) error { return tx.PutWorkspace(Workspace{Name: "ws"}) }); err != nil {
		b.Fatal(err)
	}

	var build time.Duration
	heap := map[int]heapUse{}
	for i := 1; i <= batches; i++ {
		var files []File
		if i == 1 {
			// A flat batch: its top level is one 100,000-entry directory.
			files = make([]File, perBatch)
			for j := range files {
				files[j] = File{Path: flatName(j), Type: TypeFile, Mode: 0o644, Size: 1 << 20,
					MD5: "d41d8cd98f00b204e9800998ecf8427e"}
			}
		} else {
			files = bigBatch(fmt.Sprintf("run%02d", i), perBatch, 1000)
		}
		start := time.Now()
		err := c.Update(func(tx *Tx) error {
			var err error
			_, files, err = tx.RegisterBatch(Batch{Workspace: "ws", State: Cached, Bytes: int64(len(files)) << 20}, files)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		build += time.Since(start)
		files = nil
		if i == 1 || i == batches {
			c.Close()
			if heap[i*perBatch], c, err = reopen(open); err != nil {
				b.Fatal(err)
			}
		}
	}
	for n, h := range heap {
		// Opening must not load the catalog: allow for noise, not for
		// anything proportional to its size.
		if h.growth > 1<<20 {
			b.Errorf("opening a catalog of %d files grew the heap by %d bytes", n, h.growth)
		}
	}

	targets, err := lookupTargets(c, batches, 10_000)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("build", func(b *testing.B) {
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(build.Seconds(), "s/1M-files")
		b.ReportMetric(build.Seconds()/batches, "s/100k-batch")
		if n := size(); n > 0 {
			b.ReportMetric(float64(n)/(1<<20), "MB-file")
		}
	})
	for _, n := range []int{perBatch, batches * perBatch} {
		b.Run(fmt.Sprintf("heap/%dk-files", n/1000), func(b *testing.B) {
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(heap[n].inuse)/(1<<20), "MB-heap-inuse")
			b.ReportMetric(float64(heap[n].live)/(1<<20), "MB-heap-live")
			b.ReportMetric(float64(heap[n].growth)/(1<<10), "KB-grown-by-open")
		})
	}
	b.Run("lookup", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			t := targets[i%len(targets)]
			err := c.View(func(tx *Tx) error {
				f, err := tx.Lookup(t.batch, t.parent, t.name)
				if err == nil && f.ID != t.id {
					err = fmt.Errorf("lookup of %s found file %d, want %d", t.name, f.ID, t.id)
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("getattr", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			t := targets[i%len(targets)]
			if err := c.View(func(tx *Tx) error { _, err := tx.File(t.id); return err }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("readdir-100k", func(b *testing.B) {
		for b.Loop() {
			err := c.View(func(tx *Tx) error {
				fs, err := tx.Children(1, 0, "", 0)
				if err == nil && len(fs) != perBatch {
					err = fmt.Errorf("%d entries, want %d", len(fs), perBatch)
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/perBatch, "ns/entry")
	})
	b.Run("readdir-page-1000", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			after := flatName((i * 7919) % (perBatch - 1000))
			err := c.View(func(tx *Tx) error {
				fs, err := tx.Children(1, 0, after, 1000)
				if err == nil && len(fs) != 1000 {
					err = fmt.Errorf("%d entries, want 1000", len(fs))
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

type target struct {
	batch, parent, id uint64
	name              string
}

// lookupTargets picks n random files of the benchmark's catalog and says
// where they are. It works out IDs from the known layout of the batches
// rather than keeping the registered files, which would sit in the heap
// being measured.
func lookupTargets(c *Catalog, batches, n int) ([]target, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var out []target
	err := c.View(func(tx *Tx) error {
		for range n {
			id := uint64(1 + rng.IntN(batches))
			b, err := tx.Batch(id)
			if err != nil {
				return err
			}
			if id == 1 { // flat
				j := rng.IntN(int(b.Files))
				out = append(out, target{id, 0, b.FirstFile + uint64(j), flatName(j)})
				continue
			}
			// bigBatch: the top directory, then directories of 1,000
			// files each.
			d, f := rng.IntN(99), rng.IntN(1000)
			parent := b.FirstFile + 1 + uint64(d)*1001
			out = append(out, target{id, parent, parent + 1 + uint64(f), fmt.Sprintf("f%06d.dat", f)})
		}
		return nil
	})
	return out, err
}

// heapUse is the heap of the whole test process with the catalog open,
// after a GC: the benchmark's own data is in it too, so growth is the
// number that says what opening costs.
type heapUse struct {
	inuse  uint64 // HeapInuse: bytes in spans holding objects
	live   uint64 // HeapAlloc: bytes of live objects
	growth int64  // live minus the live bytes before the open
}

// reopen opens the catalog at path and reports the heap it costs, after a
// lookup so that whatever opening loads lazily is loaded.
func reopen(open func() (*Catalog, error)) (heapUse, *Catalog, error) {
	before := heapStats()
	c, err := open()
	if err != nil {
		return heapUse{}, nil, err
	}
	err = c.View(func(tx *Tx) error { _, err := tx.Lookup(1, 0, "f000000.dat"); return err })
	if err != nil {
		c.Close()
		return heapUse{}, nil, err
	}
	after := heapStats()
	return heapUse{inuse: after.HeapInuse, live: after.HeapAlloc, growth: int64(after.HeapAlloc) - int64(before.HeapAlloc)}, c, nil
}

func heapStats() *runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return &m
}

func flatName(i int) string { return fmt.Sprintf("f%06d.dat", i) }

package archive

import (
	"cmp"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// testSetup describes an engine on a home directory; it is also passed, as
// JSON, to helper processes of the crash tests.
type testSetup struct {
	Home        string
	Cartridges  int
	Capacity    int64
	StreamRate  int64   // 0: LTO-9
	TimeScale   float64 // 0: no sleeping
	Settle      time.Duration
	FlushAge    time.Duration
	Linger      time.Duration
	Prefetch    bool
	RecallMD5   bool
	FCFS        bool
	Quota       int64
	MaxFileSize int64
	Retention   time.Duration
	RemoveGrace time.Duration // 0: engine default
	FlushBytes  int64         // 0: engine default
	FlushFiles  int           // 0: engine default
	Catalog     string        // "" : catalog.db in Home; a postgres:// URL (set by catalogFor)
	ScrubRate   int64         // 0: no scrub (unlike the engine's default)
	ScrubEvery  time.Duration
	WSDrives    int   // RecallWorkspaceDrives
	WSBytes     int64 // RecallWorkspaceBytes
	HashRate    int64 // 0: no limit
	CacheLimit  int64 // 0: the disk's free space
	// VerifyPeriod of the tape scrub; 0: the engine's default (180 days).
	VerifyPeriod time.Duration
	// AggregateTarget of migration and repack; 0: the engine's default.
	AggregateTarget int64
	RepackBelow     float64 // 0: no automatic repack

	clock Clock                           // nil: real time
	wrap  func(tape.Library) tape.Library // fault injection
}

func (s testSetup) withDefaults() testSetup {
	if s.Catalog == "" {
		s.Catalog = catalogFor(s.Home)
	}
	if s.Cartridges == 0 {
		s.Cartridges = 4
	}
	if s.Capacity == 0 {
		s.Capacity = 10 << 30
	}
	if s.Settle == 0 {
		s.Settle = 100 * time.Millisecond
	}
	if s.FlushAge == 0 {
		s.FlushAge = 20 * time.Millisecond
	}
	if s.Linger == 0 {
		s.Linger = 10 * time.Millisecond
	}
	return s
}

type testEngine struct {
	*Engine
	setup  testSetup
	lib    tape.Library
	closed bool // close is idempotent: a test may close before its cleanup does
}

// open starts an engine on the setup's home, creating it on first use.
func (s testSetup) open(tb testing.TB) *testEngine {
	tb.Helper()
	te, err := s.openErr()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { te.close() })
	return te
}

func (s testSetup) openErr() (*testEngine, error) {
	s = s.withDefaults()
	timing := tape.LTO9()
	if s.StreamRate != 0 {
		timing.StreamRate = s.StreamRate
	}
	lib, err := tape.Open(tape.Config{Dir: filepath.Join(s.Home, "library"), Drives: 2, Cartridges: s.Cartridges, Capacity: s.Capacity, Timing: timing, TimeScale: s.TimeScale})
	if err != nil {
		return nil, err
	}
	cat, err := catalog.OpenAt(s.Catalog, filepath.Join(s.Home, "catalog.db"))
	if err != nil {
		return nil, err
	}
	c, err := cache.Open(cache.Config{Dir: filepath.Join(s.Home, "cache"), Limit: s.CacheLimit})
	if err != nil {
		return nil, err
	}
	log := zerolog.Nop()
	if os.Getenv("TAPEFS_TEST_LOG") != "" {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
	}
	var engineLib tape.Library = lib
	if s.wrap != nil {
		engineLib = s.wrap(lib)
	}
	e, err := New(Config{
		Catalog: cat, Cache: c, Library: engineLib, Log: log, Clock: s.clock, Retention: s.Retention, RemoveGrace: s.RemoveGrace, FlushBytes: s.FlushBytes, FlushFiles: s.FlushFiles,
		Settle: s.Settle, FlushAge: s.FlushAge, RecallLinger: s.Linger, Prefetch: s.Prefetch, RecallMD5: s.RecallMD5, FCFS: s.FCFS,
		MaxFileSize: s.MaxFileSize, Backoff: 20 * time.Millisecond, MaxAttempts: 2, HashRate: s.HashRate,
		ScrubRate: cmp.Or(s.ScrubRate, -1), ScrubInterval: s.ScrubEvery, RecallWorkspaceDrives: s.WSDrives,
		RecallWorkspaceBytes: s.WSBytes,
		VerifyPeriod:         s.VerifyPeriod, AggregateTarget: s.AggregateTarget, RepackBelow: s.RepackBelow,
	})
	if err != nil {
		return nil, err
	}
	err = e.CreateWorkspace(catalog.Workspace{Name: "ws", Quota: s.Quota})
	if err != nil && !isExists(err) {
		return nil, err
	}
	e.Start()
	return &testEngine{Engine: e, setup: s, lib: lib}, nil
}

func isExists(err error) bool { return err != nil && errors.Is(err, catalog.ErrExists) }

func (te *testEngine) close() {
	if te.closed {
		return
	}
	te.closed = true
	te.Engine.Close()
	te.cat.Close()
	te.cache.Close()
	te.lib.Close()
}

func (s testSetup) env() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// srcFile is what a test wrote into put/ and expects back.
type srcFile struct {
	path   string // path inside the batch
	typ    catalog.FileType
	data   []byte
	mode   os.FileMode
	target string
	mtime  time.Time
}

func md5hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

// makeTree writes a tree of regular files, dirs and symlinks.
func makeTree(t testing.TB, root string, files []srcFile) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch f.typ {
		case catalog.TypeDir:
			if err := os.MkdirAll(p, f.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, f.mode)
		case catalog.TypeSymlink:
			if err := os.Symlink(f.target, p); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(p, f.data, f.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, f.mode)
		}
		if !f.mtime.IsZero() && f.typ != catalog.TypeSymlink {
			os.Chtimes(p, f.mtime, f.mtime)
		}
	}
}

// randomBytes returns deterministic pseudo-random bytes.
func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// offlineBatch seals a batch of n pseudo-random files of size bytes
// (e/f00000, e/f00001, ...), waits until it is on tape, evicts it and
// returns its regular files in name order: the starting point of every
// recall test.
func offlineBatch(tb testing.TB, te *testEngine, n, size int) (catalog.Batch, []catalog.File) {
	tb.Helper()
	dir := filepath.Join(te.StagingDir("ws"), "e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), randomBytes(int64(i), size), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := te.Seal(context.Background(), "ws", "e", 0, "")
	if err != nil {
		tb.Fatal(err)
	}
	waitSynced(tb, te.Engine, b.ID)
	if _, err := te.EvictBatch(b.ID); err != nil {
		tb.Fatal(err)
	}
	var files []catalog.File
	for _, f := range batchFiles(tb, te.Engine, b.ID) {
		if f.Type == catalog.TypeFile {
			files = append(files, f)
		}
	}
	slices.SortFunc(files, func(a, b catalog.File) int { return strings.Compare(a.Path, b.Path) })
	for _, f := range files {
		if _, ok := te.cache.Lookup(f.ID); ok {
			tb.Fatalf("%s still in the cache after the batch was evicted", f.Path)
		}
	}
	return b, files
}

// writeBigFile writes size pseudo-random bytes and returns their md5.
func writeBigFile(t testing.TB, p string, size int64, seed int64) string {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	r := rand.New(rand.NewSource(seed))
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		r.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
	return hex.EncodeToString(h.Sum(nil))
}

// readAll reads a catalog file through the engine, as the mount does.
func readAll(ctx context.Context, e *Engine, fileID uint64) ([]byte, error) {
	r, err := e.Open(fileID)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := make([]byte, 0, r.Size())
	buf := make([]byte, 256<<10)
	for off := int64(0); off < r.Size(); {
		n, err := r.ReadAt(ctx, buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err != nil && off < r.Size() {
			return out, err
		}
		if n == 0 {
			return out, fmt.Errorf("no progress at %d", off)
		}
	}
	return out, nil
}

// md5Through reads a file through the engine and returns its md5.
func md5Through(ctx context.Context, e *Engine, fileID uint64) (string, error) {
	r, err := e.Open(fileID)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := md5.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < r.Size(); {
		n, err := r.ReadAt(ctx, buf, off)
		h.Write(buf[:n])
		off += int64(n)
		if err != nil && off < r.Size() {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// batchFiles lists every file of a batch by path.
func batchFiles(t testing.TB, e *Engine, id uint64) map[string]catalog.File {
	t.Helper()
	out := map[string]catalog.File{}
	err := e.cat.View(func(tx *catalog.Tx) error {
		fs, err := tx.Files(id, 0, 0)
		for _, f := range fs {
			out[f.Path] = f
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitSynced waits for a batch to be on tape.
func waitSynced(t testing.TB, e *Engine, id uint64) catalog.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := e.WaitBatch(ctx, id)
	if err != nil {
		t.Fatalf("batch %d: %v (state %s, reason %q)", id, err, b.State, b.Reason)
	}
	return b
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

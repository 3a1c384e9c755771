package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/pgtest"
)

// The crash tests run a helper process (this test binary, re-executed) that
// does one piece of work, kill it with SIGKILL in the middle, and check that
// a new engine on the same home loses nothing and finishes the work.

const helperEnv = "TAPEFS_ARCHIVE_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		runHelper(mode)
		return
	}
	os.Exit(runTests(m))
}

// With TAPEFS_TEST_CATALOG=postgres (make test sets it for a second run of
// the crash tests) every home's catalog is a database of one throwaway
// PostgreSQL server, so a SIGKILL in the middle of a registration or of
// an aggregate's commit is tested on that engine too.
var catalogServer struct {
	sync.Mutex
	srv  *pgtest.Server
	urls map[string]string
}

func runTests(m *testing.M) int {
	if os.Getenv("TAPEFS_TEST_CATALOG") == "postgres" {
		srv, err := pgtest.StartShared()
		if err != nil {
			fmt.Fprintf(os.Stderr, "archive: TAPEFS_TEST_CATALOG=postgres: %v\n", err)
			return 1
		}
		defer srv.Stop()
		catalogServer.srv, catalogServer.urls = srv, map[string]string{}
	}
	return m.Run()
}

// catalogFor is the catalog of a test home: "" (catalog.db) or, in the
// PostgreSQL mode, a database of its own.
func catalogFor(home string) string {
	catalogServer.Lock()
	defer catalogServer.Unlock()
	if catalogServer.srv == nil {
		return ""
	}
	if url, ok := catalogServer.urls[home]; ok {
		return url
	}
	url, err := catalogServer.srv.NewDB(fmt.Sprintf("home%d", len(catalogServer.urls)+1))
	if err != nil {
		panic(err)
	}
	catalogServer.urls[home] = url
	return url
}

// runHelper is the body of the helper process.
func runHelper(mode string) {
	var s testSetup
	if err := json.Unmarshal([]byte(os.Getenv("TAPEFS_SETUP")), &s); err != nil {
		panic(err)
	}
	te, err := s.openErr()
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	switch mode {
	case "seal":
		if _, err := te.Seal(ctx, "ws", "entry", 0, ""); err != nil {
			panic(err)
		}
	case "migrate":
		// The workers migrate what is queued.
	case "recall-uncommitted":
		recallUncommitted(te)
	case "recall":
		id, _ := strconv.ParseUint(os.Getenv("TAPEFS_FILE"), 10, 64)
		if _, err := md5Through(ctx, te.Engine, id); err != nil {
			panic(err)
		}
	}
	os.Stdout.WriteString("done\n")
	time.Sleep(time.Hour) // wait to be killed
}

// killDuring starts the helper and kills it with SIGKILL as soon as marker()
// is true; it fails the test if the helper ends first.
func killDuring(t *testing.T, s testSetup, mode string, env []string, marker func() bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "TAPEFS_SETUP="+s.env())
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(2 * time.Minute)
	for !marker() {
		select {
		case err := <-exited:
			t.Fatalf("helper %s ended before the crash point: %v", mode, err)
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("helper %s never reached the crash point", mode)
		case <-time.After(time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

func globAny(pattern string) bool {
	m, _ := filepath.Glob(pattern)
	return len(m) > 0
}

func walkAny(root, suffix string) bool {
	found := false
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && filepath.Ext(p) == suffix {
			found = true
		}
		return nil
	})
	return found
}

// TestCrashDuringSeal: killed while hashing, the entry returns to put/ and
// is sealed again, whole.
func TestCrashDuringSeal(t *testing.T) {
	s := testSetup{Home: t.TempDir(), Settle: 100 * time.Millisecond}.withDefaults()
	{ // create the home and stage an entry
		te := s.open(t)
		te.close()
	}
	staging := filepath.Join(s.Home, "cache", "put", "ws")
	sums := map[string]string{}
	for i := 0; i < 24; i++ {
		p := filepath.Join("entry", "part"+strconv.Itoa(i))
		sums[p] = writeBigFile(t, filepath.Join(staging, p), 16<<20, int64(i))
	}
	killDuring(t, s, "seal", nil, func() bool { return globAny(filepath.Join(s.Home, "cache", "sealing", "*", "entry")) })

	te := s.open(t)
	// Either the batch was registered before the kill, or the entry is back
	// in put/ and the settle loop seals it again.
	b := sealedAgain(t, te, time.Minute)
	waitSynced(t, te.Engine, b.ID)
	if globAny(filepath.Join(s.Home, "cache", "sealing", "*")) {
		t.Error("sealing directory left behind")
	}
	files := batchFiles(t, te.Engine, b.ID)
	te.EvictBatch(b.ID)
	for p, sum := range sums {
		f, ok := files[p]
		if !ok {
			t.Fatalf("%s missing from batch", p)
		}
		got, err := md5Through(context.Background(), te.Engine, f.ID)
		if err != nil || got != sum || f.MD5 != sum {
			t.Fatalf("%s: md5 %s (catalog %s) err %v, want %s", p, got, f.MD5, err, sum)
		}
	}
}

// sealedAgain waits for the one batch a seal cut off by a crash makes in
// workspace ws: registered before the kill, or sealed again from put/.
func sealedAgain(t *testing.T, te *testEngine, timeout time.Duration) catalog.Batch {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var bs []catalog.Batch
		if err := te.cat.View(func(tx *catalog.Tx) error {
			var err error
			bs, err = tx.Batches(catalog.ListOptions{Workspace: "ws"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(bs) > 1 {
			t.Fatalf("%d batches after one seal", len(bs))
		}
		if len(bs) == 1 {
			return bs[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("the entry was never sealed after the crash")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCrashDuringMigration: killed while an aggregate is being written, the
// half-written tape file is not part of the cartridge, the batch is written
// again and its bytes come back from tape.
func TestCrashDuringMigration(t *testing.T) {
	s := testSetup{Home: t.TempDir(), StreamRate: 1 << 20, TimeScale: 0.01, FlushAge: time.Hour, Settle: time.Hour}.withDefaults()
	te := s.open(t)
	staging := te.StagingDir("ws")
	sum := writeBigFile(t, filepath.Join(staging, "entry", "data"), 200<<20, 1)
	b, err := te.Seal(context.Background(), "ws", "entry", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	te.close()

	s2 := s
	s2.FlushAge = 10 * time.Millisecond
	killDuring(t, s2, "migrate", nil, func() bool { return walkAny(filepath.Join(s.Home, "library"), ".partial") })

	s3 := s2
	s3.TimeScale = 0
	te = s3.open(t)
	if globAny(filepath.Join(s.Home, "library", "*", "*.partial")) {
		t.Error("partial tape file survived the restart")
	}
	waitSynced(t, te.Engine, b.ID)
	f := batchFiles(t, te.Engine, b.ID)["entry/data"]
	if len(f.Copies) != 1 {
		t.Fatalf("copies after crash and rewrite: %+v", f.Copies)
	}
	te.EvictBatch(b.ID)
	if got, err := md5Through(context.Background(), te.Engine, f.ID); err != nil || got != sum {
		t.Fatalf("md5 from tape %s %v, want %s", got, err, sum)
	}
}

// offlineBigFile seals one file of size pseudo-random bytes (entry/data)
// in a new home, waits until it is on tape, evicts it and closes the
// engine: the start of a test that kills a process recalling it. It
// returns the home's setup, the file and its md5.
func offlineBigFile(t *testing.T, size int64, seed int64) (testSetup, catalog.File, string) {
	t.Helper()
	s := testSetup{Home: t.TempDir(), Settle: time.Hour}.withDefaults()
	te := s.open(t)
	sum := writeBigFile(t, filepath.Join(te.StagingDir("ws"), "entry", "data"), size, seed)
	b, err := te.Seal(context.Background(), "ws", "entry", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	waitSynced(t, te.Engine, b.ID)
	if _, err := te.EvictBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	f := batchFiles(t, te.Engine, b.ID)["entry/data"]
	te.close()
	return s, f, sum
}

// TestCrashDuringRecall: killed while a file is staged, the file reads
// correctly after restart.
func TestCrashDuringRecall(t *testing.T) {
	s, f, sum := offlineBigFile(t, 200<<20, 3)

	s2 := s
	s2.StreamRate, s2.TimeScale = 1<<20, 0.01
	killDuring(t, s2, "recall", []string{"TAPEFS_FILE=" + strconv.FormatUint(f.ID, 10)},
		func() bool { return walkAny(filepath.Join(s.Home, "cache", "objects"), ".partial") })

	te := s.open(t)
	if got, err := md5Through(context.Background(), te.Engine, f.ID); err != nil || got != sum {
		t.Fatalf("md5 after crash %s %v, want %s", got, err, sum)
	}
}

package archive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/pgtest"
)

// Kill -9 inside the large transactions of a PostgreSQL catalog: the
// registration of a batch of many files and the commit of an aggregate of
// many members. Both send their writes through a temporary table
// (catalog/engine_postgres.go, flush); the helper is killed while that
// table exists, that is between the first write and the commit. After a
// restart the catalog holds the whole transaction or none of it.

// pgCatalog is a database for one test: on the run's server in the
// PostgreSQL mode, else on a server of the test's own.
func pgCatalog(t *testing.T) string {
	t.Helper()
	catalogServer.Lock()
	srv := catalogServer.srv
	catalogServer.Unlock()
	if srv == nil {
		srv = pgtest.Start(t)
	}
	url, err := srv.NewDB(fmt.Sprintf("crash%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// inLargeWrite reports, polled, whether a transaction of the catalog's
// database is sending a large write (its temporary table is in use).
func inLargeWrite(t *testing.T, url string) func() bool {
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return func() bool {
		var n int
		err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
			AND state IN ('active', 'idle in transaction') AND query ILIKE '%tapefs_kv_writes%'`).Scan(&n)
		return err == nil && n > 0
	}
}

// TestCrashInsideRegistrationPostgres: killed in the middle of the
// registration of 10,000 files, the batch is in the catalog whole or not
// at all; either way it is sealed and reaches tape with every file.
func TestCrashInsideRegistrationPostgres(t *testing.T) {
	s := testSetup{Home: t.TempDir(), Catalog: pgCatalog(t), Settle: time.Hour}.withDefaults()
	{
		te := s.open(t)
		te.close()
	}
	const n = 10_000
	dir := filepath.Join(s.Home, "cache", "put", "ws", "entry")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	killDuring(t, s, "seal", nil, inLargeWrite(t, s.Catalog))

	s.Settle = 100 * time.Millisecond // an entry back in put/ is sealed again
	te := s.open(t)
	b := sealedAgain(t, te, 2*time.Minute)
	files := batchFiles(t, te.Engine, b.ID)
	if len(files) != n+1 || b.Files != n+1 {
		t.Fatalf("batch %d holds %d file records, says %d; want the entry and its %d files: a registration half-written", b.ID, len(files), b.Files, n)
	}
	b = waitSynced(t, te.Engine, b.ID)
	files = batchFiles(t, te.Engine, b.ID)
	for p, f := range files {
		if f.Type == catalog.TypeFile && (len(f.Copies) != 1 || f.MD5 == "") {
			t.Fatalf("%s: copies %v md5 %q after the batch reached tape", p, f.Copies, f.MD5)
		}
	}
}

// TestCrashInsideCommitAggregatePostgres: killed in the middle of the
// commit of an aggregate of 10,000 members, every member has its copy
// recorded or none has; the batch is written again and reaches tape with
// one copy of each file.
func TestCrashInsideCommitAggregatePostgres(t *testing.T) {
	s := testSetup{Home: t.TempDir(), Catalog: pgCatalog(t), FlushAge: time.Hour, Settle: time.Hour}.withDefaults()
	te := s.open(t)
	const n = 10_000
	dir := filepath.Join(te.StagingDir("ws"), "entry")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := te.Seal(context.Background(), "ws", "entry", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, te.Engine, b.ID, catalog.Cached)
	te.close()

	s2 := s
	s2.FlushAge = 10 * time.Millisecond
	killDuring(t, s2, "migrate", nil, inLargeWrite(t, s.Catalog))

	te = s2.open(t)
	files := batchFiles(t, te.Engine, b.ID)
	with := 0
	for _, f := range files {
		if f.Type == catalog.TypeFile && len(f.Copies) > 0 {
			with++
		}
	}
	if with != 0 && with != n {
		t.Fatalf("after the crash %d of %d members have a copy recorded: an aggregate's commit half-written", with, n)
	}
	t.Logf("the commit was %s when killed (%d of %d members recorded)", map[bool]string{true: "through", false: "not through"}[with == n], with, n)
	waitSynced(t, te.Engine, b.ID)
	for p, f := range batchFiles(t, te.Engine, b.ID) {
		if f.Type == catalog.TypeFile && len(f.Copies) != 1 {
			t.Fatalf("%s: %d copies after the rewrite, want 1", p, len(f.Copies))
		}
	}
}

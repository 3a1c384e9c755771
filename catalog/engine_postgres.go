package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The PostgreSQL engine keeps the whole key space in one table, as the
// bbolt engine keeps it in one bucket: the key schema (keys.go) does the
// partitioning, so the catalog logic is the same on both.
//
//	tapefs_kv(k bytea PRIMARY KEY, v bytea NOT NULL)
//
// bytea compares byte by byte (memcmp, then length), which is exactly the
// order bbolt and the memory engine give, so range scans agree.
//
// A transaction buffers its writes in memory and sends them at commit in
// one go (a pipelined batch, or COPY into a temporary table for large
// transactions): RegisterBatch of 100,000 files writes ~300,000 keys and
// must not pay a round trip per key. Reads inside the transaction merge the
// buffer over what the database returns, so a transaction sees its own
// writes as on bbolt.
//
// Updates run at SERIALIZABLE isolation and are retried when PostgreSQL
// reports a serialization failure or deadlock; the closure therefore runs
// again from the start, with a fresh buffer, and must touch nothing outside
// the transaction (results leave it only after Update returns nil).

const (
	pgTable = "tapefs_kv"
	// pgScanPage is how many rows a scan fetches per query: scans stop
	// early (a page of a directory, the first match), so rows are fetched
	// in pages rather than all at once.
	pgScanPage = 512
	// pgCopyThreshold is the number of buffered writes above which the
	// commit streams them with COPY instead of a pipelined batch.
	pgCopyThreshold = 256
	// pgMaxAttempts bounds the retries of one Update on serialization
	// failures.
	pgMaxAttempts = 50
	// pgEscalateAfter is the number of serialization failures after which
	// an Update stops being optimistic: it takes the writers' advisory
	// lock exclusively, waits for the optimistic writers in flight, and
	// runs alone, so a transaction that keeps losing (a big registration
	// against a stream of small updates) cannot starve.
	pgEscalateAfter = 3
	// pgWriterLock is the advisory lock key of that protocol ("tapefs" in
	// ASCII); optimistic writers hold it shared.
	pgWriterLock = 0x746170656673
)

// PostgresOptions tune the PostgreSQL engine; zero fields take defaults.
type PostgresOptions struct {
	// TxTimeout bounds one transaction attempt (and a View): a database
	// that is away makes catalog operations fail with an error after this
	// long instead of hanging the mount. Default 30 s.
	TxTimeout time.Duration
	// Retry is how long a transaction keeps retrying while the database
	// cannot be reached before it gives up. Default 10 s.
	Retry time.Duration
}

// ErrCatalogUnavailable is returned when the catalog database cannot be
// reached within the retry period.
var ErrCatalogUnavailable = errors.New("catalog database unavailable")

type pgEngine struct {
	pool *pgxpool.Pool
	// seqPool serves the ID allocations that a transaction makes on a
	// connection of their own (allocateSeparately): taken from pool, they
	// would wait for a connection while holding one, and a pool full of
	// such transactions would wait for itself until TxTimeout.
	seqPool *pgxpool.Pool
	opt     PostgresOptions
}

// pgSeqConns is the size of seqPool: an allocation is one short statement.
const pgSeqConns = 4

// OpenPostgresEngine connects to the PostgreSQL database named by url
// (postgres://… or a key=value connection string) and creates the key-value
// table if it is missing.
func OpenPostgresEngine(url string, opt PostgresOptions) (Engine, error) {
	if opt.TxTimeout <= 0 {
		opt.TxTimeout = 30 * time.Second
	}
	if opt.Retry <= 0 {
		opt.Retry = 10 * time.Second
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("catalog URL: %w", err)
	}
	// Room for every FUSE request, worker and nested read in flight at
	// once: a pool that runs dry makes requests wait out TxTimeout.
	cfg.MaxConns = max(cfg.MaxConns, 32)
	ctx, cancel := context.WithTimeout(context.Background(), opt.TxTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open catalog database: %w", err)
	}
	_, err = pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+pgTable+` (k bytea PRIMARY KEY, v bytea NOT NULL)`)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open catalog database %s: %w", redactURL(url), err)
	}
	seqCfg := cfg.Copy()
	seqCfg.MaxConns, seqCfg.MinConns = pgSeqConns, 0
	seqPool, err := pgxpool.NewWithConfig(ctx, seqCfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open catalog database: %w", err)
	}
	return &pgEngine{pool: pool, seqPool: seqPool, opt: opt}, nil
}

// DescribeURL is a database URL without its password, for logs and
// messages: still a URL that works (a Unix socket's ?host= kept), so a
// message can say "start the daemon with --catalog <it>".
func DescribeURL(s string) string {
	if u, err := url.Parse(s); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if u.User != nil {
			u.User = url.User(u.User.Username())
		}
		q := u.Query()
		if q.Has("password") {
			q.Del("password")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return "postgres://" + redactURL(s)
}

// redactURL drops a password from a connection string before it is shown.
func redactURL(s string) string {
	if cfg, err := pgconn.ParseConfig(s); err == nil {
		return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	}
	return "(unparsable URL)"
}

func (e *pgEngine) Close() error {
	e.pool.Close()
	e.seqPool.Close()
	return nil
}

func (e *pgEngine) View(fn func(KVTxn) error) error {
	return e.run(pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, false, false, fn)
}

func (e *pgEngine) Update(fn func(KVTxn) error) error {
	return e.run(pgx.TxOptions{IsoLevel: pgx.Serializable}, true, true, fn)
}

// run runs fn in a transaction, again from the start on a serialization
// failure, and on a lost connection as long as the commit was not yet
// sent (a commit whose answer was lost may have happened: it is reported,
// never repeated).
func (e *pgEngine) run(opts pgx.TxOptions, writable, locked bool, fn func(KVTxn) error) error {
	deadline := time.Now().Add(e.opt.Retry)
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		lock := lockNone
		if locked {
			lock = lockShared
			if attempt > pgEscalateAfter {
				lock = lockAlone
			}
		}
		committing, started, err := e.attempt(opts, writable, lock, fn)
		if err == nil {
			return nil
		}
		var fnErr closureError
		if errors.As(err, &fnErr) {
			return fnErr.err
		}
		// An Update's closure is written to run again (its effects are
		// its writes, dropped with the attempt). A View's closure
		// collects what it reads into the caller's variables: run again
		// after it read something, it would collect twice. So a View is
		// retried only while nothing of it reached the database.
		again := writable || !started
		switch {
		case again && isSerializationFailure(err) && attempt < pgMaxAttempts:
		case again && !committing && isConnectionError(err) && time.Now().Before(deadline):
		case isConnectionError(err):
			return fmt.Errorf("%w: %v", ErrCatalogUnavailable, err)
		default:
			return fmt.Errorf("catalog database: %w", err)
		}
		time.Sleep(backoff/2 + rand.N(backoff/2+1))
		backoff = min(2*backoff, time.Second)
	}
}

// closureError marks an error returned by the caller's closure: it is
// handed back as is, never retried.
type closureError struct{ err error }

func (c closureError) Error() string { return c.err.Error() }

// How an attempt takes the writers' advisory lock.
type writerLock int

const (
	lockNone   writerLock = iota // the short sequence transactions: they hold no lock while they wait, so they cannot join a wait cycle
	lockShared                   // an optimistic Update
	lockAlone                    // an Update that lost too often
)

// attempt runs fn once in a transaction. started says whether a
// statement of it reached the database (fn has read something).
func (e *pgEngine) attempt(opts pgx.TxOptions, writable bool, wl writerLock, fn func(KVTxn) error) (committing, started bool, err error) {
	var t *pgTxn
	defer func() { started = t != nil && t.begun }()
	ctx, cancel := context.WithTimeout(context.Background(), e.opt.TxTimeout)
	defer cancel()
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return false, false, err
	}
	// A connection left inside a transaction (an error, a timeout) is
	// closed by the pool on Release rather than reused.
	defer conn.Release()
	t = &pgTxn{e: e, ctx: ctx, conn: conn, writable: writable, writes: map[string][]byte{}, begin: beginSQL(opts)}
	switch wl {
	case lockShared:
		// With the first query: an optimistic writer's snapshot may
		// predate a lone writer's commit; it then loses, and retries.
		t.lock = "SELECT pg_advisory_xact_lock_shared($1)"
	case lockAlone:
		// Before BEGIN, at session level: a transaction's snapshot is
		// taken by its first statement, so a lock taken inside it would
		// be waited for with a snapshot older than the commits of the
		// writers it waits for, and the lone attempt would lose to them
		// again. Taken first, the snapshot follows their commits.
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(pgWriterLock)); err != nil {
			return false, false, err
		}
		defer func() {
			// After COMMIT or ROLLBACK (deferred below, so run before
			// this). A connection that cannot say it unlocked must not
			// go back to the pool holding the lock.
			if _, err := conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", int64(pgWriterLock)); err != nil {
				conn.Conn().Close(context.Background()) //nolint:errcheck // closing is the remedy; the pool drops a closed connection
			}
		}()
	}
	defer func() {
		if t.begun && !t.done {
			conn.Exec(context.Background(), "ROLLBACK") //nolint:errcheck // the pool closes a connection that is still in a transaction
		}
	}()
	if err := fn(t); err != nil {
		// A closure error caused by the database (a serialization failure
		// met by a read) is retried like any other.
		if t.dbErr != nil && errors.Is(err, t.dbErr) {
			return false, false, t.dbErr
		}
		return false, false, closureError{err}
	}
	if t.dbErr != nil {
		return false, false, t.dbErr
	}
	if writable {
		if err := t.flush(); err != nil {
			return false, false, err
		}
	}
	if !t.begun {
		return false, false, nil // nothing was read or written
	}
	_, err = conn.Exec(ctx, "COMMIT")
	t.done = err == nil
	return true, false, err
}

// beginSQL is the BEGIN statement of a transaction with opts.
func beginSQL(opts pgx.TxOptions) string {
	s := "BEGIN ISOLATION LEVEL " + strings.ToUpper(string(opts.IsoLevel))
	if opts.AccessMode == pgx.ReadOnly {
		s += " READ ONLY"
	}
	return s
}

func isSerializationFailure(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func isConnectionError(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-3: the server is shutting
		// down or cannot accept connections yet.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return pgconn.SafeToRetry(err) || errors.As(err, new(*pgconn.ConnectError)) || isNetError(err)
}

func isNetError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "no such file or directory") ||
		strings.Contains(s, "broken pipe") || strings.Contains(s, "connection reset") ||
		strings.Contains(s, "unexpected EOF") || strings.Contains(s, "conn closed")
}

// pgTxn is one attempt of a transaction. writes holds the buffered writes
// (a nil value is a delete); sorted is their keys in order, rebuilt lazily
// for scans.
type pgTxn struct {
	e        *pgEngine
	ctx      context.Context
	conn     *pgxpool.Conn
	begin    string // the BEGIN statement, sent with the first query
	lock     string // the writers' advisory lock statement, or ""
	begun    bool
	done     bool // committed
	writable bool
	writes   map[string][]byte
	// present holds the keys a read (Get, Scan) of this writable
	// transaction found in the database: the commit updates those and
	// inserts the rest with a plain INSERT, which costs half of INSERT …
	// ON CONFLICT.
	present  map[string]struct{}
	sorted   []string
	dirty    bool // sorted is stale (else it holds every key of writes, in order)
	scanning int
	dbErr    error // the first database error: the attempt is failed
}

func (t *pgTxn) fail(err error) error {
	if t.dbErr == nil {
		t.dbErr = err
	}
	return t.dbErr
}

func (t *pgTxn) Get(key []byte) ([]byte, error) {
	if v, ok := t.writes[string(key)]; ok {
		return v, nil
	}
	rows, err := t.query(`SELECT k, v FROM `+pgTable+` WHERE k = $1`, key)
	if err != nil {
		return nil, t.fail(err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	t.notePresent(rows[0].k)
	return rows[0].v, nil
}

func (t *pgTxn) notePresent(k []byte) {
	if !t.writable {
		return
	}
	if t.present == nil {
		t.present = map[string]struct{}{}
	}
	t.present[string(k)] = struct{}{}
}

// getMany reads keys in one statement, the buffered writes over it.
func (t *pgTxn) getMany(keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	index := make(map[string][]int, len(keys))
	var ask [][]byte
	for i, k := range keys {
		if v, ok := t.writes[string(k)]; ok {
			out[i] = v
			continue
		}
		if _, dup := index[string(k)]; !dup {
			ask = append(ask, k)
		}
		index[string(k)] = append(index[string(k)], i)
	}
	if len(ask) == 0 {
		return out, nil
	}
	rows, err := t.query(`SELECT k, v FROM `+pgTable+` WHERE k = ANY($1)`, ask)
	if err != nil {
		return nil, t.fail(err)
	}
	for _, r := range rows {
		t.notePresent(r.k)
		for _, i := range index[string(r.k)] {
			out[i] = r.v
		}
	}
	return out, nil
}

// query runs one statement returning (k, v) rows. The first statement of
// the transaction goes in one round trip with its BEGIN (and the writers'
// lock): a View that reads one key — most FUSE lookups — costs two round
// trips (this and COMMIT), not four.
func (t *pgTxn) query(sql string, args ...any) ([]pgRow, error) {
	if t.begun {
		rows, err := t.conn.Query(t.ctx, sql, args...)
		if err != nil {
			return nil, err
		}
		return collectRows(rows)
	}
	b := &pgx.Batch{}
	b.Queue(t.begin)
	if t.lock != "" {
		b.Queue(t.lock, int64(pgWriterLock))
	}
	b.Queue(sql, args...)
	br := t.conn.SendBatch(t.ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	t.begun = true
	if t.lock != "" {
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	out, err := collectRows(rows)
	if err != nil {
		return nil, err
	}
	return out, br.Close()
}

// ensureBegun starts the transaction of a closure that wrote without
// reading.
func (t *pgTxn) ensureBegun() error {
	if t.begun {
		return nil
	}
	_, err := t.query("SELECT NULL::bytea, NULL::bytea WHERE false")
	return err
}

func collectRows(rows pgx.Rows) ([]pgRow, error) {
	defer rows.Close()
	var out []pgRow
	for rows.Next() {
		var r pgRow
		if err := rows.Scan(&r.k, &r.v); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// allocateSeparately takes n IDs of the sequence at key in a short
// transaction of its own (retried on conflict like any Update), so that
// concurrent registrations on several hosts conflict only there, for a
// moment, instead of over their whole transactions. A sequence this
// transaction itself wrote (raiseSequence) is allocated here instead.
func (t *pgTxn) allocateSeparately(key []byte, n uint64) (uint64, error) {
	if !t.writable {
		return 0, errReadOnly
	}
	if _, mine := t.writes[string(key)]; mine {
		v, _ := t.Get(key)
		last, err := decodeSequence(key, v)
		if err != nil {
			return 0, err
		}
		return last + 1, t.Put(key, encodeID(last+n))
	}
	// One atomic statement at READ COMMITTED: a concurrent allocation
	// waits for the row and then adds to the value it committed, so this
	// never fails for serialization, and it joins no serializable
	// transaction's conflict graph. The value is encodeID's big-endian
	// uint64, which int8send writes and the bit(64) cast reads.
	ctx, cancel := context.WithTimeout(context.Background(), t.e.opt.TxTimeout)
	defer cancel()
	var last int64
	err := t.e.seqPool.QueryRow(ctx, `INSERT INTO `+pgTable+` AS kv (k, v) VALUES ($1, int8send($2::bigint))
		ON CONFLICT (k) DO UPDATE SET v = int8send(('x' || encode(kv.v, 'hex'))::bit(64)::bigint + $2::bigint)
		RETURNING ('x' || encode(v, 'hex'))::bit(64)::bigint`, key, int64(n)).Scan(&last)
	if err != nil {
		return 0, t.fail(err)
	}
	return uint64(last) - n + 1, nil
}

// raiseSeparately makes the sequence at key skip past id, atomically as
// allocateSeparately.
func (t *pgTxn) raiseSeparately(key []byte, id uint64) error {
	if !t.writable {
		return errReadOnly
	}
	if _, mine := t.writes[string(key)]; mine {
		v, _ := t.Get(key)
		last, err := decodeSequence(key, v)
		if err != nil || id <= last {
			return err
		}
		return t.Put(key, encodeID(id))
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.e.opt.TxTimeout)
	defer cancel()
	_, err := t.e.seqPool.Exec(ctx, `INSERT INTO `+pgTable+` AS kv (k, v) VALUES ($1, int8send($2::bigint))
		ON CONFLICT (k) DO UPDATE SET v = int8send(greatest(('x' || encode(kv.v, 'hex'))::bit(64)::bigint, $2::bigint))`, key, int64(id))
	if err != nil {
		return t.fail(err)
	}
	return nil
}

// clock is the database server's time, in microseconds: the one clock
// every host sharing the catalog agrees on (leases expire by it).
func (t *pgTxn) clock() (time.Time, error) {
	rows, err := t.query(`SELECT NULL::bytea, int8send((extract(epoch from clock_timestamp()) * 1000000)::bigint)`)
	if err != nil {
		return time.Time{}, t.fail(err)
	}
	if len(rows) != 1 {
		return time.Time{}, errors.New("database clock: no answer")
	}
	return decodeMicros(rows[0].v)
}

func decodeSequence(key, v []byte) (uint64, error) {
	if v == nil {
		return 0, nil
	}
	return decodeID(key, v)
}

func (t *pgTxn) checkWrite() error {
	if !t.writable {
		return errReadOnly
	}
	if t.scanning > 0 {
		return errWriteInScan
	}
	return nil
}

func (t *pgTxn) Put(key, value []byte) error {
	if err := t.checkWrite(); err != nil {
		return err
	}
	k := string(key)
	if _, ok := t.writes[k]; !ok {
		t.added(k)
	}
	t.writes[k] = append([]byte{}, value...)
	return nil
}

func (t *pgTxn) Delete(key []byte) error {
	if err := t.checkWrite(); err != nil {
		return err
	}
	k := string(key)
	if _, ok := t.writes[k]; !ok {
		t.added(k)
	}
	t.writes[k] = nil
	return nil
}

// added keeps sorted up to date for a new key: keys written in ascending
// order (RegisterBatch sorts its 300,000) are appended, and only a key out
// of order leaves the sort to sortedWrites.
func (t *pgTxn) added(k string) {
	if t.dirty {
		return
	}
	if n := len(t.sorted); n == 0 || k > t.sorted[n-1] {
		t.sorted = append(t.sorted, k)
		return
	}
	t.dirty = true
}

func (t *pgTxn) sortedWrites() []string {
	if t.dirty {
		t.sorted = t.sorted[:0]
		for k := range t.writes {
			t.sorted = append(t.sorted, k)
		}
		slices.Sort(t.sorted)
		t.dirty = false
	}
	return t.sorted
}

// Scan merges the database's rows in the range with the buffered writes:
// a buffered value replaces the row, a buffered delete hides it.
func (t *pgTxn) Scan(prefix, from []byte, reverse bool, fn func(key, value []byte) (bool, error)) error {
	t.scanning++
	defer func() { t.scanning-- }()
	lo, hi := scanBounds(prefix, from, reverse) // lo inclusive, hi exclusive (nil: open)
	// The buffered writes in [lo, hi), in scan order.
	var mine []string
	if len(t.writes) > 0 {
		all := t.sortedWrites()
		i, _ := slices.BinarySearch(all, string(lo))
		j := len(all)
		if hi != nil {
			j, _ = slices.BinarySearch(all, string(hi))
		}
		mine = all[i:max(i, j)]
	}
	mi := 0
	nextMine := func() (string, bool) {
		if mi >= len(mine) {
			return "", false
		}
		if reverse {
			return mine[len(mine)-1-mi], true
		}
		return mine[mi], true
	}
	// before reports whether key a comes before b in scan order.
	before := func(a, b string) bool {
		if reverse {
			return a > b
		}
		return a < b
	}
	emitMine := func(k string) (bool, error) {
		mi++
		if v := t.writes[k]; v != nil {
			return fn([]byte(k), v)
		}
		return true, nil
	}

	cursor := []byte(nil) // last database key returned
	for {
		rows, err := t.page(lo, hi, cursor, reverse)
		if err != nil {
			return t.fail(err)
		}
		for _, r := range rows {
			// Buffered keys that come first.
			for {
				mk, ok := nextMine()
				if !ok || !before(mk, string(r.k)) {
					break
				}
				if more, err := emitMine(mk); err != nil || !more {
					return err
				}
			}
			if mk, ok := nextMine(); ok && mk == string(r.k) {
				if more, err := emitMine(mk); err != nil || !more {
					return err
				}
				continue
			}
			t.notePresent(r.k)
			if more, err := fn(r.k, r.v); err != nil || !more {
				return err
			}
		}
		if len(rows) < pgScanPage {
			break
		}
		cursor = rows[len(rows)-1].k
	}
	for {
		mk, ok := nextMine()
		if !ok {
			return nil
		}
		if more, err := emitMine(mk); err != nil || !more {
			return err
		}
	}
}

type pgRow struct{ k, v []byte }

// page fetches the next page of rows of [lo, hi) after cursor in scan
// order.
func (t *pgTxn) page(lo, hi, cursor []byte, reverse bool) ([]pgRow, error) {
	var conds []string
	var args []any
	arg := func(v []byte) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	conds = append(conds, "k >= "+arg(lo))
	if hi != nil {
		conds = append(conds, "k < "+arg(hi))
	}
	order := "ASC"
	if cursor != nil {
		if reverse {
			conds = append(conds, "k < "+arg(cursor))
		} else {
			conds = append(conds, "k > "+arg(cursor))
		}
	}
	if reverse {
		order = "DESC"
	}
	q := fmt.Sprintf("SELECT k, v FROM %s WHERE %s ORDER BY k %s LIMIT %d", pgTable, strings.Join(conds, " AND "), order, pgScanPage)
	return t.query(q, args...)
}

// scanBounds turns the Scan contract into a half-open key range [lo, hi):
// forward scans start at max(prefix, from); reverse scans end at from
// (inclusive) or at the end of the prefix.
func scanBounds(prefix, from []byte, reverse bool) (lo, hi []byte) {
	lo = append([]byte{}, prefix...)
	hi = prefixEnd(prefix)
	if from == nil {
		return lo, hi
	}
	if !reverse {
		if bytes.Compare(from, lo) > 0 {
			lo = from
		}
		return lo, hi
	}
	// Keys ≤ from: the exclusive bound is from's successor, from+"\x00".
	succ := append(append([]byte{}, from...), 0)
	if hi == nil || bytes.Compare(succ, hi) < 0 {
		hi = succ
	}
	return lo, hi
}

// flush sends the buffered writes.
func (t *pgTxn) flush() error {
	if len(t.writes) == 0 {
		return nil
	}
	if err := t.ensureBegun(); err != nil {
		return err
	}
	// Other hosts' watchers learn of the events at commit (and not at all
	// if it fails): see engine_postgres_watch.go.
	notice, payload := eventNotice(t.writes)
	if len(t.writes) <= pgCopyThreshold {
		b := &pgx.Batch{}
		for k, v := range t.writes {
			if v == nil {
				b.Queue(`DELETE FROM `+pgTable+` WHERE k = $1`, []byte(k))
			} else {
				b.Queue(`INSERT INTO `+pgTable+` (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`, []byte(k), v)
			}
		}
		if notice != "" {
			b.Queue(notice, payload)
		}
		return t.conn.SendBatch(t.ctx, b).Close()
	}
	// COPY into a temporary table, then one statement each for the
	// deletes, the keys known to exist and the others. The temporary table
	// lives until the commit.
	if _, err := t.conn.Exec(t.ctx, `CREATE TEMPORARY TABLE tapefs_kv_writes (k bytea NOT NULL, v bytea, present bool NOT NULL) ON COMMIT DROP`); err != nil {
		return err
	}
	// In key order: the inserts then walk the primary key's b-tree
	// forward instead of touching a random leaf per row.
	rows := make([][]any, 0, len(t.writes))
	var deletes, updates int
	for _, k := range t.sortedWrites() {
		v := t.writes[k]
		_, present := t.present[k]
		switch {
		case v == nil:
			deletes++
		case present:
			updates++
		}
		rows = append(rows, []any{[]byte(k), v, present})
	}
	if _, err := t.conn.CopyFrom(t.ctx, pgx.Identifier{"tapefs_kv_writes"}, []string{"k", "v", "present"}, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	// Each statement only when it has rows: the planner knows nothing of
	// the temporary table and may join it to the whole catalog.
	if deletes > 0 {
		if _, err := t.conn.Exec(t.ctx, `DELETE FROM `+pgTable+` USING tapefs_kv_writes w WHERE `+pgTable+`.k = w.k AND w.v IS NULL`); err != nil {
			return err
		}
	}
	upsert := `INSERT INTO ` + pgTable + ` (k, v) SELECT k, v FROM tapefs_kv_writes WHERE v IS NOT NULL AND %s ORDER BY k`
	if updates > 0 {
		if _, err := t.conn.Exec(t.ctx, fmt.Sprintf(upsert, "present")+` ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`); err != nil {
			return err
		}
	}
	if len(t.writes)-deletes-updates > 0 {
		// The other keys are new as a rule (fresh IDs: a registration's
		// files); a plain INSERT of them is tried first, and on a key that
		// exists after all (a blind Put over one) the upsert does it.
		if _, err := t.conn.Exec(t.ctx, `SAVEPOINT tapefs_insert`); err != nil {
			return err
		}
		_, err := t.conn.Exec(t.ctx, fmt.Sprintf(upsert, "NOT present"))
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
			if _, err := t.conn.Exec(t.ctx, `ROLLBACK TO SAVEPOINT tapefs_insert`); err != nil {
				return err
			}
			_, err = t.conn.Exec(t.ctx, fmt.Sprintf(upsert, "NOT present")+` ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`)
		}
		if err != nil {
			return err
		}
	}
	if notice != "" {
		if _, err := t.conn.Exec(t.ctx, notice, payload); err != nil {
			return err
		}
	}
	return nil
}

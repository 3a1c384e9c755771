package catalog

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notifications of the PostgreSQL engine. A transaction that appends
// events sends NOTIFY on the channel pgEventChannel with the highest event
// sequence number it wrote, inside the transaction: PostgreSQL delivers it
// to every listening session when (and only if) the transaction commits,
// in commit order. The listener holds a connection of its own, outside the
// pool, blocked in WaitForNotification.

const (
	pgEventChannel = "tapefs_events"
	pgWatchApp     = "tapefs watch"
	// pgWatchPing is how long the listener waits for a notification
	// before it pings the server: a connection cut without a reset (a
	// host partitioned away) is noticed within this and TxTimeout.
	pgWatchPing = 10 * time.Second
	// pgWatchBackoff bounds the pause between two reconnection attempts.
	pgWatchBackoff = 5 * time.Second
)

// eventNotice is the statement that announces the events among writes, or
// "" when there are none. Only the event records count (not the
// per-workspace index): one NOTIFY per transaction, with the highest seq.
func eventNotice(writes map[string][]byte) (sql string, payload string) {
	var top uint64
	for k, v := range writes {
		if len(k) == 1+idLen && k[0] == tableEvent && v != nil {
			top = max(top, binary.BigEndian.Uint64([]byte(k[1:])))
		}
	}
	if top == 0 {
		return "", ""
	}
	return "SELECT pg_notify('" + pgEventChannel + "', $1)", strconv.FormatUint(top, 10)
}

// Watch implements Watcher.
func (e *pgEngine) Watch(ctx context.Context, up func(error), wake func(uint64)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := e.listen(ctx, up, wake)
		if ctx.Err() != nil {
			return
		}
		up(err)
		if time.Since(start) > pgWatchBackoff {
			backoff = 100 * time.Millisecond // it was up a while: a fresh loss
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, pgWatchBackoff)
	}
}

// listen connects, listens and hands on notifications until the connection
// fails or ctx is done.
func (e *pgEngine) listen(ctx context.Context, up func(error), wake func(uint64)) error {
	cctx, cancel := context.WithTimeout(ctx, e.opt.TxTimeout)
	cfg := e.pool.Config().ConnConfig.Copy()
	// Named, so that an administrator (and a test) sees it in
	// pg_stat_activity.
	cfg.RuntimeParams["application_name"] = pgWatchApp
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err == nil {
		_, err = conn.Exec(cctx, "LISTEN "+pgEventChannel)
	}
	cancel()
	if conn != nil {
		defer conn.Close(context.Background())
	}
	if err != nil {
		return err
	}
	up(nil)
	for {
		wctx, cancel := context.WithTimeout(ctx, pgWatchPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			seq, _ := strconv.ParseUint(n.Payload, 10, 64)
			wake(seq)
			continue
		case !errors.Is(err, context.DeadlineExceeded) || conn.IsClosed():
			return err
		}
		// Quiet for pgWatchPing: make sure the server is still there.
		pctx, cancel := context.WithTimeout(ctx, e.opt.TxTimeout)
		err = conn.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
}

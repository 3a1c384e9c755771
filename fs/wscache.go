package fs

import (
	"sync"
	"syscall"
	"time"

	"github.com/tapefs/tapefs/archive"
)

// put/ is a directory on the cache disk: writing into it needs nothing of
// the catalog but the workspace's record, for the attributes of the
// workspace directory and of put/ itself (owner, group, mode), which the
// path to every file in put/ goes through. So that a cp into put/ goes on
// while the catalog's database is away (restarting, cut off), the mount
// keeps the last record it read of each workspace: it answers from it for
// a few seconds without asking, and when the catalog cannot be read it
// answers from it however old it is, instead of failing. What is sealed
// meanwhile waits for the catalog (the seal is a catalog write); batches
// need the catalog as before.

// wsFresh is how long a workspace record is used without reading it again.
const wsFresh = 2 * time.Second

// wsDown is how long, after a catalog read failed, the mount answers from
// its records without trying again (each try may wait for the database).
const wsDown = 30 * time.Second

type wsCache struct {
	mu        sync.Mutex
	records   map[string]wsRecord
	downUntil time.Time // the catalog failed: records are used as they are until then
}

type wsRecord struct {
	w  archive.Workspace
	at time.Time
}

// workspace is the record of workspace ws: fresh, read, or (the catalog
// away) the last one read.
func (f *FS) workspace(what, ws string) (archive.Workspace, syscall.Errno) {
	c := &f.wsRecs
	now := time.Now()
	c.mu.Lock()
	rec, ok := c.records[ws]
	down := now.Before(c.downUntil)
	c.mu.Unlock()
	if ok && (now.Sub(rec.at) < wsFresh || down) {
		return rec.w, 0
	}
	var w archive.Workspace
	errno := f.view(what, func(tx archive.Snapshot) error {
		var err error
		w, err = tx.Workspace(ws)
		return err
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case errno == 0:
		if c.records == nil {
			c.records = map[string]wsRecord{}
		}
		c.records[ws] = wsRecord{w, now}
		return w, 0
	case errno == syscall.EIO && ok:
		// The catalog cannot be read: put/ goes on with what it knew.
		c.downUntil = time.Now().Add(wsDown)
		f.log.Warn().Str("workspace", ws).Dur("record_age", now.Sub(rec.at).Round(time.Second)).
			Msg("catalog unavailable: put/ goes on with the last workspace record read; seals wait for the catalog")
		return rec.w, 0
	}
	return w, errno
}

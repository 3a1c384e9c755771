package fs

import (
	"context"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Listings with or without attributes.
//
// The kernel lists a FUSE directory with READDIRPLUS, which asks for every
// entry's attributes along with its name — and for the first request of
// every directory it does so whatever the caller will do next. An entry
// answered with attributes becomes a kernel inode and a daemon node, and
// costs the daemon its catalog record: worth it for `ls -l`, `du`, `cp -r`
// or `rsync`, which stat every entry, and pure waste for `find` or `ls`,
// which need names and types only (`find` of a 100,100-entry tree ran at
// 0.12 of native disk, nearly all of it spent making inodes nobody used).
//
// FUSE lets the daemon leave out an entry's attributes (node ID 0: the
// kernel then lists the name and type and makes no inode), so a batch tree
// listing gives them only to a process that has shown it wants them: one
// that looked up a file (not a directory: `find` looks those up to descend)
// in a batch tree in the last attrMemory, or was given attributes in that
// time. A process new to the mount thus lists its first directory by names
// and looks up the entries it stats, one request each; from then on it gets
// attributes with its listings. The kernel names the thread, not the
// process, so a multi-threaded reader learns this per thread.
type attrCallers struct {
	mu   sync.Mutex
	last map[uint32]time.Time // by caller (thread) ID: when it last showed it wants attributes
}

const (
	// attrMemory is how long a caller is remembered as one that stats
	// what it lists. A caller reusing the ID of one that did (within
	// this time) gets attributes it may not need: the old behaviour.
	attrMemory = time.Minute
	// attrCallersMax bounds the table; above it the forgotten are swept.
	attrCallersMax = 4096
)

func newAttrCallers() *attrCallers {
	return &attrCallers{last: make(map[uint32]time.Time)}
}

// callerPID is the kernel's ID of the thread that made the request, 0 if
// unknown.
func callerPID(ctx context.Context) uint32 {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Pid
	}
	return 0
}

// statted records that the caller of ctx looked up a file in a batch tree.
func (a *attrCallers) statted(ctx context.Context) {
	pid := callerPID(ctx)
	if pid == 0 {
		return
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.last) >= attrCallersMax {
		for p, t := range a.last {
			if now.Sub(t) > attrMemory {
				delete(a.last, p)
			}
		}
		if len(a.last) >= attrCallersMax {
			clear(a.last)
		}
	}
	a.last[pid] = now
}

// want reports whether the caller of ctx gets attributes with a listing;
// a caller that does is remembered for another attrMemory. A caller the
// kernel does not name (0) gets them.
func (a *attrCallers) want(ctx context.Context) bool {
	pid := callerPID(ctx)
	if pid == 0 {
		return true
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.last[pid]
	if !ok || now.Sub(t) > attrMemory {
		return false
	}
	a.last[pid] = now
	return true
}

package archive

import (
	"sync"
	"time"
)

// Progress of long work a command waits for (a read-back of tape copies):
// the command names its work with a token of its own choosing and asks
// for the progress under that token while it waits for the answer, so a
// terminal shows a moving bar, not a silent minute.

// WorkProgress is how far one piece of work got.
type WorkProgress struct {
	What       string // "verify"
	Cartridge  string // the cartridge being read ("" between cartridges)
	Bytes      int64
	BytesTotal int64
	Files      int
	FilesTotal int
	Done       bool
}

type progressBoard struct {
	mu sync.Mutex
	m  map[string]*WorkProgress
}

// progressKeep is how long finished work stays readable, so that the last
// poll of the command sees it done.
const progressKeep = 10 * time.Second

// track starts the progress of token ("" tracks nothing); update and
// finish it through the returned tracker.
func (p *progressBoard) track(token, what string) *progressTracker {
	if token == "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*WorkProgress{}
	}
	wp := &WorkProgress{What: what}
	p.m[token] = wp
	return &progressTracker{board: p, token: token, wp: wp}
}

func (p *progressBoard) get(token string) (WorkProgress, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	wp, ok := p.m[token]
	if !ok {
		return WorkProgress{}, false
	}
	return *wp, true
}

// progressTracker updates one piece of work's progress; a nil tracker
// does nothing.
type progressTracker struct {
	board *progressBoard
	token string
	wp    *WorkProgress
}

func (t *progressTracker) update(fn func(*WorkProgress)) {
	if t == nil {
		return
	}
	t.board.mu.Lock()
	fn(t.wp)
	t.board.mu.Unlock()
}

// finish marks the work done and forgets it a little later.
func (t *progressTracker) finish() {
	if t == nil {
		return
	}
	t.update(func(wp *WorkProgress) { wp.Done, wp.Cartridge = true, "" })
	time.AfterFunc(progressKeep, func() {
		t.board.mu.Lock()
		if t.board.m[t.token] == t.wp {
			delete(t.board.m, t.token)
		}
		t.board.mu.Unlock()
	})
}

// Progress returns how far the work named token got.
func (e *Engine) Progress(token string) (WorkProgress, bool) { return e.progress.get(token) }

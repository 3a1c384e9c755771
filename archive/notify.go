package archive

import (
	"context"
	"sync"

	"github.com/tapefs/tapefs/catalog"
)

// Changes the engine publishes, so that a face holding copies of what the
// catalog says (the kernel's dentry and attribute caches behind the mount)
// can drop them the moment something changes behind its back: a seal by
// the settle timer, tapefs rm, undelete, purge, a CLI put.

// ChangeKind says what happened to a batch.
type ChangeKind string

const (
	// ChangeSealed: a batch was sealed; Entry, when not "", is the entry
	// of put/ it came from, which has left put/.
	ChangeSealed ChangeKind = "sealed"
	// ChangeRemoved: the batch was deleted (soft) and left the holdings.
	ChangeRemoved ChangeKind = "removed"
	// ChangeUndeleted: the batch is back in the holdings.
	ChangeUndeleted ChangeKind = "undeleted"
	// ChangePurged: the batch is gone for good.
	ChangePurged ChangeKind = "purged"
	// ChangeState: the batch changed state (State), or appeared (a CLI
	// put's CACHING reservation).
	ChangeState ChangeKind = "state"
)

// Change is one change of a batch.
type Change struct {
	Kind      ChangeKind
	Workspace string
	Batch     uint64
	Entry     string        // ChangeSealed: the put/ entry that left; "" for a CLI put
	State     catalog.State // the batch's state after the change
}

// changeOf is the change an event recorded in the catalog announces, if
// any. Seals are published by the sealing code itself, which knows the
// put/ entry.
func changeOf(ev catalog.Event) (Change, bool) {
	if ev.Batch == 0 || ev.Kind == EvSealed {
		return Change{}, false
	}
	c := Change{Kind: ChangeState, Workspace: ev.Workspace, Batch: ev.Batch, State: ev.State}
	switch ev.Kind {
	case EvDeleted:
		c.Kind = ChangeRemoved
	case EvUndeleted:
		c.Kind = ChangeUndeleted
	case EvPurged:
		c.Kind = ChangePurged
	}
	return c, true
}

// notifier delivers changes to subscribers, each in order on a goroutine
// of its own. Publishing never blocks: a subscriber may take its time (the
// mount's kernel notifications wait for the kernel's directory locks,
// which a FUSE request in progress may hold — the very request whose
// engine call published the change).
type notifier struct {
	mu        sync.Mutex
	cond      *sync.Cond // broadcast when a subscriber has handled changes or leaves
	published uint64     // changes published so far
	subs      map[*subscriber]struct{}
}

type subscriber struct {
	fn      func(Change)
	queue   []Change
	handled uint64 // sequence of the last change handled (or skipped)
	wake    chan struct{}
	done    chan struct{}
}

func newNotifier() *notifier {
	n := &notifier{subs: map[*subscriber]struct{}{}}
	n.cond = sync.NewCond(&n.mu)
	return n
}

// Subscribe calls fn with every change of a batch from now on, in order,
// from one goroutine, until the returned cancel is called. fn must not
// call Subscribe's cancel itself.
func (e *Engine) Subscribe(fn func(Change)) (cancel func()) {
	n := e.changes
	s := &subscriber{fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	n.mu.Lock()
	s.handled = n.published
	n.subs[s] = struct{}{}
	n.mu.Unlock()
	go n.deliver(s)
	var once sync.Once
	return func() {
		once.Do(func() {
			n.mu.Lock()
			delete(n.subs, s)
			n.cond.Broadcast()
			n.mu.Unlock()
			close(s.done)
		})
	}
}

func (n *notifier) deliver(s *subscriber) {
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		for {
			n.mu.Lock()
			if len(s.queue) == 0 {
				n.mu.Unlock()
				break
			}
			c := s.queue[0]
			s.queue = s.queue[1:]
			n.mu.Unlock()
			s.fn(c)
			n.mu.Lock()
			s.handled++
			n.cond.Broadcast()
			n.mu.Unlock()
		}
	}
}

// publish hands changes to every subscriber.
func (n *notifier) publish(cs ...Change) {
	if len(cs) == 0 {
		return
	}
	n.mu.Lock()
	n.published += uint64(len(cs))
	for s := range n.subs {
		s.queue = append(s.queue, cs...)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	n.mu.Unlock()
}

// WaitNotified waits until every subscriber has handled every change
// published before the call (or ctx is done). The control API calls it
// before it answers a request that changed batches, so that `tapefs rm -b
// ID && ls MOUNT/ws/ID` never sees the batch still cached by the kernel.
// It must not be called from a FUSE request: the subscriber's kernel
// notification may wait for that very request.
func (e *Engine) WaitNotified(ctx context.Context) error {
	n := e.changes
	n.mu.Lock()
	target := n.published
	n.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		n.mu.Lock()
		n.cond.Broadcast()
		n.mu.Unlock()
	})
	defer stop()
	n.mu.Lock()
	defer n.mu.Unlock()
	for ctx.Err() == nil {
		behind := false
		for s := range n.subs {
			// handled counts in the sequence of published: a subscriber
			// starts at the count of its Subscribe.
			behind = behind || s.handled < target
		}
		if !behind {
			return nil
		}
		n.cond.Wait()
	}
	return ctx.Err()
}

// publishCommitted logs the events a committed transaction recorded, wakes
// the waiters on batch states and publishes the changes they announce.
func (e *Engine) publishCommitted(pl pendingLog) {
	pl.emit(e.log)
	if len(pl) == 0 {
		return
	}
	var cs []Change
	for _, ev := range pl {
		if c, ok := changeOf(ev); ok {
			cs = append(cs, c)
		}
	}
	e.changes.publish(cs...)
	e.notify()
}

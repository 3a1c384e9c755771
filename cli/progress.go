package cli

import (
	"context"
	"fmt"
	"github.com/tapefs/tapefs/internal/human"
	"strings"
	"sync"
	"time"

	"github.com/tapefs/tapefs/api"
)

// progress draws a bar on stderr when it is a terminal, and nothing
// otherwise (logs and pipes get no control characters).
type progress struct {
	env   *Env
	label string
	mu    sync.Mutex
	total int64
	n     int64
	start time.Time
	last  time.Time
}

func (env *Env) newProgress(label string, total int64) *progress {
	return &progress{env: env, label: label, total: total, start: time.Now()}
}

func (p *progress) add(n int64) {
	p.mu.Lock()
	p.n += n
	p.drawLocked(false)
	p.mu.Unlock()
}

func (p *progress) set(n, total int64) {
	p.mu.Lock()
	p.n, p.total = n, total
	p.drawLocked(false)
	p.mu.Unlock()
}

func (p *progress) drawLocked(final bool) {
	if !p.env.TTY {
		return
	}
	now := time.Now()
	if !final && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(p.n)/float64(p.total), 1)
	}
	fill := int(frac * width)
	rate := float64(p.n) / max(now.Sub(p.start).Seconds(), 0.001)
	fmt.Fprintf(p.env.Stderr, "\r%s [%s%s] %3.0f%% %s / %s %s/s ", p.label, strings.Repeat("#", fill), strings.Repeat(".", width-fill),
		frac*100, human.Size(p.n), human.Size(p.total), human.Size(int64(rate)))
	if final {
		fmt.Fprintln(p.env.Stderr)
	}
}

func (p *progress) done() {
	p.mu.Lock()
	if !p.last.IsZero() {
		p.drawLocked(true)
	}
	p.mu.Unlock()
}

// follow polls a batch's progress (bytes on tape) until stopped.
func (p *progress) follow(ctx context.Context, c *api.Client, id uint64) (stop func()) {
	if !p.env.TTY {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			if st, err := c.Batch(ctx, id); err == nil {
				p.set(st.OnTape, st.Bytes)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

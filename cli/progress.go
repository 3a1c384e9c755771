package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/internal/human"
	"golang.org/x/sys/unix"
)

// Progress on stderr. On a terminal, one line redrawn in place with a bar
// as wide as the terminal is now (read at each draw: a resized window
// gets a fitting line). Elsewhere (a pipe, a log file, cron mail) plain
// lines, one for each change of what the batch waits for, no control
// characters. Own code rather than a progress-bar library: the line is
// mostly words that change with the batch's phase (queued, drive, rate,
// files), which bar libraries treat as decoration around a counter.

// redrawEvery limits redraws of a terminal line.
const redrawEvery = 200 * time.Millisecond

// termWidth is the width of the terminal on stderr, or of $COLUMNS, or 80.
func (env *Env) termWidth() int {
	if f, ok := env.Stderr.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			return int(ws.Col)
		}
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 80
}

// barLine renders "LABEL [####.....] 42 % REST" in width columns: the bar
// takes what the words leave, at least 10 columns, and the words are cut
// (with …) when even that does not fit.
func barLine(width int, label string, frac float64, rest string) string {
	frac = min(max(frac, 0), 1)
	pct := fmt.Sprintf("%3.0f %%", 100*frac)
	if frac < 1 && pct == "100 %" {
		pct = " 99 %" // only done is 100 %
	}
	width = max(width-1, 20) // the last column would wrap on some terminals
	words := len([]rune(label)) + len([]rune(pct)) + len([]rune(rest)) + 6
	barW := min(max(width-words, 10), 50)
	fill := int(frac * float64(barW))
	line := fmt.Sprintf("%s [%s%s] %s  %s", label, strings.Repeat("#", fill), strings.Repeat(".", barW-fill), pct, rest)
	if r := []rune(line); len(r) > width {
		line = string(r[:width-1]) + "…"
	}
	return line
}

// progress draws a bar on stderr when it is a terminal, and nothing
// otherwise (a put's upload; logs and pipes get no control characters).
type progress struct {
	env     *Env
	label   string
	mu      sync.Mutex
	total   int64
	n       int64
	last    time.Time
	samples []sample
}

type sample struct {
	t time.Time
	n int64
}

func (env *Env) newProgress(label string, total int64) *progress {
	return &progress{env: env, label: label, total: total}
}

func (p *progress) add(n int64) {
	p.mu.Lock()
	p.n += n
	p.drawLocked(false)
	p.mu.Unlock()
}

// rateLocked is the rate of the last few seconds (not since the start: a
// slow start would weigh on it for the whole upload).
func (p *progress) rateLocked(now time.Time) float64 {
	p.samples = append(p.samples, sample{now, p.n})
	cut := 0
	for cut+1 < len(p.samples) && now.Sub(p.samples[cut+1].t) > 5*time.Second {
		cut++
	}
	p.samples = p.samples[cut:]
	first := p.samples[0]
	if s := now.Sub(first.t).Seconds(); s > 0.1 {
		return float64(p.n-first.n) / s
	}
	return 0
}

func (p *progress) drawLocked(final bool) {
	if !p.env.TTY {
		return
	}
	now := time.Now()
	rate := p.rateLocked(now)
	if !final && now.Sub(p.last) < redrawEvery {
		return
	}
	p.last = now
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(p.n)/float64(p.total), 1)
	}
	rest := fmt.Sprintf("%s of %s  %s", human.Size(p.n), human.Size(p.total), human.Rate(rate))
	if rate > 0 && p.total > p.n {
		rest += "  ETA " + human.Duration(time.Duration(float64(p.total-p.n)/rate*float64(time.Second)))
	}
	fmt.Fprintf(p.env.Stderr, "\r\x1b[K%s", barLine(p.env.termWidth(), p.label, frac, rest))
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

// set moves the bar to n of total (work whose progress the daemon
// reports, not counted here).
func (p *progress) set(label string, n, total int64) {
	p.mu.Lock()
	p.label, p.n, p.total = label, n, total
	p.drawLocked(false)
	p.mu.Unlock()
}

// randomToken names a piece of work for the daemon's progress reports.
func randomToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return ""
	}
	return hex.EncodeToString(b)
}

// showWork draws, on a terminal, the progress of the work the daemon
// does under token, until the returned stop is called; stop with the
// work's final count (files < 0: it failed) draws the last line.
func (env *Env) showWork(ctx context.Context, token string) (stop func(files int, bytes int64)) {
	bar := env.newProgress("verify", 0)
	var what, where string
	var total int
	ctx, cancel := context.WithCancel(ctx)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			p, err := env.Client.Progress(ctx, token)
			if err != nil {
				continue // not started yet, or finished and forgotten
			}
			what, total = p.What, p.FilesTotal
			if p.Cartridge != "" {
				where = " on " + p.Cartridge
			}
			bar.set(fmt.Sprintf("%s %d/%d files%s", what, p.Files, total, where), p.Bytes, p.BytesTotal)
		}
	}()
	return func(files int, bytes int64) {
		cancel()
		<-finished
		if files >= 0 && what != "" {
			bar.set(fmt.Sprintf("%s %d/%d files%s", what, files, max(total, files), where), bytes, bytes)
		}
		bar.done()
	}
}

// pollEvery is how often --wait asks the daemon how a batch is doing.
const pollEvery = 500 * time.Millisecond

// waitBatch waits for a batch to reach tape, saying what it waits for
// (a bar on a terminal, plain lines otherwise), and returns the exit code.
// It ends with a line saying 100 % on tape and where, or why not.
func (env *Env) waitBatch(ctx context.Context, id uint64) int {
	w := &batchWatch{env: env, id: id}
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			if b, err := env.Client.Batch(ctx, id); err == nil {
				w.show(b)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	st, err := env.Client.Wait(ctx, id)
	cancel()
	wg.Wait()
	if err != nil {
		w.clear()
		return env.fail("status", err)
	}
	switch st.State {
	case api.CachedSynced, api.Synced:
		w.finish(outer, st)
		return ExitOK
	case api.Failed:
		w.clear()
		fmt.Fprintf(env.Stderr, "tapefs: batch %d FAILED: %s\n", id, st.Reason)
	default:
		w.clear()
		fmt.Fprintf(env.Stderr, "tapefs: batch %d is %s\n", id, st.State)
	}
	return ExitFailed
}

// batchWatch shows a waited-for batch.
type batchWatch struct {
	env      *Env
	id       uint64
	mu       sync.Mutex
	drawn    bool   // a terminal line is on screen
	lastNote string // plain output: the last line printed
	lastAt   time.Time
	lastPct  int
}

// phaseText is what the batch waits for, in words, and how far it is.
func phaseText(b api.Batch) (string, float64) {
	switch {
	case b.State.OnTape():
		return "on tape", 1
	case b.State == "SEALING":
		return "checksumming (md5) before it goes to tape", b.Progress
	case b.State == api.Caching:
		return "receiving its files", 0
	case b.Migration != nil:
		return b.Migration.Note, b.Progress
	case b.State == api.Failed:
		return "FAILED: " + b.Reason + "; retried", b.Progress
	}
	return strings.ToLower(string(b.State)), b.Progress
}

func (w *batchWatch) show(b api.Batch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if b.State.OnTape() {
		return // finish says it
	}
	note, frac := phaseText(b)
	label := fmt.Sprintf("batch %d", w.id)
	if w.env.TTY {
		fmt.Fprintf(w.env.Stderr, "\r\x1b[K%s", barLine(w.env.termWidth(), label, frac, note))
		w.drawn = true
		return
	}
	// Plain lines: a new line when the phase changes, and while writing
	// at most every 10 s and each 10 % — a log, not a flood.
	pct := int(100 * frac)
	phase := note
	if b.Migration != nil {
		phase = b.Migration.Phase
	}
	now := time.Now()
	if phase == w.lastNote && (now.Sub(w.lastAt) < 10*time.Second || pct/10 == w.lastPct/10) {
		return
	}
	w.lastNote, w.lastAt, w.lastPct = phase, now, pct
	if b.State == "SEALING" {
		fmt.Fprintf(w.env.Stderr, "%s: %s, %d %% checksummed\n", label, note, pct)
		return
	}
	fmt.Fprintf(w.env.Stderr, "%s: %d %% on tape, %s\n", label, pct, note)
}

func (w *batchWatch) clear() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.drawn {
		fmt.Fprint(w.env.Stderr, "\r\x1b[K")
		w.drawn = false
	}
}

// finish prints the last line: 100 % on tape, the size, the files and the
// cartridges that hold the batch.
func (w *batchWatch) finish(ctx context.Context, b api.Batch) {
	var vols []string
	count := fmt.Sprintf("%d entries", b.Files)
	if b.Files <= maxCounted {
		if fs, err := w.env.Client.AllFiles(ctx, b.ID); err == nil {
			var files, dirs int
			for _, f := range fs {
				if f.Type == api.TypeDir {
					dirs++
				} else {
					files++
				}
				for _, c := range f.Copies {
					if !slices.Contains(vols, c.VOLSER) {
						vols = append(vols, c.VOLSER)
					}
				}
			}
			// Files and directories apart, as status counts them.
			count = plural(files, "file") + ", " + plural(dirs, "directory")
		}
	}
	slices.Sort(vols)
	where := ""
	if len(vols) > 0 {
		where = " (" + strings.Join(vols, ", ") + ")"
	}
	rest := fmt.Sprintf("on tape%s: %s, %s", where, human.Size(b.Bytes), count)
	w.mu.Lock()
	defer w.mu.Unlock()
	label := fmt.Sprintf("batch %d", w.id)
	if w.env.TTY {
		fmt.Fprintf(w.env.Stderr, "\r\x1b[K%s\n", barLine(w.env.termWidth(), label, 1, rest))
		return
	}
	fmt.Fprintf(w.env.Stderr, "%s: 100 %% %s\n", label, rest)
}

// plural is "1 file", "2 files", "0 directories".
func plural(n int, what string) string {
	switch {
	case n == 1:
		return "1 " + what
	case strings.HasSuffix(what, "y"):
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(what, "y"))
	}
	return fmt.Sprintf("%d %ss", n, what)
}

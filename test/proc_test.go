package test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a subprocess of the binary under test that a test starts, stops
// and perhaps starts again (one run after another, never two at once): the
// running command, its exit, and the output of all its runs. daemon and
// server embed it.
type proc struct {
	name string // the command in messages: "tapefs", "tapefs serve"

	mu   sync.Mutex
	out  bytes.Buffer // stderr and stdout of every run, prefixed with the run number
	cmd  *exec.Cmd
	done chan struct{} // closed when the running process has exited
	werr error         // its exit status
	runs int
}

// start runs tapefsBin with args and env, stopped (SIGTERM) if the test
// process dies.
// Its stdout and stderr go line by line into the output, and each line
// also to line (if not nil), called from another goroutine. It fails the
// test if the process is running already or cannot be started; it returns
// the number of the run and a channel closed when the process has exited.
func (p *proc) start(t *testing.T, env, args []string, line func(string)) (int, <-chan struct{}) {
	t.Helper()
	if p.running() {
		t.Fatalf("%s already running", p.name)
	}
	cmd := exec.Command(tapefsBin, args...)
	cmd.Env = env
	// SIGTERM, not SIGKILL, when the test process dies (a -timeout
	// panic, go test killing it, a kill of the run): the daemon then
	// unmounts as it stops, where SIGKILL left a dead FUSE mount under
	// /tmp/Test*/ for every daemon of an interrupted run (t.Cleanup does
	// not run then). Its output pipe is gone by then; it copes (EPIPE).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	p.mu.Lock()
	p.runs++
	run := p.runs
	fmt.Fprintf(&p.out, "[run %d] %s %s\n", run, tapefsBin, strings.Join(args, " "))
	p.mu.Unlock()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	pw.Close()
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.werr = cmd, done, nil
	p.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			text := sc.Text()
			p.mu.Lock()
			fmt.Fprintf(&p.out, "[run %d] %s\n", run, text)
			p.mu.Unlock()
			if line != nil {
				line(text)
			}
		}
		pr.Close()
		err := cmd.Wait()
		p.mu.Lock()
		p.werr = err
		p.mu.Unlock()
		close(done)
	}()
	return run, done
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// process is the process of the last run (nil before the first).
func (p *proc) process() *os.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	return p.cmd.Process
}

// exitErr is the exit status of the last run (nil while it runs).
func (p *proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.werr
}

// output is the output of all runs so far.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitExit waits up to timeout for the running process to exit.
func (p *proc) waitExit(timeout time.Duration) bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// quit sends SIGQUIT (the Go runtime dumps the goroutines into the output)
// and then SIGKILL, waiting up to 5 s for the exit after each.
func (p *proc) quit() {
	pr := p.process()
	_ = pr.Signal(syscall.SIGQUIT)
	p.waitExit(5 * time.Second)
	_ = pr.Kill()
	p.waitExit(5 * time.Second)
}

// terminate sends SIGTERM and expects exit status 0 within 60 s (then the
// process is quit and killed); it returns its complaint.
func (p *proc) terminate() error {
	if !p.running() {
		return fmt.Errorf("stop: %s not running", p.name)
	}
	_ = p.process().Signal(syscall.SIGTERM)
	if !p.waitExit(60 * time.Second) {
		p.quit()
		return fmt.Errorf("%s did not exit within 60s of SIGTERM (killed; goroutine dump in its output)\n%s", p.name, p.output())
	}
	if err := p.exitErr(); err != nil {
		return fmt.Errorf("%s exited with %v after SIGTERM; want status 0\n%s", p.name, err, p.output())
	}
	return nil
}

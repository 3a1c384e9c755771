package test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// slowTapeFlags: a drive at 1 MiB/s simulated and a time scale of 0.05,
// so 40 MiB take about 2 s to write, and a flush age of 5 s, so a batch
// is seen queued first.
func slowTapeFlags() []string {
	return []string{"--time-scale", "0.05", "--tape-speed", "1M", "--flush-age", "5s"}
}

var barRE = regexp.MustCompile(`\[[#.]{10,}\]`)

// TestWaitProgressOnTerminal: `tapefs put --wait` on a terminal (a pty
// made by script(1), 100 columns) redraws one line with a bar that fits
// the terminal, says the batch is queued and then written (drive, rate,
// files), and ends with a line at 100 % on tape naming the cartridge.
// The same wait with stderr on a pipe prints plain lines, no bar and no
// control characters, and ends the same way.
func TestWaitProgressOnTerminal(t *testing.T) {
	t.Parallel()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("script(1) (util-linux) is needed to give the CLI a terminal: %v", err)
	}
	s := startServer(t, slowTapeFlags()...)
	o := cliOpts{home: s.home}
	src := filepath.Join(t.TempDir(), "run1")
	writeFiles(t, src, map[string]int{"a.dat": 24 << 20, "b.dat": 16 << 20, "c.txt": 100})

	cmd := exec.Command(script, "-qec", "stty cols 100 rows 30; exec "+q(tapefsBin)+" put -w default -t tty --wait "+q(src), "/dev/null")
	cmd.Env = cleanEnv("TAPEFS_HOME="+s.home, "TERM=xterm")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("put --wait on a terminal: %v\n%q", err, out.String())
	}
	tty := out.String()
	t.Logf("put --wait on a terminal took %v", time.Since(t0).Round(time.Millisecond))
	// Each redraw starts with \r and clears the line.
	draws := strings.Split(strings.ReplaceAll(tty, "\r\n", "\n"), "\r")
	bars, queued, writing := 0, false, false
	for _, d := range draws {
		d = strings.TrimPrefix(d, "\x1b[K")
		line, _, _ := strings.Cut(d, "\n")
		if !barRE.MatchString(line) {
			continue
		}
		bars++
		if n := len([]rune(line)); n > 99 || n < 80 {
			t.Errorf("a progress line of %d columns on a 100-column terminal: %q", n, line)
		}
		if !queued && strings.Contains(line, "queued for tape, writing starts in ~") {
			queued = true
			t.Logf("queued:  %s", line)
		}
		if !writing && regexp.MustCompile(`writing on drive \d \(TF\d+\) at [0-9.]+ [KMG]iB/s`).MatchString(line) {
			writing = true
			t.Logf("writing: %s", line)
		}
	}
	if bars < 3 {
		t.Errorf("%d bar lines on a terminal, want the line redrawn as the batch moves:\n%q", bars, tty)
	}
	if !queued {
		t.Errorf("never said when writing starts while the batch was queued:\n%q", tty)
	}
	if !writing {
		t.Errorf("never showed the drive and its rate while it wrote:\n%q", tty)
	}
	final := lastNonEmptyLine(tty)
	if !strings.Contains(final, "100 %") || !regexp.MustCompile(`on tape \(TF\d+\): 40\.0 MiB, 3 files, \d+ director(y|ies)`).MatchString(final) {
		t.Errorf("last line %q: want 100 %% on tape with the cartridge, size and files", final)
	}
	if strings.Contains(tty, "  0 %  on tape") || strings.Contains(final, " 0 %") {
		t.Errorf("ended showing 0 %%: %q", final)
	}

	// Piped: plain lines only.
	src2 := filepath.Join(t.TempDir(), "run2")
	writeFiles(t, src2, map[string]int{"x.dat": 24 << 20})
	id := batchID(t, cliOK(t, o, "put", "-w", "default", "-t", "pipe", src2))
	r := cliOK(t, o, "status", "-b", idArg(id), "--wait")
	if strings.ContainsAny(r.stderr, "\r\x1b") || barRE.MatchString(r.stderr) {
		t.Errorf("a bar or control characters on a pipe:\n%q", r.stderr)
	}
	t.Logf("piped:\n%s", r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "batch "+idArg(id)+": ") {
		t.Errorf("want plain lines saying what the batch waits for:\n%s", r)
	}
	if last := lines[len(lines)-1]; !regexp.MustCompile(`^batch \d+: 100 % on tape \(TF\d+\): 24\.0 MiB, 1 file, \d+ director(y|ies)$`).MatchString(last) {
		t.Errorf("last line on a pipe %q: want 100 %% on tape with the cartridge", last)
	}
	if !regexp.MustCompile(`(?m)^\d+\s+default\s+CACHED_SYNCED\s+100%`).MatchString(r.stdout) {
		t.Errorf("status after --wait does not show 100%%:\n%s", r)
	}
}

func lastNonEmptyLine(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	l := lines[len(lines)-1]
	if i := strings.LastIndex(l, "\r"); i >= 0 {
		l = l[i+1:]
	}
	return strings.TrimPrefix(l, "\x1b[K")
}

// TestVerifyProgressOnTerminal: `tapefs verify --cartridge` on a terminal
// shows a bar that moves as the daemon reads the copies back (files of
// all, the cartridge, bytes, rate) and ends at 100 %; on a pipe it
// prints only the report.
func TestVerifyProgressOnTerminal(t *testing.T) {
	t.Parallel()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("script(1) (util-linux) is needed to give the CLI a terminal: %v", err)
	}
	s := startServer(t, "--time-scale", "0.05", "--tape-speed", "4M", "--flush-age", "1s")
	o := cliOpts{home: s.home}
	src := filepath.Join(t.TempDir(), "run1")
	writeFiles(t, src, map[string]int{"a.dat": 24 << 20, "b.dat": 16 << 20, "c.txt": 100})
	id := batchID(t, cliOK(t, o, "put", "-w", "default", "--wait", src))
	var vol string
	for _, f := range filesJSON(t, o, id) {
		if len(f.Copies) > 0 {
			vol = f.Copies[0].VOLSER
		}
	}
	cmd := exec.Command(script, "-qec", "stty cols 100 rows 30; exec "+q(tapefsBin)+" verify --cartridge "+vol, "/dev/null")
	cmd.Env = cleanEnv("TAPEFS_HOME="+s.home, "TERM=xterm")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("verify on a terminal: %v\n%q", err, out.String())
	}
	tty := out.String()
	bars, moving := 0, false
	for _, d := range strings.Split(strings.ReplaceAll(tty, "\r\n", "\n"), "\r") {
		line, _, _ := strings.Cut(strings.TrimPrefix(d, "\x1b[K"), "\n")
		if !barRE.MatchString(line) {
			continue
		}
		bars++
		if regexp.MustCompile(`verify \d+/3 files on ` + vol).MatchString(line) {
			moving = true
		}
	}
	if bars < 2 || !moving {
		t.Errorf("verify on a terminal drew %d bars, moving with files and cartridge: %v\n%q", bars, moving, tty)
	}
	if !strings.Contains(tty, "100 %") || !strings.Contains(tty, "read back 3 tape copies") {
		t.Errorf("verify on a terminal does not end at 100 %% with its report:\n%q", tty)
	}
	// On a pipe: the report alone.
	r := cliOK(t, o, "verify", "--cartridge", vol)
	if barRE.MatchString(r.stderr+r.stdout) || strings.Contains(r.stderr, "\r") {
		t.Errorf("verify on a pipe drew a bar:\n%s", r)
	}
}

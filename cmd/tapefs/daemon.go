package main

import (
	"errors"
	"fmt"
	"github.com/tapefs/tapefs/cli"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
	tfs "github.com/tapefs/tapefs/fs"
)

const mountDescription = `Run the tapefs daemon in the foreground with the archive mounted on
MOUNTPOINT, an existing empty directory. Each workspace is a directory of
the mount; copy a directory into <workspace>/put/ to archive it. The
daemon prints "tapefs: mounted at MOUNTPOINT" when the mount is usable, and
unmounts and stops cleanly on SIGINT or SIGTERM.

As root the mount is made directly; other users need fusermount3 (package
fuse3), and --allow-other needs user_allow_other in /etc/fuse.conf.
`

const mountExamples = `  tapefs mount /mnt/tape
  tapefs mount --home /srv/tapefs --allow-other --cache-size 2T /archive
  TAPEFS_HOME=/tmp/th tapefs mount --time-scale 0 --settle 2s /tmp/mnt
`

const serveDescription = `Run the tapefs daemon in the foreground without a mount: the command line
(tapefs put, get, ls, ...) talks to it. It stops cleanly on SIGINT or
SIGTERM.
`

const serveExamples = `  tapefs serve
  tapefs serve --home /srv/tapefs --http :7070
`

func runMount(args []string) int {
	f := newDaemonFlags("mount", "tapefs mount [flags] MOUNTPOINT", mountDescription, mountExamples)
	if code, ok := parseFlags(f, "mount", args); !ok {
		return code
	}
	if f.fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "tapefs mount: give exactly one MOUNTPOINT; see 'tapefs mount --help'")
		return cli.ExitUsage
	}
	return runDaemon(f, f.fs.Arg(0))
}

func runServe(args []string) int {
	f := newDaemonFlags("serve", "tapefs serve [flags]", serveDescription, serveExamples)
	if code, ok := parseFlags(f, "serve", args); !ok {
		return code
	}
	if f.fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "tapefs serve: takes no arguments; see 'tapefs serve --help'")
		return cli.ExitUsage
	}
	return runDaemon(f, "")
}

func parseFlags(f *daemonFlags, name string, args []string) (int, bool) {
	f.fs.SetOutput(io.Discard)
	err := f.fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		f.help(os.Stdout)
		return 0, false
	case err != nil:
		fmt.Fprintf(os.Stderr, "tapefs %s: %v; see 'tapefs %s --help'\n", name, err, name)
		return cli.ExitUsage, false
	}
	return 0, true
}

// daemon is one run of mount or serve.
type daemon struct {
	cfg     daemonConfig
	log     zerolog.Logger // stderr and, once the home is locked, the log file
	fileLog *zerolog.Logger
}

// fail reports an error that stops the daemon: one plain line on stderr
// (and the log file), exit code 1, or 4 (cli.ExitUsage) for a bad
// configuration or argument, as for every other command.
func (d *daemon) fail(err error) int {
	fmt.Fprintf(os.Stderr, "tapefs: %v\n", err)
	if d.fileLog != nil {
		d.fileLog.Error().Err(err).Msg("daemon stopped")
	}
	var ue usageError
	if errors.As(err, &ue) {
		return cli.ExitUsage
	}
	return cli.ExitFailed
}

// usageError is a bad flag value, configuration file, environment
// variable or argument: the user's to fix, exit code 4.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func runDaemon(f *daemonFlags, mnt string) int {
	// A daemon outlives whoever reads its output (`make run | tee log`,
	// then Ctrl-C kills tee first): without this, the first log line
	// written to the gone pipe would kill it by SIGPIPE before it could
	// unmount, leaving a dead mount. Asked for, SIGPIPE becomes an EPIPE
	// error of that write, which the logger drops; the log file still
	// gets the line. (Notify rather than Ignore: ignoring would be
	// inherited by the fusermount3 we run.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	// Caught from the start: a SIGTERM that arrives while the mount is
	// being set up (a service manager stopping a daemon it just started)
	// must stop it cleanly once it is up, not kill it with a live mount.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	d := &daemon{}
	var warnings []string
	var err error
	d.cfg, warnings, err = f.configure()
	if err != nil {
		return d.fail(usageError{err})
	}
	d.log = newLogger(d.cfg.logLevel, nil)
	if err := os.MkdirAll(d.cfg.home, 0o755); err != nil {
		return d.fail(fmt.Errorf("home: %w", err))
	}
	lock, err := lockHome(d.cfg.home)
	if err != nil {
		return d.fail(err)
	}
	defer lock.Close()
	logf, err := openLogFile(filepath.Join(d.cfg.home, logFile))
	if err != nil {
		return d.fail(fmt.Errorf("log file: %w", err))
	}
	defer logf.Close()
	d.log = newLogger(d.cfg.logLevel, logf)
	fl := zerolog.New(logf).Level(d.cfg.logLevel).With().Timestamp().Logger()
	d.fileLog = &fl
	stopHangup := make(chan struct{})
	defer close(stopHangup)
	reopenOnHangup(logf, d.log, stopHangup)
	for _, w := range warnings {
		d.log.Warn().Msg(w)
	}
	startPprof(d.log)
	setMemoryLimit(d.log)

	if mnt != "" {
		if mnt, err = filepath.Abs(mnt); err != nil {
			return d.fail(err)
		}
		if err := prepareMountpoint(mnt, d.log); err != nil {
			return d.fail(err)
		}
	}
	d.log.Info().Str("home", d.cfg.home).Str("catalog", catalogName(d.cfg)).Str("mountpoint", mnt).Stringer("settle", d.cfg.settle).
		Float64("time_scale", d.cfg.timeScale).Int("pid", os.Getpid()).Msg("starting")
	if mnt != "" {
		warnRequestTimeout(d.log, requestTimeoutKnob)
	}

	httpLn, err := d.listenHTTP()
	if err != nil {
		return d.fail(err)
	}
	h, err := openHome(&d.cfg, d.log)
	if err != nil {
		if httpLn != nil {
			httpLn.Close()
		}
		return d.fail(err)
	}
	h.engine.Start()
	var fsys *tfs.FS
	stopServers, err := d.startServers(h, mnt, httpLn, func() map[string]uint64 {
		if fsys == nil {
			return nil
		}
		return fsys.OpCounts()
	})
	if err != nil {
		h.close(d.log)
		return d.fail(err)
	}
	defer stopServers()

	var srv *fuse.Server
	if mnt != "" {
		fsys = tfs.New(tfs.FromArchive(h.engine), tfs.Options{
			Log:        d.log,
			AllowOther: d.cfg.allowOther,
			CacheDir:   filepath.Join(d.cfg.home, cacheDir),
			CacheSpace: func() (int64, int64) {
				s := h.cache.Stats()
				return s.Limit, s.Used
			},
			Debug:      d.cfg.debugFUSE,
			DirTimeout: d.cfg.kernelCache,
		})
		if srv, err = fsys.Mount(mnt); err != nil {
			h.close(d.log)
			return d.fail(err)
		}
		fmt.Fprintf(os.Stderr, "tapefs: mounted at %s\n", mnt)
		d.log.Info().Str("mountpoint", mnt).Msg("mount ready")
	} else {
		d.log.Info().Msg("serving without a mount")
	}
	d.notify("READY=1")

	served := make(chan struct{})
	if srv != nil {
		go func() {
			srv.Wait()
			close(served)
		}()
	}
	mounted := srv != nil
	select {
	case sig := <-sigs:
		d.log.Info().Str("signal", sig.String()).Msg("stopping")
	case <-served:
		d.log.Warn().Str("mountpoint", mnt).Msg("the mount was unmounted from outside; stopping")
		mounted = false
	}
	d.notify("STOPPING=1")
	go func() {
		sig := <-sigs
		d.log.Warn().Str("signal", sig.String()).Msg("second signal: exiting without waiting for a safe point")
		os.Exit(1)
	}()
	if mounted {
		unmount(srv, mnt, 10*time.Second, d.log)
	}
	stopServers()
	h.close(d.log)
	d.log.Info().Msg("stopped")
	return 0
}

// requestTimeoutKnob is the kernel's limit on how long a FUSE request may
// take (Linux 6.14 and later; 0 = none).
const requestTimeoutKnob = "/proc/sys/fs/fuse/default_request_timeout"

// warnRequestTimeout warns when the kernel aborts FUSE requests that take
// longer than a limit: a read waiting for a recall can take minutes.
func warnRequestTimeout(log zerolog.Logger, knob string) bool {
	b, err := os.ReadFile(knob)
	if err != nil {
		return false // an older kernel: no timeout
	}
	secs, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || secs == 0 {
		return false
	}
	log.Warn().Int("seconds", secs).Str("sysctl", knob).
		Msgf("the kernel aborts FUSE requests after %d s: reads waiting on a recall longer than that will be aborted; set %s to 0 to allow long recalls", secs, knob)
	return true
}

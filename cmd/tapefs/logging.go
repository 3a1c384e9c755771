package main

import (
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// newLogger logs to stderr (readable on a terminal, JSON otherwise) and,
// when file is set, to it as JSON too. The file is written first: stderr
// may be a pipe whose reader is gone (every write fails, and is dropped)
// or stalled.
func newLogger(level zerolog.Level, file io.Writer) zerolog.Logger {
	var console io.Writer = os.Stderr
	if isatty.IsTerminal(os.Stderr.Fd()) {
		console = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}
	}
	w := console
	if file != nil {
		w = zerolog.MultiLevelWriter(file, console)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// logFileWriter is the daemon's log file, which SIGHUP reopens by name:
// logrotate (or an administrator) renames tapefs.log and sends SIGHUP,
// and the lines after it go to a new tapefs.log instead of the renamed
// file. Each zerolog event is one Write, so the mutex keeps lines whole
// across a reopen.
type logFileWriter struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func openLogFile(path string) (*logFileWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &logFileWriter{path: path, f: f}, nil
}

func (w *logFileWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Write(p)
}

// Reopen opens the file by its name again. On failure (the directory is
// gone, the disk is full) the old file stays in use, so no line is lost.
func (w *logFileWriter) Reopen() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	w.mu.Lock()
	old := w.f
	w.f = f
	w.mu.Unlock()
	return old.Close()
}

func (w *logFileWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// reopenOnHangup reopens the log file on every SIGHUP until stop closes.
func reopenOnHangup(w *logFileWriter, log zerolog.Logger, stop <-chan struct{}) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-stop:
				return
			case <-hup:
				if err := w.Reopen(); err != nil {
					log.Error().Err(err).Str("file", w.path).Msg("SIGHUP: cannot reopen the log file; still writing to the old one")
					continue
				}
				log.Info().Str("file", w.path).Msg("SIGHUP: log file reopened")
			}
		}
	}()
}

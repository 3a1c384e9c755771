package main

import (
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// newLogger logs to stderr (readable on a terminal, JSON otherwise) and,
// when file is set, to it as JSON too.
func newLogger(level zerolog.Level, file io.Writer) zerolog.Logger {
	var console io.Writer = os.Stderr
	if isatty.IsTerminal(os.Stderr.Fd()) {
		console = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}
	}
	w := console
	if file != nil {
		w = zerolog.MultiLevelWriter(console, file)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// Package cli owns the user commands of tapefs — put, get, rm, undelete,
// ls, status, seal, workspace, library, cache — that talk to a running
// daemon through the control API. Each command parses its own flags, has
// --help with examples, and returns an exit code from the table in
// ExitCodes.
//
// cli reads and writes users' files as the invoking user: it runs in the
// user's process, and the daemon never opens a user's path.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mattn/go-isatty"
	"github.com/spf13/pflag"
	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/config"
)

// Exit codes of every command: those of the one error table
// (archive/errkind, through api), which the daemon's refusals are answered by.
const (
	ExitOK       = api.ExitOK       // done
	ExitFailed   = api.ExitFailed   // failed: nothing, or not everything, was done (see the message)
	ExitPartial  = api.ExitPartial  // done, but some items were skipped (-c) or failed (listed)
	ExitNoDaemon = api.ExitNoDaemon // no daemon is running
	ExitUsage    = api.ExitUsage    // bad flags, arguments or configuration
)

// ExitCodes is the text of `tapefs help exit-codes`.
const ExitCodes = `Exit codes of tapefs commands:

  0  done
  1  failed: nothing, or not everything, was done; the message says what and why
     (status --wait: the batch is FAILED or was deleted; verify: a cached copy
     is damaged)
  2  done in part: with put -c, some list entries were skipped; with get, some
     files could not be restored (they are listed, and written to a file that
     get -f accepts for a retry)
  3  no tapefs daemon is running (start one with 'tapefs mount MOUNTPOINT' or
     'tapefs serve')
  4  bad usage: unknown flag, missing argument, or a bad value in a
     configuration file (the message names file and line)
`

// Env is what a command runs with.
type Env struct {
	Stdout, Stderr io.Writer
	TTY            bool // stderr is a terminal: progress bars
	Settings       Settings
	Client         *api.Client
	log            io.Writer // -l LOGFILE, or nil
	verbose        bool
}

// Settings are the command line's settings after configuration files,
// environment and flags.
type Settings struct {
	Home        string // daemon home; "" = find it
	Workspace   string // [Batch] Workspace, TAPEFS_WORKSPACE, -w
	OutputLevel string // [Directory] outputLevel, TAPEFS_OUTPUTLEVEL, -L
	Warnings    []string
}

// LoadSettings applies, lowest first, the configuration files, the
// environment; flags are applied by each command.
func LoadSettings(files []string, getenv func(string) string) (Settings, error) {
	s := Settings{Workspace: "default", OutputLevel: "batch"}
	es, err := config.ReadAll(files)
	if err != nil {
		return s, err
	}
	s.Warnings = config.Unknown(es)
	if e, ok := config.Lookup(es, "batch", "workspace"); ok {
		s.Workspace = e.Value
	}
	if e, ok := config.Lookup(es, "directory", "outputlevel"); ok {
		if !validLevel(e.Value) {
			return s, fmt.Errorf("%s: bad value %q for outputLevel (use workspace, batch or file)", e.Where(), e.Value)
		}
		s.OutputLevel = strings.ToLower(e.Value)
	}
	if e, ok := config.Lookup(es, "daemon", "home"); ok {
		s.Home = e.Value
	}
	if v := getenv("TAPEFS_WORKSPACE"); v != "" {
		s.Workspace = v
	}
	if v := getenv("TAPEFS_OUTPUTLEVEL"); v != "" {
		if !validLevel(v) {
			return s, fmt.Errorf("TAPEFS_OUTPUTLEVEL=%q: use workspace, batch or file", v)
		}
		s.OutputLevel = strings.ToLower(v)
	}
	if v := getenv("TAPEFS_HOME"); v != "" {
		s.Home = v
	}
	return s, nil
}

func validLevel(v string) bool {
	switch strings.ToLower(v) {
	case "workspace", "batch", "file":
		return true
	}
	return false
}

// Socket finds the control socket: HOME/tapefs.sock for an explicit home,
// else the user's own default home if a daemon listens there, else the
// system daemon's.
func (s Settings) Socket() string {
	if s.Home != "" {
		return filepath.Join(s.Home, "tapefs.sock")
	}
	if os.Geteuid() != 0 {
		p := filepath.Join(config.DefaultHome(), "tapefs.sock")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join(config.SystemHome, "tapefs.sock")
}

// Command is one user command.
type Command struct {
	Name    string
	Summary string
	Usage   string   // after "tapefs NAME "
	Help    string   // description and examples
	Words   []string // fixed first arguments, for completion
	setup   func(fs *pflag.FlagSet) func(env *Env, args []string) int
	// configFiles replaces config.Files when not nil (the et_*.py names
	// read Elastic Tape's files too: et.go).
	configFiles []string
}

// Commands lists the user commands in the order help shows them.
var Commands = []Command{putCommand, getCommand, rmCommand, undeleteCommand, lsCommand, statusCommand, sealCommand, workspaceCommand, libraryCommand, cacheCommand, verifyCommand}

// Run runs a user command with its arguments (after the name) and returns
// the exit code.
func Run(c Command, args []string, stdout, stderr io.Writer) int {
	fs, run := c.flags()
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "tapefs %s: %s%s\nRun 'tapefs %s --help' for usage.\n", c.Name, flagError(err), suggestFlag(err, fs), c.Name)
		return ExitUsage
	}
	help, _ := fs.GetBool("help")
	if help {
		fmt.Fprintf(stdout, "Usage: tapefs %s %s\n\n%s\nFlags:\n%s", c.Name, c.Usage, c.Help, fs.FlagUsages())
		return ExitOK
	}
	files := c.configFiles
	if files == nil {
		files = config.Files()
	}
	settings, err := LoadSettings(files, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tapefs %s: %v\n", c.Name, err)
		return ExitUsage
	}
	for _, w := range settings.Warnings {
		fmt.Fprintf(stderr, "tapefs: warning: %s\n", w)
	}
	if home, _ := fs.GetString("home"); home != "" {
		settings.Home = home
	}
	env := &Env{
		Stdout: stdout, Stderr: stderr, Settings: settings,
		TTY:    isatty.IsTerminal(os.Stderr.Fd()) && stderr == os.Stderr,
		Client: api.NewClient(settings.Socket()),
	}
	return run(env, fs.Args())
}

// flags builds the command's flag set (the same for a run, --help,
// completion and the man page).
func (c Command) flags() (*pflag.FlagSet, func(env *Env, args []string) int) {
	fs := pflag.NewFlagSet(c.Name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.String("home", "", "home of the daemon to talk to (env TAPEFS_HOME; default: find it)")
	run := c.setup(fs)
	fs.BoolP("help", "h", false, "show this help")
	return fs, run
}

// suggestFlag is "; did you mean --batch?" for an unknown long flag close
// to one the command has ("" otherwise).
func suggestFlag(err error, fs *pflag.FlagSet) string {
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return ""
	}
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	if s, ok := Suggest(name, names); ok {
		return fmt.Sprintf("; did you mean --%s?", s)
	}
	return ""
}

// unknownWord refuses a subcommand word the command does not have,
// suggesting the nearest one.
func (env *Env) unknownWord(cmd, word string, words []string, usage string) int {
	if s, ok := Suggest(word, words); ok {
		return env.usage(cmd, "unknown subcommand %q; did you mean %q? (%s)", word, s, usage)
	}
	return env.usage(cmd, "%s", usage)
}

// flagError says what is wrong with a flag in the user's words: a bad
// value names the flag and what it takes, not the Go parser that refused
// it (strconv.ParseUint: parsing "1x": invalid syntax).
func flagError(err error) string {
	var iv *pflag.InvalidValueError
	if !errors.As(err, &iv) {
		return err.Error()
	}
	f := iv.GetFlag()
	name := "--" + f.Name
	if f.Shorthand != "" {
		name = "-" + f.Shorthand + "/" + name
	}
	want := "a valid value"
	switch f.Value.Type() {
	case "uint64", "uint32", "uint", "int", "int64", "int32":
		want = "a whole number"
		if f.Name == "batch" {
			want = "a batch ID (a whole number, as put and ls print it)"
		}
	case "bool":
		want = "true or false"
	case "duration":
		want = "a duration such as 90s, 5m or 2h"
	case "float64":
		want = "a number"
	}
	return fmt.Sprintf("%s %q: want %s", name, iv.GetValue(), want)
}

// context returns a context cancelled by SIGINT or SIGTERM.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// fail prints an error and returns its exit code from the error table: no
// daemon is 3, a refusal or any other error 1.
func (env *Env) fail(cmd string, err error) int {
	if errors.Is(err, api.ErrNoDaemon) {
		fmt.Fprintf(env.Stderr, "tapefs %s: %v.\nStart one with 'tapefs mount MOUNTPOINT' (or 'tapefs serve' without a mount), or point to its home with --home or TAPEFS_HOME.\n", cmd, err)
		return ExitNoDaemon
	}
	fmt.Fprintf(env.Stderr, "tapefs %s: %v\n", cmd, err)
	return api.ExitCode(err)
}

// usage prints a usage error.
func (env *Env) usage(cmd, format string, args ...any) int {
	fmt.Fprintf(env.Stderr, "tapefs %s: %s\nRun 'tapefs %s --help' for usage.\n", cmd, fmt.Sprintf(format, args...), cmd)
	return ExitUsage
}

// logf writes a line to -l LOGFILE and, with -v, to stderr.
func (env *Env) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if env.verbose {
		fmt.Fprintln(env.Stderr, line)
	}
	if env.log != nil {
		fmt.Fprintln(env.log, line)
	}
}

// logFlags adds -v and -l to a command.
func logFlags(fs *pflag.FlagSet) (verbose *bool, logfile *string) {
	return fs.BoolP("verbose", "v", false, "log each file on stderr"),
		fs.StringP("log", "l", "", "also log each file to `LOGFILE`")
}

// openLog applies -v and -l.
func (env *Env) openLog(verbose bool, logfile string) (func(), error) {
	env.verbose = verbose
	if logfile == "" {
		return func() {}, nil
	}
	f, err := os.OpenFile(logfile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	env.log = f
	return func() { f.Close() }, nil
}

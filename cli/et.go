package cli

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/tapefs/tapefs/config"
)

// Elastic Tape compatibility: installed as et_put.py, et_get.py, et_rm.py
// and et_ls.py (links to the one binary, see the Makefile), tapefs runs its
// put, get, rm and ls with Elastic Tape's options, so that scripts written
// for Elastic Tape keep working unchanged. The tapefs commands already use
// Elastic Tape's letters (-v -l -w -c -t -f, -b -r -t, -H -L -F); what is
// left is -X, which Elastic Tape's scripts take and tapefs has no use for,
// and Elastic Tape's configuration files.

// etCommands maps Elastic Tape's script names to the tapefs commands that
// do their work.
var etCommands = map[string]string{
	"et_put.py": "put",
	"et_get.py": "get",
	"et_rm.py":  "rm",
	"et_ls.py":  "ls",
}

// ETNames are the names the binary answers to as Elastic Tape's scripts,
// in the order make install links them.
var ETNames = []string{"et_put.py", "et_get.py", "et_rm.py", "et_ls.py"}

// IsETName says whether name (the base name the binary was run as) is one
// of Elastic Tape's scripts.
func IsETName(name string) bool {
	_, ok := etCommands[name]
	return ok
}

// RunET runs the tapefs command behind Elastic Tape's script name with
// the script's arguments, and returns the exit code. -X is dropped with a
// note on stderr; /etc/et_config and ~/.et_config are read after tapefs's
// own configuration files, so they win over them (the environment and the
// flags still win over both).
func RunET(name string, args []string, stdout, stderr io.Writer) int {
	c, ok := commandNamed(etCommands[name])
	if !ok {
		fmt.Fprintf(stderr, "tapefs: %s is not one of Elastic Tape's commands (%s)\n", name, strings.Join(ETNames, ", "))
		return ExitUsage
	}
	args, dropped := dropETOnly(c, args)
	if dropped {
		fmt.Fprintf(stderr, "%s: note: -X is accepted for Elastic Tape's scripts and ignored by tapefs\n", name)
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" {
			fmt.Fprintf(stdout, "%s is Elastic Tape's name for 'tapefs %s': the same options (and -X, ignored); it\nalso reads /etc/et_config and ~/.et_config after tapefs's own files.\n\n", name, c.Name)
			break
		}
	}
	c.configFiles = append(config.Files(), config.ETFiles()...)
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(interrupted)
	code := Run(c, args, stdout, stderr)
	select {
	case <-interrupted:
		return etInterrupted(name, code)
	default:
	}
	return etExitCode(name, code, func() bool { return restoreUnwritable(c, args) })
}

// Elastic Tape's scripts have exit codes of their own, which scripts
// test (JASMIN's "Elastic Tape command-line interface hints"):
//
//	et_put.py, et_rm.py  0 done, 1 bad start-up parameters, 2 error processing the list
//	et_get.py            0 done, 1 bad start-up parameters, 2 cannot write to the target
//	                     directory, 3 error during the download, 4 interrupted,
//	                     5 completed with bad files (listed on stderr)
//	et_ls.py             0 done, 1 bad start-up parameters or configuration,
//	                     2 not authorised for the workspace, 4 interrupted
//
// etExitCode turns tapefs's code (cli.ExitCodes) into the script's.
// unwritable says whether get's target directory cannot be written.
func etExitCode(name string, code int, unwritable func() bool) int {
	if code == ExitOK {
		return 0
	}
	if code == ExitUsage || code == ExitNoDaemon {
		return 1 // no daemon: the start-up cannot go on either
	}
	switch name {
	case "et_get.py":
		switch {
		case code == ExitPartial:
			return 5
		case unwritable():
			return 2
		}
		return 3
	case "et_ls.py":
		return 2 // the workspace or batch is not one the caller may see
	}
	return 2 // put, rm: the list (or the batch) could not be processed
}

// etInterrupted is the code of a script stopped by ^C: 4 where Elastic
// Tape documents one, else tapefs's.
func etInterrupted(name string, code int) int {
	if name == "et_get.py" || name == "et_ls.py" {
		return 4
	}
	return etExitCode(name, code, func() bool { return false })
}

// restoreUnwritable says whether get's -r DIR cannot be written (or made).
func restoreUnwritable(c Command, args []string) bool {
	fs := pflag.NewFlagSet(c.Name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("home", "", "")
	fs.BoolP("help", "h", false, "")
	c.setup(fs)
	if fs.Parse(args) != nil {
		return false
	}
	dir, err := fs.GetString("restore")
	if err != nil || dir == "" {
		return false
	}
	// The nearest directory that exists must take a new file: a probe
	// tells, for root too (a read-only file system, a file in the way).
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil {
			if !st.IsDir() {
				return true
			}
			f, err := os.CreateTemp(d, ".et_get-probe-*")
			if err != nil {
				return true
			}
			f.Close()
			os.Remove(f.Name())
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// commandNamed finds a user command by name.
func commandNamed(name string) (Command, bool) {
	for _, c := range Commands {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// dropETOnly removes -X from args, also from a group of short flags
// ("-vX"), and says whether there was one. The command's own flags tell
// which options take a value, so that a value that happens to be "-X"
// ("-t -X") or to contain an X ("-wXY") is left alone; everything after
// "--" is an argument.
func dropETOnly(c Command, args []string) ([]string, bool) {
	fs := pflag.NewFlagSet(c.Name, pflag.ContinueOnError)
	fs.String("home", "", "")
	c.setup(fs)
	// takesValue: an option that is not a switch (pflag gives switches a
	// value for their bare form).
	takesValue := func(f *pflag.Flag) bool { return f != nil && f.NoOptDefVal == "" }
	var out []string
	dropped := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(out, args[i:]...), dropped
		case strings.HasPrefix(a, "--"):
			out = append(out, a)
			if !strings.Contains(a, "=") && takesValue(fs.Lookup(a[2:])) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		case len(a) > 1 && a[0] == '-':
			kept := "-"
			valueNext := false
			for j, r := range a[1:] {
				if r == 'X' {
					dropped = true
					continue
				}
				kept += string(r)
				if r < 0x80 && takesValue(fs.ShorthandLookup(string(r))) {
					// The rest of the group is the option's value.
					rest := a[1+j+1:]
					kept += rest
					valueNext = rest == ""
					break
				}
			}
			if kept != "-" {
				out = append(out, kept)
			}
			if valueNext && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		default:
			out = append(out, a)
		}
	}
	return out, dropped
}

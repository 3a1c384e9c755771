// Command tapefs is the tapefs daemon and its command line: a near-line
// tape archive used through an ordinary mounted file system.
//
// main.go holds the table of subcommands; each subcommand parses its own
// flags. The daemon (mount, serve) is wired in daemon.go.
package main

import (
	"fmt"
	"github.com/tapefs/tapefs/cli"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// command is one subcommand of tapefs.
type command struct {
	name    string
	summary string
	// run runs the command with the arguments after its name and returns
	// the exit code (cli.ExitCodes: 0 done, 1 failed, 4 bad usage, ...).
	run func(args []string) int
}

// commands lists the subcommands in the order --help shows them.
var commands = append([]command{
	{name: "mount", summary: "run the daemon in the foreground with the FUSE mount", run: runMount},
	{name: "serve", summary: "run the daemon without a mount (for the command line and the API)", run: runServe},
	{name: "catalog", summary: "catalog maintenance with the daemon stopped: copy to PostgreSQL, rebuild from tape, restore a snapshot", run: runCatalog},
}, userCommands()...)

// userCommands are the commands that talk to a running daemon.
func userCommands() []command {
	var out []command
	for _, c := range cli.Commands {
		out = append(out, command{name: c.Name, summary: c.Summary, run: func(args []string) int {
			return cli.Run(c, args, os.Stdout, os.Stderr)
		}})
	}
	return out
}

const usageText = `tapefs - a tape archive used as a mounted file system

Usage:
  tapefs COMMAND [flags] [arguments]

Commands:
%s  version    print the version and the commit it was built from (also --version)
  completion print the shell completion script: completion bash|zsh|fish
  man        write the man pages (tapefs.1, tapefs-COMMAND.1) into a directory: man DIR

Run 'tapefs COMMAND --help' for the flags and examples of a command, and
'tapefs help exit-codes' for what the exit codes mean.

Examples:
  # Mount the archive (a new home is set up on first start: a virtual
  # library of 2 drives and 20 cartridges, and a workspace "default").
  tapefs mount /mnt/tape

  # Archive a directory: it becomes a batch once it has been quiet for
  # the settle time, and shows up as /mnt/tape/default/<batch id>/run1234.
  cp -a run1234 /mnt/tape/default/put/

  # Run the daemon for the command line only, with its home elsewhere.
  tapefs serve --home /srv/tapefs
`

func usage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, usageText, b.String())
}

func main() {
	if filepath.Base(os.Args[0]) == mountHelperName {
		os.Exit(runMountHelper(os.Args[1:]))
	}
	// Run as et_put.py and the like: Elastic Tape's scripts (cli/et.go).
	if name := filepath.Base(os.Args[0]); cli.IsETName(name) {
		os.Exit(cli.RunET(name, os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return cli.ExitUsage
	}
	name := args[0]
	switch name {
	case "--version", "version":
		return runVersion(os.Stdout)
	case "completion":
		return runCompletion(args[1:])
	case "man":
		return runMan(args[1:])
	case "-h", "--help":
		usage(os.Stdout)
		return 0
	case "help":
		if len(args) == 1 {
			usage(os.Stdout)
			return 0
		}
		if args[1] == "exit-codes" {
			fmt.Print(cli.ExitCodes)
			return 0
		}
		name, args = args[1], []string{args[1], "--help"}
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(args[1:])
		}
	}
	if isMountHelperCall(args) {
		return runMountHelper(args)
	}
	if s, ok := cli.Suggest(name, commandNames()); ok {
		fmt.Fprintf(os.Stderr, "tapefs: unknown command %q; did you mean %q?\nRun 'tapefs --help' for the list.\n", name, s)
		return cli.ExitUsage
	}
	fmt.Fprintf(os.Stderr, "tapefs: unknown command %q; run 'tapefs --help' for the list\n", name)
	return cli.ExitUsage
}

// commandNames are every name run accepts first, for "did you mean".
func commandNames() []string {
	out := []string{"version", "help", "completion", "man"}
	for _, c := range commands {
		out = append(out, c.name)
	}
	return out
}

// specs is the command table for completion and man pages: the daemon's
// commands with their flags, then the user commands, then the ones run
// answers itself.
func specs() []cli.Spec {
	out := []cli.Spec{
		{Name: "mount", Summary: commands[0].summary, Usage: "[flags] MOUNTPOINT", Help: mountDescription + "\nExamples:\n" + mountExamples,
			Flags: newDaemonFlags("mount", "", "", "").fs},
		{Name: "serve", Summary: commands[1].summary, Usage: "[flags]", Help: serveDescription + "\nExamples:\n" + serveExamples,
			Flags: newDaemonFlags("serve", "", "", "").fs},
		{Name: "catalog", Summary: commands[2].summary, Usage: "copy|rebuild|restore [--home DIR] [--to URL] [--from-library]",
			Help: "Catalog maintenance; stop the daemon first. See 'tapefs catalog --help'.\n", Words: []string{"copy", "rebuild", "restore"}},
	}
	out = append(out, cli.Specs()...)
	return append(out,
		cli.Spec{Name: "completion", Summary: "print the shell completion script", Usage: "bash|zsh|fish",
			Help: "Prints a completion script for the shell, made from the commands and their flags.\n\nExamples:\n" +
				"  source <(tapefs completion bash)\n  tapefs completion zsh > \"${fpath[1]}/_tapefs\"\n  tapefs completion fish > ~/.config/fish/completions/tapefs.fish\n",
			Words: []string{"bash", "zsh", "fish"}},
		cli.Spec{Name: "man", Summary: "write the man pages into a directory", Usage: "DIR",
			Help: "Writes tapefs.1 and tapefs-COMMAND.1 for each command into DIR, made from the help text.\n\nExamples:\n  tapefs man /usr/local/share/man/man1\n"},
		cli.Spec{Name: "version", Summary: "print the version and the commit it was built from", Help: "Also 'tapefs --version'.\n"},
	)
}

func runCompletion(args []string) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Println("Usage: tapefs completion bash|zsh|fish\n\n  source <(tapefs completion bash)")
		return 0
	}
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "tapefs completion: give the shell: bash, zsh or fish")
		return cli.ExitUsage
	}
	if err := cli.Completion(os.Stdout, args[0], specs()); err != nil {
		fmt.Fprintf(os.Stderr, "tapefs completion: %v\n", err)
		return cli.ExitUsage
	}
	return 0
}

func runMan(args []string) int {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, "tapefs man: give the directory to write the pages into, e.g. tapefs man /usr/local/share/man/man1")
		return cli.ExitUsage
	}
	intro := "tapefs archives directories to a tape library and brings them back, through an ordinary mounted file system and through these commands, which talk to the running daemon.\n\n"
	if _, ex, ok := strings.Cut(usageText, "\nExamples:\n"); ok {
		intro += "Examples:\n" + ex
	}
	files, err := cli.ManPages(args[0], version, intro, specs())
	if err != nil {
		fmt.Fprintf(os.Stderr, "tapefs man: %v\n", err)
		return cli.ExitFailed
	}
	for _, f := range files {
		fmt.Println(f)
	}
	return 0
}

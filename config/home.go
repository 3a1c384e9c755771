package config

import (
	"os"
	"path/filepath"
)

// SystemHome is the home of the system's daemon (the one root runs, and
// the one a user's command line talks to when it finds no daemon of its
// own).
const SystemHome = "/var/lib/tapefs"

// DefaultHome is the daemon's home when neither --home nor TAPEFS_HOME
// names one: SystemHome for root; for anyone else $XDG_DATA_HOME/tapefs
// (the XDG base directory specification: a relative XDG_DATA_HOME is
// invalid and ignored), else ~/.local/share/tapefs, which is the same
// specification's default. The command line looks for a daemon here too,
// so both must use this one function.
func DefaultHome() string {
	return homeFor(os.Geteuid(), os.Getenv, os.UserHomeDir)
}

func homeFor(euid int, getenv func(string) string, userHome func() (string, error)) string {
	if euid == 0 {
		return SystemHome
	}
	if x := getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "tapefs")
	}
	if dir, err := userHome(); err == nil {
		return filepath.Join(dir, ".local", "share", "tapefs")
	}
	return "tapefs"
}

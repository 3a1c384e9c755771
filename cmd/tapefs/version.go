package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at link time by make build (-ldflags "-X main.version=…",
// from git describe); a plain go build leaves "devel", and the commit still
// comes from the build information the go command records.
var version = "devel"

// commit is set at link time too (-X main.commit=…, git rev-parse HEAD):
// builds with GOFLAGS=-buildvcs=false, or from a tarball, have no build
// information to read it from.
var commit = ""

// versionLine is what --version prints: the version, the commit it was
// built from (with "+dirty" when the work tree had changes) and the Go
// version, e.g. "tapefs v0.3.0-12-gabc1234 (commit abc1234def01, go1.26.8)".
func versionLine() string {
	commit, dirty := commit, false
	if bi, ok := debug.ReadBuildInfo(); ok && commit == "" {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if c, ok := strings.CutSuffix(commit, "+dirty"); ok {
		commit, dirty = c, true
	}
	if commit == "" {
		commit = "unknown"
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if dirty {
		commit += "+dirty"
	}
	return fmt.Sprintf("tapefs %s (commit %s, %s)", version, commit, runtime.Version())
}

func runVersion(w io.Writer) int {
	fmt.Fprintln(w, versionLine())
	return 0
}

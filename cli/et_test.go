package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestDropETOnly(t *testing.T) {
	put, _ := commandNamed("put")
	get, _ := commandNamed("get")
	for _, tc := range []struct {
		c       Command
		in, out []string
		dropped bool
	}{
		{put, []string{"-X", "-v", "-f", "list"}, []string{"-v", "-f", "list"}, true},
		{put, []string{"-vX", "-l", "log", "dir"}, []string{"-v", "-l", "log", "dir"}, true},
		{put, []string{"-Xc", "dir"}, []string{"-c", "dir"}, true},
		{put, []string{"-t", "-X", "dir"}, []string{"-t", "-X", "dir"}, false},
		{put, []string{"-wXY", "dir"}, []string{"-wXY", "dir"}, false},
		{put, []string{"-vwX", "dir"}, []string{"-vwX", "dir"}, false},
		{put, []string{"--tag", "-X", "-X", "dir"}, []string{"--tag", "-X", "dir"}, true},
		{put, []string{"--", "-X"}, []string{"--", "-X"}, false},
		{get, []string{"-b", "7", "-r", "/tmp/r", "-t", "8", "-X"}, []string{"-b", "7", "-r", "/tmp/r", "-t", "8"}, true},
		{get, []string{"-", "-Xé"}, []string{"-", "-é"}, true},
	} {
		out, dropped := dropETOnly(tc.c, tc.in)
		if !reflect.DeepEqual(out, tc.out) || dropped != tc.dropped {
			t.Errorf("%s %q: got %q %v, want %q %v", tc.c.Name, tc.in, out, dropped, tc.out, tc.dropped)
		}
	}
}

func TestETNamesHaveCommands(t *testing.T) {
	if len(ETNames) != len(etCommands) {
		t.Fatalf("ETNames %v and etCommands %v disagree", ETNames, etCommands)
	}
	for _, n := range ETNames {
		if _, ok := commandNamed(etCommands[n]); !ok {
			t.Errorf("%s runs %q, which is not a command", n, etCommands[n])
		}
	}
}

// Elastic Tape's documented exit codes, from tapefs's.
func TestETExitCodes(t *testing.T) {
	no := func() bool { return false }
	yes := func() bool { return true }
	for _, tc := range []struct {
		name       string
		code       int
		unwritable func() bool
		want       int
	}{
		{"et_put.py", ExitOK, no, 0},
		{"et_put.py", ExitUsage, no, 1},
		{"et_put.py", ExitNoDaemon, no, 1},
		{"et_put.py", ExitFailed, no, 2},
		{"et_put.py", ExitPartial, no, 2},
		{"et_rm.py", ExitFailed, no, 2},
		{"et_get.py", ExitUsage, no, 1},
		{"et_get.py", ExitFailed, yes, 2},
		{"et_get.py", ExitFailed, no, 3},
		{"et_get.py", ExitPartial, no, 5},
		{"et_ls.py", ExitFailed, no, 2},
		{"et_ls.py", ExitUsage, no, 1},
	} {
		if got := etExitCode(tc.name, tc.code, tc.unwritable); got != tc.want {
			t.Errorf("%s after tapefs exit %d: %d, want %d", tc.name, tc.code, got, tc.want)
		}
	}
	if etInterrupted("et_get.py", ExitFailed) != 4 || etInterrupted("et_ls.py", ExitFailed) != 4 {
		t.Error("an interrupted et_get.py or et_ls.py does not exit 4")
	}
	get, _ := commandNamed("get")
	dir := t.TempDir()
	if restoreUnwritable(get, []string{"-b", "1", "-r", filepath.Join(dir, "new", "sub")}) {
		t.Error("a restore directory that can be made is called unwritable")
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if !restoreUnwritable(get, []string{"-b", "1", "-r", filepath.Join(file, "sub")}) {
		t.Error("a restore directory under a file is called writable")
	}
}

package cli

import (
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

package filetype

import (
	"io/fs"
	"testing"
)

func TestUnarchivable(t *testing.T) {
	for m, want := range map[fs.FileMode]string{
		fs.ModeNamedPipe:                  "named pipe",
		fs.ModeSocket:                     "socket",
		fs.ModeDevice:                     "device",
		fs.ModeDevice | fs.ModeCharDevice: "device",
		fs.ModeIrregular:                  "special",
	} {
		if got := Unarchivable(m); got != want {
			t.Errorf("%v: %q, want %q", m, got, want)
		}
	}
}

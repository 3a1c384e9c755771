package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// A list file names one path per line, or, with -0, one per NUL-terminated
// record (as `find -print0` writes): the only way to list a name that holds
// a newline. A line list drops the CR of a DOS line end; a NUL list takes
// every byte as it is. Both readers of lists (put -f, get -f) scan with
// scanList, so they agree on what a list says.

// listFile is a list file named by -f, and whether -0 says it is NUL
// separated.
type listFile struct {
	name string
	null bool
}

// maxListLine bounds a line of a list file (a path is at most 4,096 bytes
// on Linux; the margin is for the CR of a DOS file and blanks).
const maxListLine = 64 << 10

// scanList calls fn with each item of the list r and its number (line, or
// record with null) from 1; name is for messages. An error of fn stops it.
func scanList(r io.Reader, name string, null bool, fn func(n int, item string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxListLine)
	if null {
		sc.Split(splitNUL)
	}
	n := 0
	for sc.Scan() {
		n++
		item := sc.Text()
		if !null {
			item = strings.TrimSuffix(item, "\r")
		}
		if err := fn(n, item); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			what := "line"
			if null {
				what = "entry"
			}
			return fmt.Errorf("%s:%d: %s longer than %d bytes: not a list of paths", name, n+1, what, maxListLine)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// splitNUL is bufio.ScanLines for NUL-terminated records; a last record
// without its NUL counts.
func splitNUL(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// writeList writes paths as a list that scanList reads back: NUL
// terminated with null, else one per line. It reports false when a path
// holds a newline and null is not set (the list would be wrong).
func writeList(w io.Writer, paths []string, null bool) bool {
	ok := true
	for _, p := range paths {
		if null {
			fmt.Fprintf(w, "%s\x00", p)
			continue
		}
		if strings.ContainsAny(p, "\n") {
			ok = false
		}
		fmt.Fprintln(w, p)
	}
	return ok
}

package test

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// A skipped end-to-end test is never silent: go test shows nothing of a
// passing package, so every skip is collected here, printed when the
// suite ends, and appended to $TAPEFS_SKIP_REPORT, which make test lists
// at the end of its run.
var skips struct {
	sync.Mutex
	list []string
}

// skip skips the test and records why; in CI it fails the test instead,
// since CI installs everything (make deps) and runs as root.
func skip(t *testing.T, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatalf("CI must not skip: %s", reason)
	}
	skips.Lock()
	skips.list = append(skips.list, t.Name()+": "+reason)
	skips.Unlock()
	t.Skip(reason)
}

// reportSkips prints the skipped tests and appends them to the report
// file; it returns an error only when the file cannot be written.
func reportSkips() error {
	skips.Lock()
	defer skips.Unlock()
	if len(skips.list) == 0 {
		return nil
	}
	sort.Strings(skips.list)
	fmt.Fprintf(os.Stderr, "e2e: %d end-to-end tests SKIPPED:\n  %s\n", len(skips.list), strings.Join(skips.list, "\n  "))
	path := os.Getenv("TAPEFS_SKIP_REPORT")
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	for _, s := range skips.list {
		// Without the test name: make test counts the same reason once.
		_, reason, _ := strings.Cut(s, ": ")
		fmt.Fprintln(f, "test/: "+reason)
	}
	return f.Close()
}

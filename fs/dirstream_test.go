package fs

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// pagedNames serves names 0..n-1 in pages of 3, every fifth one removed.
func pagedNames(n int) func(_ context.Context, cursor string) ([]listed, string, bool, syscall.Errno) {
	return func(_ context.Context, cursor string) ([]listed, string, bool, syscall.Errno) {
		start := 0
		if cursor != "" {
			fmt.Sscan(cursor, &start)
			start++
		}
		var items []listed
		next := cursor
		i := start
		for ; i < n && i < start+3; i++ {
			next = fmt.Sprint(i)
			if i%5 == 4 {
				continue
			}
			items = append(items, listed{de: fuse.DirEntry{Name: fmt.Sprintf("f%02d", i), Mode: syscall.S_IFREG, Ino: uint64(i + 100)}})
		}
		return items, next, i < n, 0
	}
}

func readAll(t *testing.T, d *catalogDir) []string {
	t.Helper()
	var names []string
	for {
		de, errno := d.Readdirent(context.Background())
		if errno != 0 {
			t.Fatal(errno)
		}
		if de == nil {
			return names
		}
		if de.Off != uint64(len(names)+1) {
			t.Fatalf("entry %s has offset %d, want %d", de.Name, de.Off, len(names)+1)
		}
		names = append(names, de.Name)
	}
}

func TestCatalogDirPages(t *testing.T) {
	d := &catalogDir{fetch: pagedNames(14)}
	names := readAll(t, d)
	want := []string{"f00", "f01", "f02", "f03", "f05", "f06", "f07", "f08", "f10", "f11", "f12", "f13"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want %v", names, want)
	}
	// rewinddir, then seek to the 5th entry.
	if errno := d.Seekdir(context.Background(), 0); errno != 0 {
		t.Fatal(errno)
	}
	if again := readAll(t, d); fmt.Sprint(again) != fmt.Sprint(want) {
		t.Fatalf("after rewind %v", again)
	}
	if errno := d.Seekdir(context.Background(), 5); errno != 0 {
		t.Fatal(errno)
	}
	de, _ := d.Readdirent(context.Background())
	if de == nil || de.Name != want[5] || de.Off != 6 {
		t.Fatalf("after seek to 5: %+v", de)
	}
}

func TestCatalogDirEmptyPages(t *testing.T) {
	// Pages where every entry was removed must not end the listing.
	calls := 0
	d := &catalogDir{fetch: func(_ context.Context, cursor string) ([]listed, string, bool, syscall.Errno) {
		calls++
		if calls < 4 {
			return nil, fmt.Sprint(calls), true, 0
		}
		return []listed{{de: fuse.DirEntry{Name: "last"}}}, "x", false, 0
	}}
	if names := readAll(t, d); fmt.Sprint(names) != "[last]" {
		t.Fatalf("listed %v", names)
	}
}

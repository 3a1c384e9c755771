package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/api"
)

// Reading from another copy (issue 11): in a workspace with copies = 2,
// the first copy of a file is damaged in its cartridge's tape file. md5sum
// through the mount gives the right sum, an event names the bad cartridge
// and the file, the bad copy is rewritten elsewhere and replaced, and
// tapefs verify then finds every copy good.
func TestReadFromAnotherCopy(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, append(fastFlags(), "--cartridges", "4")...)
	// The recall of the damaged copy says so at error level: provoked.
	d.allowErrors("md5 mismatch", "CRC32C mismatch")
	o := cliOpts{home: d.home}
	cliOK(t, o, "workspace", "set-copies", "default", "2")
	src, sums := copiesTree(t, "run")
	id := d.cpSynced(src, 2*time.Minute)
	n, _ := strconv.ParseUint(id, 10, 64)
	checkTwoCopies(t, o, n, 2)

	var big api.FileInfo
	for _, f := range filesJSON(t, o, n) {
		if f.Path == "run/a/big.dat" {
			big = f
		}
	}
	if len(big.Copies) != 2 {
		t.Fatalf("run/a/big.dat: copies %+v", big.Copies)
	}
	bad := big.Copies[0]
	tf := filepath.Join(d.home, "library", bad.VOLSER, fmt.Sprintf("%06d.tar", bad.TapeFile))
	f, err := os.OpenFile(tf, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 16 bytes in the middle: a reader streaming the copy would have had
	// them long before the md5 at the end says they are wrong.
	junk := []byte("damaged on tape!")
	if _, err := f.WriteAt(junk, bad.Offset+3<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cliOK(t, o, "cache", "evict", "-b", id)

	got := sh(t, filepath.Join(d.ws("default"), id), "md5sum run/a/big.dat run/hard.dat")
	for _, p := range []string{"run/a/big.dat", "run/hard.dat"} {
		if !strings.Contains(got, sums[p]+"  "+p) {
			t.Fatalf("md5sum through the mount:\n%s\nwant %s for %s", got, sums[p], p)
		}
	}
	named := false
	for _, e := range d.logEvents("") {
		if e.str("event") == "copy-bad" && e.str("volser") == bad.VOLSER && strings.Contains(e.str("message"), "run/a/big.dat") {
			named = true
		}
	}
	if !named {
		t.Errorf("no copy-bad event names cartridge %s and run/a/big.dat", bad.VOLSER)
	}
	d.waitEvents("copy-repaired", 1, time.Minute)
	for _, f := range filesJSON(t, o, n) {
		for _, c := range f.Copies {
			if c == bad {
				t.Fatalf("%s still refers to the damaged copy %+v after the repair", f.Path, c)
			}
		}
	}
	checkTwoCopies(t, o, n, 2)
	cliOK(t, o, "verify", "-b", id)
	cliOK(t, o, "cache", "evict", "-b", id)
	md5Mount(t, d, id, sums)
}

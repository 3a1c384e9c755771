package test

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/api"
)

// cacheListing names every file under the home's cache with its size: a
// read-back from tape must leave it as it was.
func cacheListing(t *testing.T, home string) string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(home, "cache"), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			fi, err := e.Info()
			if err != nil {
				return err
			}
			out = append(out, p+" "+strconv.FormatInt(fi.Size(), 10))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestVerifyTapeCopies puts two batches, reads their tape copies back with
// tapefs verify (by batch, cartridge and workspace: all pass), then flips
// bytes inside one member in its cartridge file under HOME/library: verify
// of that batch, its cartridge and its workspace exit 1 naming the file,
// the cartridge and the tape file, the other batch still passes, and the
// cache is not touched (the batches were evicted first: a verify that
// cached would leave objects behind).
func TestVerifyTapeCopies(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, fastFlags()...)
	d.allowErrors("tape-damaged", "damaged copies on tape", "damaged copy on tape")
	o := cliOpts{home: d.home}
	var ids []string
	for i, name := range []string{"first", "second"} {
		src := filepath.Join(t.TempDir(), name)
		if err := os.Mkdir(src, 0o755); err != nil {
			t.Fatal(err)
		}
		writeBig(t, filepath.Join(src, "big.dat"), 2<<20+5, uint64(20+i))
		writeBig(t, filepath.Join(src, "small.dat"), 7000, uint64(30+i))
		ids = append(ids, d.cpSynced(src, 2*time.Minute))
	}
	id1, _ := strconv.ParseUint(ids[0], 10, 64)
	big := fileByPath(t, filesJSON(t, o, id1), "first/big.dat")
	if len(big.Copies) == 0 {
		t.Fatalf("first/big.dat has no tape copy: %+v", big)
	}
	c := big.Copies[0]

	// Good copies pass, in every form.
	r := cliOK(t, o, "verify", "-b", ids[0])
	if !strings.Contains(r.stdout, "read back 2 tape copies") || !strings.Contains(r.stdout, "0 damaged") {
		t.Errorf("verify -b %s: want 2 copies read back, 0 damaged\n%s", ids[0], r)
	}
	cliOK(t, o, "verify", "--cartridge", c.VOLSER)
	r = cliOK(t, o, "verify", "--workspace", "default")
	if !strings.Contains(r.stdout, "read back 4 tape copies") {
		t.Errorf("verify --workspace default: want 4 copies read back\n%s", r)
	}
	st := cliOK(t, o, "library", "status")
	if !lineHas(st.stdout, c.VOLSER, time.Now().Format("2006-01-02")) {
		t.Errorf("library status should show when %s was read back\n%s", c.VOLSER, st)
	}

	// Damage the member inside the cartridge file, evict, and read back.
	tapeFile := filepath.Join(d.home, "library", c.VOLSER, strconv.Itoa(1000000 + c.TapeFile)[1:]+".tar")
	if _, err := os.Stat(tapeFile); err != nil {
		t.Fatalf("the tape file of first/big.dat: %v", err)
	}
	flipBytes(t, tapeFile, c.Offset+1<<20)
	d.evict()
	before := cacheListing(t, d.home)
	r = runTapefs(t, o, "verify", "-b", ids[0])
	wantCode(t, r, 1)
	wantLine := `"first/big.dat" on cartridge ` + c.VOLSER + " tape file " + strconv.Itoa(c.TapeFile)
	if !strings.Contains(r.stdout, "DAMAGED batch "+ids[0]) || !strings.Contains(r.stdout, wantLine) || !strings.Contains(r.stdout, "md5 sealed "+big.MD5) {
		t.Errorf("verify -b %s should name first/big.dat, %s and its sealed md5\n%s", ids[0], wantLine, r)
	}
	if strings.Contains(r.stdout, "small.dat") {
		t.Errorf("verify named an undamaged file\n%s", r)
	}
	// Found by the CRC32C recorded with the md5; --md5 compares the md5 too.
	if !strings.Contains(r.stdout, "CRC32C sealed ") {
		t.Errorf("verify -b %s should say the CRC32C sealed and read\n%s", ids[0], r)
	}
	r = runTapefs(t, o, "verify", "-b", ids[0], "--md5")
	wantCode(t, r, 1)
	if !strings.Contains(r.stdout, "md5 sealed "+big.MD5+", read ") || strings.Contains(r.stdout, "md5 sealed "+big.MD5+", read "+big.MD5) {
		t.Errorf("verify -b %s --md5 should give the md5 sealed and the md5 read\n%s", ids[0], r)
	}
	cliOK(t, o, "verify", "-b", ids[1])
	r = runTapefs(t, o, "verify", "--cartridge", c.VOLSER)
	wantCode(t, r, 1)
	if !strings.Contains(r.stdout, wantLine) {
		t.Errorf("verify --cartridge %s should name first/big.dat\n%s", c.VOLSER, r)
	}
	r = runTapefs(t, o, "verify", "-w", "default", "-F", "json")
	wantCode(t, r, 1)
	if !strings.Contains(r.stdout, `"md5_sealed": "`+big.MD5+`"`) || !strings.Contains(r.stdout, `"cartridge": "`+c.VOLSER+`"`) {
		t.Errorf("verify -w default -F json should report the damaged copy\n%s", r)
	}
	if after := cacheListing(t, d.home); after != before {
		t.Errorf("verify changed the cache:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if f := fileByPath(t, filesJSON(t, o, id1), "first/big.dat"); f.State != "offline" {
		t.Errorf("first/big.dat is %s after verify, want offline (not cached)", f.State)
	}
	st = cliOK(t, o, "library", "status")
	if !lineHas(st.stdout, c.VOLSER, "(1 damaged)") {
		t.Errorf("library status should show the damage found on %s\n%s", c.VOLSER, st)
	}
	if ev := d.logEvents(""); !hasEvent(ev, "tape-damaged", c.VOLSER) {
		t.Errorf("no tape-damaged event naming %s in the daemon's log", c.VOLSER)
	}
	// The damage is a failure of the feed (and of the page's events).
	if feed := string(httpGetOK(t, statusURL(d)+"/feed.atom").body); !strings.Contains(feed, `term="tape-damaged"`) {
		t.Errorf("the feed has no tape-damaged entry:\n%s", clip(feed, 3000))
	}
	// The metrics: when the cartridge was read back, and the damage found
	// since this run of the daemon started (four verifies, one bad copy).
	m := string(httpGetOK(t, statusURL(d)+"/metrics").body)
	if !strings.Contains(m, `tapefs_cartridge_last_verified_seconds{volser="`+c.VOLSER+`"}`) || !strings.Contains(m, "tapefs_tape_verify_failures_total 4") {
		t.Errorf("/metrics should show the read-back of %s and 4 failures:\n%s", c.VOLSER, grepLines(m, "verif"))
	}
	// Usage: tape verification needs a scope.
	wantCode(t, runTapefs(t, o, "verify"), int(api.ExitUsage))
}

// lineHas says whether one line of s contains every part.
func lineHas(s string, parts ...string) bool {
	for _, l := range strings.Split(s, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}

func hasEvent(evs []logEvent, kind, volser string) bool {
	for _, e := range evs {
		if e.str("event") == kind && e.str("volser") == volser {
			return true
		}
	}
	return false
}

// grepLines keeps the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

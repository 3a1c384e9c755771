package test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRejectedEntryEverywhere: `cp -a` of 12 MiB into put/ of a workspace
// with a 10 MiB quota returns 0 (the copy itself succeeded), and the
// refusal is then found wherever people look: `tapefs status`, `tapefs
// ls` (-H: a section; otherwise a note on stderr), the batches page, the
// Failed page and the overview — with its reason in human sizes, once
// (also after the entry settled and was refused again), and not as an
// entry "settling". The pages are checked in headless Chromium at
// 1280 px: no horizontal overflow, the Atom feed linked from the head.
func TestRejectedEntryEverywhere(t *testing.T) {
	t.Parallel()
	// A slow tape (20 MiB/s real), so that the layout is measured while a
	// drive writes (its row then has a state, a cartridge and a rate).
	d := startDaemon(t, append(fastFlags(), "--time-scale", "0.05", "--tape-speed", "1M")...)
	o := cliOpts{home: d.home}
	cliOK(t, o, "workspace", "create", "quota10", "--quota", "10M", "--owner", "0", "--group", "0")
	src := filepath.Join(t.TempDir(), "big")
	writeFiles(t, src, map[string]int{"a.dat": 8 << 20, "b.dat": 4 << 20})
	// cp -a returns 0: the refusal comes at sealing, after the copy.
	sh(t, "/", "cp -a "+q(src)+" "+q(d.put("quota10")+"/"))
	entry := filepath.Join(d.put("quota10"), "big")
	waitFor(t, 30*time.Second, "the entry rejected", func() (bool, string) {
		st, _ := xattr(entry, "user.tapefs.state")
		return st == "rejected", st
	})
	// A change settles and is refused again for the same cause: still
	// one rejection.
	sh(t, "/", "touch "+q(entry+"/a.dat"))
	time.Sleep(2500 * time.Millisecond) // over the settle time (1 s) of fastFlags
	waitFor(t, 30*time.Second, "the entry rejected again", func() (bool, string) {
		st, _ := xattr(entry, "user.tapefs.state")
		return st == "rejected", st
	})
	reason := "needs 12.0 MiB but workspace quota10 has 10.0 MiB of its 10.0 MiB quota left; remove batches or raise the quota"
	if got := mustXattr(t, entry, "user.tapefs.error"); !strings.Contains(got, reason) {
		t.Errorf("user.tapefs.error %q, want %q", got, reason)
	}

	t.Run("cli", func(t *testing.T) {
		r := cliOK(t, o, "status", "-w", "quota10")
		if strings.Count(r.stdout, "quota10/put/big") != 1 || !strings.Contains(r.stdout, "REJECTED") || !strings.Contains(r.stdout, reason) ||
			!strings.Contains(r.stdout, "12.0 MiB") || !strings.Contains(r.stdout, "seal it again") {
			t.Errorf("status does not list the rejected entry once with its reason, size and what to do:\n%s", r)
		}
		r = cliOK(t, o, "ls", "-w", "quota10", "-H")
		if strings.Count(r.stdout, "quota10/put/big") != 1 || !strings.Contains(r.stdout, reason) {
			t.Errorf("ls -H does not list the rejected entry:\n%s", r)
		}
		r = cliOK(t, o, "ls", "-w", "quota10")
		if r.stdout != "" || !strings.Contains(r.stderr, "quota10/put/big (12.0 MiB) is rejected, not archived: "+reason) {
			t.Errorf("ls without -H: want no batch lines and a note on stderr:\n%s", r)
		}
	})

	base := statusURL(d)
	t.Run("pages", func(t *testing.T) {
		for _, path := range []string{"/batches?workspace=quota10", "/batches?state=FAILED"} {
			body := string(httpGetOK(t, base+path).body)
			if strings.Count(body, "put/big") != 1 || !strings.Contains(body, reason) || !strings.Contains(body, "12.0 MiB") {
				t.Errorf("%s does not list the rejected entry once with reason and size:\n%s", path, clip(body, 6000))
			}
		}
		body := string(httpGetOK(t, base+"/batches?workspace=quota10").body)
		if !strings.Contains(body, "0 B of its 10.0 MiB quota") {
			t.Errorf("the batches page of the workspace does not show its quota:\n%s", clip(body, 4000))
		}
		ov := string(httpGetOK(t, base+"/").body)
		v := parsePage(ov)
		if v.Pending != 0 {
			t.Errorf("the overview counts %d entries as settling; the rejected one is not settling", v.Pending)
		}
		if !regexp.MustCompile(`put/ refused</span>\s*<span class="v">1</span>`).MatchString(ov) {
			t.Errorf("the overview has no 'put/ refused 1' tile:\n%s", clip(ov, 4000))
		}
		if n := strings.Count(ov, "put/big rejected"); n != 1 {
			t.Errorf("the overview lists the rejection %d times, want once (not once per retry)", n)
		}
		feed := fetchFeed(t, base, "?workspace=quota10")
		n := 0
		for _, e := range feed.Entries {
			if strings.Contains(e.Title, "rejected") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the feed has %d rejected entries, want 1", n)
		}
	})

	t.Run("layout_1280", func(t *testing.T) {
		br := newBrowser(t)
		out := testOutDir(t)
		lp := layoutProxy(t, base)
		// 100 MiB to tape at 20 MiB/s: the pages are read while a drive
		// writes them.
		busy := filepath.Join(t.TempDir(), "busy")
		writeFiles(t, busy, map[string]int{"x.dat": 100 << 20})
		put := tapefsCmd(t, o, "put", "-w", "default", "-t", "busy", busy)
		if err := put.Start(); err != nil {
			t.Fatal(err)
		}
		defer put.Wait()
		// While the drive writes the batch, its page shows how far it is
		// (the catalog's count moves only at the filemark) and at what
		// rate: never 0 % on tape then.
		progRE := regexp.MustCompile(`<progress max="100" value="([0-9.]+)"></progress> ([0-9.]+ [KMG]iB)`)
		var seen string
		waitFor(t, 60*time.Second, "batch 1's page showing the drive writing it", func() (bool, string) {
			r := httpDo(t, http.MethodGet, base+"/batches/1")
			if r.code == http.StatusNotFound {
				return false, "no batch 1 yet"
			}
			page := string(r.body)
			m := progRE.FindStringSubmatch(page)
			if strings.Contains(page, "writing on drive") && m != nil && m[1] != "0" && m[1] != "100" {
				seen = m[0]
				return true, ""
			}
			if strings.Contains(page, "CACHED_SYNCED") {
				t.Fatalf("batch 1 reached tape before its page showed it being written")
			}
			return false, clip(page, 400)
		})
		t.Logf("batch 1 while written: %s", seen)
		waitFor(t, 60*time.Second, "a drive writing", func() (bool, string) {
			ov := string(httpGetOK(t, base+"/").body)
			return strings.Contains(ov, "dr-writing") && strings.Contains(ov, "MiB/s"), ""
		})
		for _, path := range []string{"/", "/batches", "/batches?state=FAILED", "/batches?workspace=quota10"} {
			dom := string(br.run("--dump-dom", "--window-size=1280,1000", "--virtual-time-budget=3000", lp+path))
			m := regexp.MustCompile(`data-layout="(\d+) (\d+)([^"]*)"`).FindStringSubmatch(dom)
			if m == nil {
				t.Errorf("%s: the layout probe did not run:\n%s", path, clip(dom, 3000))
				continue
			}
			t.Logf("%s at 1280 px: width %s (over 1000: something past its panel), clientWidth %s", path, m[1], m[2])
			if m[1] != m[2] {
				t.Errorf("%s overflows horizontally at 1280 px: width %s, clientWidth %s; elements past their panel or the viewport:%s", path, m[1], m[2], m[3])
			}
			if !strings.Contains(dom, `rel="alternate" type="application/atom+xml"`) {
				t.Errorf("%s has no <link rel=alternate type=application/atom+xml> to the feed", path)
			}
		}
		// One size formatter: the command line and the page print the
		// batch's size alike.
		if err := put.Wait(); err != nil {
			t.Fatalf("tapefs put of the busy batch: %v", err)
		}
		if r := cliOK(t, o, "ls", "-w", "default", "-H"); !regexp.MustCompile(`(?m)^1\s+busy\s+\S+\s+\d+\s+100\.0 MiB\s`).MatchString(r.stdout) {
			t.Errorf("ls -H does not print 100.0 MiB for the 100 MiB batch:\n%s", r)
		}
		if page := string(httpGetOK(t, base+"/batches/1").body); !strings.Contains(page, "100.0 MiB") {
			t.Errorf("the batch page does not print 100.0 MiB for the 100 MiB batch")
		}
		br.screenshot(base+"/batches?state=FAILED", filepath.Join(out, "failed.png"))
		br.screenshot(base+"/", filepath.Join(out, "overview.png"))
	})

	// Removing the entry ends it.
	if err := os.RemoveAll(entry); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the removed entry forgotten", func() (bool, string) {
		r := cliOK(t, o, "status", "-w", "quota10")
		return !strings.Contains(r.stdout, "put/big"), r.stdout
	})
}

// layoutProbe, added to a page by layoutProxy, writes the document's
// scroll and client widths, and the elements reaching past its right edge,
// into an attribute of <body> that --dump-dom shows.
const layoutProbe = `<script>
addEventListener('load', function () {
  var d = document.documentElement, over = [];
  document.querySelectorAll('body *').forEach(function (e) {
    var r = e.getBoundingClientRect(), p = e.closest('.panel');
    var edge = p && p !== e ? p.getBoundingClientRect().right : d.clientWidth;
    if (r.width > 0 && r.right > edge + 0.5 && over.length < 12) over.push(' ' + e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') + '(' + Math.round(r.right) + '>' + Math.round(edge) + ')');
  });
  // Past the viewport or past its panel both count as overflow: the
  // document's width alone misses a table cut off by its panel.
  var w = over.length ? d.scrollWidth + 1000 : d.scrollWidth;
  document.body.setAttribute('data-layout', w + ' ' + d.clientWidth + over.join(''));
});
</script>`

// layoutProxy serves the status page at base with the probe added. The
// page itself allows no script (its Content-Security-Policy); the proxy
// drops that header for the measurement only.
func layoutProxy(t *testing.T, base string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(base + r.URL.RequestURI())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		page := strings.Replace(string(body), "</body>", layoutProbe+"</body>", 1)
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		io.WriteString(w, page)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

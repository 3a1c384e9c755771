package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// The status page of the running daemon (--http), end to end: headless
// Chromium renders its pages while a batch moves from put/ to tape, the
// Atom feed and the Prometheus metrics are fetched and parsed, a listener
// off loopback needs its token, and user text is escaped on the way to
// the browser.

// webTree writes a small tree at root and returns its bytes.
func webTree(t *testing.T, root string) int64 {
	t.Helper()
	r := rand.New(rand.NewPCG(11, 13))
	files := map[string]int{"readme.txt": 300, "data/blob.bin": 256 << 10, "data/notes.md": 5000, "data/deep/empty": 0}
	var total int64
	for rel, size := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		total += int64(size)
	}
	return total
}

// TestStatusPage watches a batch go from put/ to tape on the overview in
// headless Chromium, then checks the feed and the metrics of the same
// daemon.
func TestStatusPage(t *testing.T) {
	t.Parallel()
	// The entry is held in put/ by a file kept open (so the page can be
	// seen with it pending, whatever the speed of the browser); the flush
	// age leaves the batch CACHED a few seconds.
	d := startDaemon(t, "--time-scale", "0", "--settle", "2s", "--flush-age", "5s")
	base := statusURL(d)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("the default status page listens on %s; want loopback (127.0.0.1)", base)
	}
	t.Logf("status page at %s", base)

	const entry = "webpage-tree"
	const held, more = "still being written\n", "done\n"
	src := filepath.Join(t.TempDir(), entry)
	size := webTree(t, src) + int64(len(held)+len(more))
	before := d.batchIDs("default")

	var pageID string
	copied := false
	var open *os.File // a file of the entry, open for writing
	release := func() {
		if open == nil {
			return
		}
		_, err := open.WriteString(more)
		if cerr := open.Close(); err == nil {
			err = cerr
		}
		open = nil
		if err != nil {
			t.Errorf("write and close %s/%s/%s: %v", d.put("default"), entry, "held.txt", err)
		}
	}
	t.Run("overview_in_chromium", func(t *testing.T) {
		br := newBrowser(t)
		out := testOutDir(t)
		if v := parsePage(br.dumpDOM(base + "/")); v.Refresh {
			t.Errorf("the overview of an idle daemon refreshes itself (put/ pending %d, batches %v); want no refresh meta", v.Pending, v.Batches)
		}
		sh(t, "/", "cp -a "+q(src)+" "+q(d.put("default")+"/"))
		f, err := os.OpenFile(filepath.Join(d.put("default"), entry, "held.txt"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			t.Fatalf("create a file in the entry in put/: %v", err)
		}
		open = f
		copied = true
		if _, err := f.WriteString(held); err != nil {
			t.Fatalf("write into put/: %v", err)
		}
		t0 := time.Now()
		v := parsePage(br.dumpDOM(base + "/"))
		if v.Pending < 1 || !v.Refresh {
			t.Errorf("while an entry is being written in put/, the overview shows put/ pending %d and refresh meta %v; want at least 1 and a refresh", v.Pending, v.Refresh)
		}
		if _, ok := v.batch(entry); ok {
			t.Errorf("the overview lists a batch of %s while a file of it is still open for writing", entry)
		}
		release()

		var seen []string // what the page said of the batch, in order
		note := func(s string) {
			if len(seen) == 0 || !strings.HasPrefix(seen[len(seen)-1], s+" (") {
				seen = append(seen, fmt.Sprintf("%s (%.1fs)", s, time.Since(t0).Seconds()))
			}
		}
		note(fmt.Sprintf("held open: not listed, put/ pending %d, refresh %v", v.Pending, v.Refresh))
		movingRows := 0
		var last string
		for {
			if time.Since(t0) > 60*time.Second {
				t.Fatalf("after 60s the overview has not shown the batch of %s as CACHED_SYNCED; seen: %v\nlast DOM:\n%s",
					entry, seen, clip(last, 6000))
			}
			last = br.dumpDOM(base + "/")
			v := parsePage(last)
			b, ok := v.batch(entry)
			state := "not listed"
			if ok {
				state = b.State
				pageID = b.ID
			}
			note(fmt.Sprintf("%s, put/ pending %d, refresh %v", state, v.Pending, v.Refresh))
			moving := v.Pending > 0 || ok && movingState(b.State)
			if moving && !v.Refresh {
				t.Errorf("the overview shows something moving (batch %s, put/ pending %d) but has no refresh meta", state, v.Pending)
			}
			if ok && movingState(b.State) {
				movingRows++
			}
			if state == "FAILED" {
				t.Fatalf("the batch of %s is FAILED on the overview; seen: %v", entry, seen)
			}
			if state == "CACHED_SYNCED" {
				break
			}
		}
		t.Logf("the overview showed the batch: %s", strings.Join(seen, " → "))
		if movingRows == 0 {
			// Timing: a slow browser may miss the CACHED seconds.
			t.Logf("no rendering caught the batch itself on its way (CACHED or SYNCING)")
		}

		// Once everything is still, the page stops refreshing itself.
		t1 := time.Now()
		for {
			v := parsePage(br.dumpDOM(base + "/"))
			if !v.Refresh {
				t.Logf("the overview stopped refreshing %v after the batch was CACHED_SYNCED", time.Since(t1).Round(time.Millisecond))
				break
			}
			if time.Since(t1) > 20*time.Second {
				dom := br.dumpDOM(base + "/")
				t.Errorf("20s after the batch is CACHED_SYNCED and nothing else to do, the overview still refreshes itself (put/ pending %d, batches %v)\n%s",
					v.Pending, v.Batches, clip(dom[max(0, strings.Index(dom, "<body")):], 8000))
				break
			}
			time.Sleep(500 * time.Millisecond)
		}

		// The batch page shows the batch and its files.
		dom := br.dumpDOM(base + "/batches/" + pageID)
		for _, want := range []string{"Batch " + pageID, "CACHED_SYNCED", entry + "/data/blob.bin", entry + "/readme.txt"} {
			if !strings.Contains(dom, want) {
				t.Errorf("the page of batch %s does not show %q", pageID, want)
			}
		}
		br.screenshot(base+"/", filepath.Join(out, "overview.png"))
		br.screenshot(base+"/batches/"+pageID, filepath.Join(out, "batch-"+pageID+".png"))
	})

	release() // if the subtest stopped before
	if !copied {
		t.Fatal("the tree was not copied into put/; the feed and metrics checks need its batch")
	}
	// The rest works on the batch as the mount sees it.
	id := d.waitSynced("default", before, 60*time.Second)
	if pageID != "" && pageID != id {
		t.Errorf("the overview showed the entry as batch %s; the mount has batch %s", pageID, id)
	}

	t.Run("feed", func(t *testing.T) {
		f1 := fetchFeed(t, base, "")
		f2 := fetchFeed(t, base, "")
		fws := fetchFeed(t, base, "?workspace=default")
		link := base + "/batches/" + id
		find := func(f atomDoc, what string, match func(atomEntry) bool) atomEntry {
			t.Helper()
			for _, e := range f.Entries {
				if e.alternate() == link && match(e) {
					return e
				}
			}
			var have []string
			for _, e := range f.Entries {
				have = append(have, fmt.Sprintf("%s %q %s", e.ID, e.Title, e.alternate()))
			}
			t.Fatalf("the feed has no entry for the %s of batch %s linking to %s; entries:\n%s", what, id, link, strings.Join(have, "\n"))
			return atomEntry{}
		}
		sealed := func(e atomEntry) bool { return e.has("sealed") }
		synced := func(e atomEntry) bool { return e.has("CACHED_SYNCED") }
		for _, c := range []struct {
			what  string
			match func(atomEntry) bool
		}{{"seal", sealed}, {"CACHED_SYNCED state", synced}} {
			e1, e2, e3 := find(f1, c.what, c.match), find(f2, c.what, c.match), find(fws, c.what, c.match)
			if e1.ID != e2.ID || e1.ID != e3.ID {
				t.Errorf("the entry for the %s of batch %s changed its id: %q, then %q, and %q in the workspace's feed", c.what, id, e1.ID, e2.ID, e3.ID)
			}
			if e1.Updated != e2.Updated || e1.Title != e2.Title {
				t.Errorf("the entry %s changed between two fetches: %q %s, then %q %s", e1.ID, e1.Title, e1.Updated, e2.Title, e2.Updated)
			}
			t.Logf("feed entry %s: %q (%s)", e1.ID, e1.Title, e1.Updated)
		}
		ids := map[string]atomEntry{}
		for _, e := range f2.Entries {
			ids[e.ID] = e
		}
		for _, e := range f1.Entries {
			if e2, ok := ids[e.ID]; !ok || e2.Title != e.Title || e2.alternate() != e.alternate() {
				t.Errorf("entry %s (%q) of the first fetch is not the same in the second: %+v", e.ID, e.Title, e2)
			}
		}
		r := httpGetOK(t, link)
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q, want text/html", link, ct)
		}
		if !bytes.Contains(r.body, []byte("Batch "+id)) {
			t.Errorf("GET %s (the feed's link) does not show batch %s:\n%s", link, id, clip(string(r.body), 2000))
		}
		for _, e := range f1.Entries {
			if l := e.alternate(); !strings.HasPrefix(l, base+"/") {
				t.Errorf("feed entry %s links to %q, not to this listener (%s)", e.ID, l, base)
			}
		}
		if r := httpDo(t, http.MethodGet, base+"/feed.atom?workspace=no-such-workspace"); r.code != http.StatusNotFound {
			t.Errorf("the feed of a workspace that does not exist: status %d, want 404", r.code)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		r := httpGetOK(t, base+"/metrics")
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("/metrics: Content-Type %q, want the Prometheus text format (text/plain; version=0.0.4)", ct)
		}
		var p expfmt.TextParser
		fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("/metrics is not in the Prometheus text format: %v\n%s", err, clip(string(r.body), 3000))
		}
		// value returns the sample of a family with the labels given (all
		// of them must match), or fails.
		value := func(name string, typ dto.MetricType, labels ...string) (float64, *dto.Metric) {
			t.Helper()
			mf, ok := fams[name]
			if !ok {
				t.Errorf("/metrics has no %s", name)
				return 0, nil
			}
			if mf.GetType() != typ {
				t.Errorf("%s is a %v, want a %v", name, mf.GetType(), typ)
			}
		next:
			for _, m := range mf.GetMetric() {
				have := labelsOf(m)
				for i := 0; i+1 < len(labels); i += 2 {
					if have[labels[i]] != labels[i+1] {
						continue next
					}
				}
				return sampleValue(m), m
			}
			t.Errorf("%s has no sample with labels %v", name, labels)
			return 0, nil
		}
		atLeast := func(name string, typ dto.MetricType, min float64, labels ...string) {
			t.Helper()
			if v, m := value(name, typ, labels...); m != nil && v < min {
				t.Errorf("%s%v = %v, want at least %v", name, labels, v, min)
			}
		}
		if v, m := value("tapefs_batches", dto.MetricType_GAUGE, "workspace", "default", "state", "CACHED_SYNCED"); m != nil && v != 1 {
			t.Errorf("tapefs_batches{workspace=default,state=CACHED_SYNCED} = %v, want 1", v)
		}
		if v, m := value("tapefs_batch_bytes", dto.MetricType_GAUGE, "workspace", "default", "state", "CACHED_SYNCED"); m != nil && v != float64(size) {
			t.Errorf("tapefs_batch_bytes{workspace=default,state=CACHED_SYNCED} = %v, want %d", v, size)
		}
		atLeast("tapefs_tape_mounts_total", dto.MetricType_COUNTER, 1)
		atLeast("tapefs_fuse_operations_total", dto.MetricType_COUNTER, 1, "op", "lookup")
		atLeast("tapefs_fuse_operations_total", dto.MetricType_COUNTER, 4, "op", "create")
		atLeast("tapefs_fuse_operations_total", dto.MetricType_COUNTER, 1, "op", "mkdir")
		atLeast("tapefs_cache_used_bytes", dto.MetricType_GAUGE, float64(size))
		atLeast("tapefs_cache_limit_bytes", dto.MetricType_GAUGE, 1)
		atLeast("tapefs_migrated_bytes_total", dto.MetricType_COUNTER, float64(size))
		atLeast("tapefs_recall_queue_length", dto.MetricType_GAUGE, 0)
		atLeast("tapefs_drive_busy", dto.MetricType_GAUGE, 0, "drive", "0")
		atLeast("tapefs_tape_locates_total", dto.MetricType_COUNTER, 0)
		atLeast("tapefs_tape_simulated_seconds_total", dto.MetricType_COUNTER, 0)
		if mf, ok := fams["tapefs_recall_latency_seconds"]; !ok {
			t.Errorf("/metrics has no tapefs_recall_latency_seconds")
		} else if mf.GetType() != dto.MetricType_HISTOGRAM || len(mf.GetMetric()) != 1 || len(mf.GetMetric()[0].GetHistogram().GetBucket()) == 0 {
			t.Errorf("tapefs_recall_latency_seconds: want one histogram with buckets, got %v", mf)
		}
		t.Logf("/metrics: %d families", len(fams))
	})
}

// TestStatusPageTokenOffLoopback: a listener that is not on loopback is
// refused without --http-token; with it, every request needs the token,
// and the listener stays read-only.
func TestStatusPageTokenOffLoopback(t *testing.T) {
	t.Parallel()
	// Port 0: the kernel picks a free port; the log says which.
	d := newDaemon(t, "--time-scale", "0", "--http", "0.0.0.0:0")
	d.allowErrors("is not a loopback address") // the refusal, logged as "daemon stopped"
	if d.tryStart() {
		t.Errorf("tapefs mount --http 0.0.0.0:0 without --http-token started; want a refusal")
		d.stop()
	} else {
		var ee *exec.ExitError
		if err := d.exitErr(); !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("tapefs mount --http 0.0.0.0:0 without a token exited with %v; want a non-zero status", err)
		}
		outp := d.output()
		for _, want := range []string{"tapefs: --http 0.0.0.0:0 is not a loopback address", "--http-token"} {
			if !strings.Contains(outp, want) {
				t.Errorf("the refusal does not say %q:\n%s", want, lastLines(outp, 10))
			}
		}
		if isMounted(d.mnt) {
			t.Errorf("the refused daemon left %s mounted", d.mnt)
		}
		t.Logf("refused: %s", strings.TrimSpace(lastLines(outp, 1)))
	}

	d.flags = append(d.flags, "--http-token", "secret")
	d.start()
	base, host := loopbackURL(d)
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip == nil || ip.IsLoopback() {
		t.Errorf("--http 0.0.0.0:0 bound %q; want the unspecified address", host)
	}
	const bearer = "Bearer secret"
	for _, path := range []string{"/", "/batches", "/batches/1", "/feed.atom", "/metrics", "/api/v1/workspaces", "/api/v1/batches"} {
		r := httpDo(t, http.MethodGet, base+path)
		if r.code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: status %d, want 401\n%s", path, r.code, clip(string(r.body), 500))
		} else if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("GET %s without the token: 401 without WWW-Authenticate: Bearer (got %q)", path, r.header.Get("WWW-Authenticate"))
		}
		if r := httpDo(t, http.MethodGet, base+path, "Authorization", "Bearer wrong"); r.code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: status %d, want 401", path, r.code)
		}
		if r := httpDo(t, http.MethodGet, base+path+"?token=wrong"); r.code != http.StatusUnauthorized {
			t.Errorf("GET %s?token=wrong: status %d, want 401", path, r.code)
		}
	}
	if r := httpDo(t, http.MethodHead, base+"/"); r.code != http.StatusUnauthorized {
		t.Errorf("HEAD / without the token: status %d, want 401", r.code)
	}
	for _, path := range []string{"/", "/batches", "/feed.atom", "/metrics", "/api/v1/workspaces"} {
		httpGetOK(t, base+path, "Authorization", bearer)
	}
	// A browser carries the token in the query; the page's links keep it.
	r := httpGetOK(t, base+"/?token=secret")
	if !bytes.Contains(r.body, []byte(`href="/batches?token=secret"`)) {
		t.Errorf("the overview requested with ?token= has links without it:\n%s", clip(string(r.body), 3000))
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		for _, path := range []string{"/", "/api/v1/workspaces", "/api/v1/seal"} {
			r := httpDo(t, m, base+path, "Authorization", bearer)
			if r.code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s with the token: status %d, want 405", m, path, r.code)
			} else if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") {
				t.Errorf("%s %s: 405 with Allow %q, want GET, HEAD", m, path, allow)
			}
		}
	}
}

// TestStatusPageEscapesUserText seals a batch with a tag that is a script
// element, from an entry whose name and file names hold quotes and <&>,
// and checks that the pages Chromium renders show that text and hold no
// element or attribute made from it.
func TestStatusPageEscapesUserText(t *testing.T) {
	t.Parallel()
	// A long settle: the setfattr below seals the entry, with its tag.
	d := startDaemon(t, "--time-scale", "0", "--settle", "60s", "--flush-age", "1s")
	base := statusURL(d)
	const tag = `<script>alert(1)</script>`
	const entry = `esc "q" <&> 'x'`
	names := []string{`q"uo'te <&>.txt`, `<img src=x onerror=alert(2)>`, `<script>alert(3)`, `a&amp;b`}
	src := filepath.Join(t.TempDir(), entry)
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		if err := os.WriteFile(filepath.Join(src, n), []byte(fmt.Sprintf("file %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := d.batchIDs("default")
	sh(t, "/", "cp -a "+q(src)+" "+q(d.put("default")+"/"))
	// setfattr -n user.tapefs.seal -v TAG: the value is the batch's tag.
	sh(t, "/", "setfattr -n user.tapefs.seal -v "+q(tag)+" "+q(filepath.Join(d.put("default"), entry)))
	id := d.waitSynced("default", before, 60*time.Second)

	var b struct {
		Tag   string `json:"tag"`
		Entry string `json:"entry"`
	}
	r := httpGetOK(t, base+"/api/v1/batches/"+id)
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("/api/v1/batches/%s: %v\n%s", id, err, r.body)
	}
	if b.Tag != tag || b.Entry != entry {
		t.Fatalf("batch %s has tag %q and entry %q; want %q and %q", id, b.Tag, b.Entry, tag, entry)
	}

	br := newBrowser(t)
	out := testOutDir(t)
	// text is how Chromium serialises a text node holding s.
	text := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\u00a0", "&nbsp;").Replace
	pages := map[string][]string{
		"/":                          {text(tag), text(entry)},
		"/batches":                   {text(tag), text(entry)},
		"/batches?workspace=default": {text(tag), text(entry)},
		"/batches/" + id:             append([]string{text(tag), text(entry)}, mapStrings(names, text)...),
	}
	for path, wants := range pages {
		dom := br.dumpDOM(base + path)
		for _, bad := range injected(dom) {
			t.Errorf("%s rendered in Chromium holds markup made from user text: %s", path, bad)
		}
		for _, want := range wants {
			if !strings.Contains(dom, want) {
				t.Errorf("%s rendered in Chromium does not show the text %q (serialised %q)", path, htmlUnescapeText(want), want)
			}
		}
	}
	br.screenshot(base+"/batches/"+id, filepath.Join(out, "batch-escaped.png"))

	// The feed carries the same text, escaped as XML and read back intact.
	f := fetchFeed(t, base, "")
	found := false
	for _, e := range f.Entries {
		if e.has("sealed") && strings.HasSuffix(e.alternate(), "/batches/"+id) {
			found = true
			if !strings.Contains(e.Summary, "put/"+entry) {
				t.Errorf("the feed's entry for the seal of batch %s says %q; want the entry name %q in it", id, e.Summary, entry)
			}
		}
	}
	if !found {
		t.Errorf("the feed has no entry for the seal of batch %s", id)
	}
}

func mapStrings(in []string, f func(string) string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = f(s)
	}
	return out
}

func htmlUnescapeText(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&nbsp;", "\u00a0").Replace(s)
}

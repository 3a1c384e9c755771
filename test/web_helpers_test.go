package test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"html"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Helpers of the status page tests (web_test.go): the page's address from
// the daemon's log, plain HTTP requests, headless Chromium, and small
// parsers of the rendered DOM and of the Atom feed.

// chromiumPath is Debian's chromium (package chromium, installed by
// .ci/run).
const chromiumPath = "/usr/bin/chromium"

// chromiumTimeout bounds one run of the browser.
const chromiumTimeout = 45 * time.Second

// statusURL is the base URL ("http://HOST:PORT", no slash) of the status
// page of the daemon's current run, from the line "status page listening"
// of its log.
func statusURL(d *daemon) string {
	d.t.Helper()
	evs := d.logEvents("status page listening")
	for i := len(evs) - 1; i >= 0; i-- {
		if u := evs[i].str("http"); u != "" {
			return strings.TrimSuffix(u, "/")
		}
	}
	d.t.Fatalf("the daemon's log has no \"status page listening\" line with the address (http field); --http was %v", d.flags)
	return ""
}

// loopbackURL is statusURL with the host replaced by 127.0.0.1 (for a
// listener on 0.0.0.0 or [::]); it also returns the host that was bound.
func loopbackURL(d *daemon) (string, string) {
	d.t.Helper()
	u := statusURL(d)
	host, port, err := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
	if err != nil {
		d.t.Fatalf("status page address %q: %v", u, err)
	}
	return "http://127.0.0.1:" + port, host
}

var webClient = &http.Client{Timeout: 20 * time.Second}

// webResponse is a response read to the end.
type webResponse struct {
	code   int
	header http.Header
	body   []byte
}

// httpDo makes one request; hdr holds header pairs (name, value, ...).
func httpDo(t *testing.T, method, url string, hdr ...string) webResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := webClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return webResponse{code: resp.StatusCode, header: resp.Header, body: b}
}

// httpGetOK is a GET that must answer 200.
func httpGetOK(t *testing.T, url string, hdr ...string) webResponse {
	t.Helper()
	r := httpDo(t, http.MethodGet, url, hdr...)
	if r.code != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200\n%s", url, r.code, clip(string(r.body), 2000))
	}
	return r
}

// clip shortens s for a failure message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("\n[... %d more bytes]", len(s)-n)
}

// testOutDir is where a test leaves files for people to look at: the
// directory named by TAPEFS_TEST_OUT (one subdirectory per test), else a
// temporary directory of the test. Its path is logged.
func testOutDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if root := os.Getenv("TAPEFS_TEST_OUT"); root != "" {
		dir = filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("TAPEFS_TEST_OUT: %v", err)
		}
	}
	t.Logf("test output (screenshots) in %s", dir)
	return dir
}

// browser runs headless Chromium with a profile of its own.
type browser struct {
	t       *testing.T
	bin     string
	profile string // --user-data-dir
	home    string // HOME of the browser
}

// newBrowser finds Chromium. A machine without it fails the test: the
// browser test is part of the suite (CI installs Debian's chromium).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin := chromiumPath
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("chromium")
		if lerr != nil {
			t.Fatalf("headless Chromium is needed for the status page test and is missing: %v "+
				"(install Debian's chromium: apt-get install -y chromium)", err)
		}
		bin = p
	}
	return &browser{t: t, bin: bin, profile: t.TempDir(), home: t.TempDir()}
}

// run starts Chromium with the common flags and args and returns its
// standard output. Chromium and the processes it started are killed (its
// process group) if it takes longer than chromiumTimeout.
func (b *browser) run(args ...string) []byte {
	b.t.Helper()
	full := append([]string{"--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--disable-quic", "--user-data-dir=" + b.profile}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, full...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	// Its crash reporter and caches write under HOME: keep them in the
	// test's directory.
	cmd.Env = append(os.Environ(), "HOME="+b.home, "XDG_CONFIG_HOME="+b.home, "XDG_CACHE_HOME="+b.home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		b.t.Fatalf("chromium %s: no answer within %v (killed; a dialog opened by a script of the page, such as alert(), blocks it)\nstderr:\n%s",
			strings.Join(args, " "), chromiumTimeout, lastLines(stderr.String(), 30))
	}
	if err != nil {
		b.t.Fatalf("chromium %s: %v after %v\nstderr:\n%s", strings.Join(args, " "), err, time.Since(t0).Round(time.Millisecond), lastLines(stderr.String(), 30))
	}
	return stdout.Bytes()
}

// dumpDOM loads url and returns the DOM Chromium built, serialised.
func (b *browser) dumpDOM(url string) string {
	b.t.Helper()
	dom := string(b.run("--dump-dom", url))
	if !strings.Contains(dom, `class="brand"`) {
		b.t.Fatalf("chromium --dump-dom %s did not render a tapefs page:\n%s", url, clip(dom, 3000))
	}
	return dom
}

// screenshot saves a 1280×1000 PNG of url to file and checks that it is
// a picture of something.
func (b *browser) screenshot(url, file string) {
	b.t.Helper()
	_ = os.Remove(file)
	b.run("--screenshot="+file, "--window-size=1280,1000", url)
	checkPNG(b.t, file)
	b.t.Logf("screenshot of %s: %s", url, file)
}

// checkPNG fails the test unless path is a PNG of the window's size with
// more than a handful of colours (a page, not a blank or error screen).
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", path, err)
	}
	bounds := img.Bounds()
	if bounds.Dx() != 1280 || bounds.Dy() < 500 {
		t.Errorf("screenshot %s is %dx%d, want 1280 wide and at least 500 high", path, bounds.Dx(), bounds.Dy())
	}
	colours, nonWhite := pngColours(img)
	if colours < 32 || nonWhite < bounds.Dx()*bounds.Dy()/200 {
		t.Errorf("screenshot %s looks blank: %d colours, %d pixels that are not white", path, colours, nonWhite)
	}
}

// pngColours counts the distinct colours of img and its pixels that are
// not (nearly) white.
func pngColours(img image.Image) (colours, nonWhite int) {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				nonWhite++
			}
		}
	}
	return len(seen), nonWhite
}

// pageBatch is one row of a batch table of a rendered page.
type pageBatch struct {
	ID    string
	Entry string // as shown, unescaped
	State string
}

// pageView is what the tests read from a rendered overview.
type pageView struct {
	Refresh bool        // <meta http-equiv="refresh">
	Pending int         // the "put/ pending" tile (-1: not found)
	Batches []pageBatch // rows of the batch tables
}

var (
	reRefresh = regexp.MustCompile(`(?i)<meta[^>]*http-equiv="refresh"`)
	rePending = regexp.MustCompile(`<span class="k">put/ pending</span>\s*<span class="v">(\d+)</span>`)
	reRowID   = regexp.MustCompile(`<td class="n"><a href="/batches/(\d+)[^"]*">`)
	reRowEnt  = regexp.MustCompile(`<td class="entry">([^<]*)`)
	reRowSt   = regexp.MustCompile(`<td><span class="badge st-[a-z-]+">([A-Z_]+)</span></td>`)
)

// parsePage reads a DOM dumped by Chromium.
func parsePage(dom string) pageView {
	v := pageView{Refresh: reRefresh.MatchString(dom), Pending: -1}
	if m := rePending.FindStringSubmatch(dom); m != nil {
		v.Pending, _ = strconv.Atoi(m[1])
	}
	for _, table := range strings.Split(dom, `<table class="batches">`)[1:] {
		table, _, _ = strings.Cut(table, "</table>")
		for _, row := range strings.Split(table, "<tr")[1:] {
			id := reRowID.FindStringSubmatch(row)
			st := reRowSt.FindStringSubmatch(row)
			if id == nil || st == nil {
				continue
			}
			b := pageBatch{ID: id[1], State: st[1]}
			if m := reRowEnt.FindStringSubmatch(row); m != nil {
				b.Entry = strings.TrimSpace(html.UnescapeString(m[1]))
			}
			v.Batches = append(v.Batches, b)
		}
	}
	return v
}

// batch is the row of the batch of entry, if the page shows it.
func (v pageView) batch(entry string) (pageBatch, bool) {
	for _, b := range v.Batches {
		if b.Entry == entry {
			return b, true
		}
	}
	return pageBatch{}, false
}

// movingState: a batch state in which the page must refresh itself.
func movingState(s string) bool { return s == "CACHING" || s == "CACHED" || s == "SYNCING" }

// pageElements are the elements the status page templates produce; any
// other element in a rendered page was made from user text.
var pageElements = map[string]bool{
	"html": true, "head": true, "meta": true, "title": true, "link": true, "style": true,
	"body": true, "header": true, "nav": true, "main": true, "section": true, "div": true,
	"a": true, "span": true, "p": true, "small": true, "strong": true, "em": true, "b": true,
	"i": true, "code": true, "br": true, "h1": true, "h2": true, "h3": true,
	"table": true, "thead": true, "tbody": true, "tr": true, "th": true, "td": true,
	"dl": true, "dt": true, "dd": true, "ul": true, "ol": true, "li": true,
	"progress": true, "meter": true, "form": true, "label": true, "select": true,
	"option": true, "input": true, "button": true, "abbr": true, "time": true,
}

var (
	// In a DOM serialised by Chromium a "<" of text is "&lt;", and an
	// attribute value is always double-quoted with its quotes escaped:
	// every "<" followed by a letter starts an element.
	reStyleBody = regexp.MustCompile(`(?s)(<style[^>]*>).*?(</style>)`)
	reElement   = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s=/>"]+(?:="[^"]*")?)*)\s*/?>`)
	reAttribute = regexp.MustCompile(`\s+([^\s=/>"]+)(?:="([^"]*)")?`)
	reTagStart  = regexp.MustCompile(`<[a-zA-Z]`)
)

// injected lists the elements and attributes of a DOM serialised by
// Chromium that only unescaped user text could have made: a script or any
// element the templates do not use, an event handler attribute, a
// javascript: URL.
func injected(dom string) []string {
	dom = reStyleBody.ReplaceAllString(dom, "$1$2") // CSS is raw text
	var out []string
	parsed := map[int]bool{}
	for _, m := range reElement.FindAllStringSubmatchIndex(dom, -1) {
		parsed[m[0]] = true
		el := dom[m[0]:m[1]]
		name := strings.ToLower(dom[m[2]:m[3]])
		if !pageElements[name] {
			out = append(out, fmt.Sprintf("element <%s>: %s", name, el))
		}
		for _, a := range reAttribute.FindAllStringSubmatch(dom[m[4]:m[5]], -1) {
			attr, val := strings.ToLower(a[1]), strings.ToLower(strings.TrimSpace(html.UnescapeString(a[2])))
			if strings.HasPrefix(attr, "on") || strings.HasPrefix(val, "javascript:") {
				out = append(out, fmt.Sprintf("attribute %s of <%s>: %s", attr, name, el))
			}
		}
	}
	for _, m := range reTagStart.FindAllStringIndex(dom, -1) {
		if !parsed[m[0]] {
			out = append(out, fmt.Sprintf("markup this test cannot read: …%s…", dom[m[0]:min(len(dom), m[0]+120)]))
		}
	}
	return out
}

// The Atom 1.0 documents of /feed.atom, as a reader parses them: every
// element in the Atom namespace.

const atomNamespace = "http://www.w3.org/2005/Atom"

type atomDoc struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string      `xml:"http://www.w3.org/2005/Atom id"`
	Title   string      `xml:"http://www.w3.org/2005/Atom title"`
	Updated string      `xml:"http://www.w3.org/2005/Atom updated"`
	Authors []atomName  `xml:"http://www.w3.org/2005/Atom author"`
	Links   []atomHref  `xml:"http://www.w3.org/2005/Atom link"`
	Entries []atomEntry `xml:"http://www.w3.org/2005/Atom entry"`
}

type atomName struct {
	Name string `xml:"http://www.w3.org/2005/Atom name"`
}

type atomHref struct {
	Rel  string `xml:"rel,attr"`
	Type string `xml:"type,attr"`
	Href string `xml:"href,attr"`
}

type atomEntry struct {
	ID         string     `xml:"http://www.w3.org/2005/Atom id"`
	Title      string     `xml:"http://www.w3.org/2005/Atom title"`
	Updated    string     `xml:"http://www.w3.org/2005/Atom updated"`
	Links      []atomHref `xml:"http://www.w3.org/2005/Atom link"`
	Categories []struct {
		Term string `xml:"term,attr"`
	} `xml:"http://www.w3.org/2005/Atom category"`
	Summary string `xml:"http://www.w3.org/2005/Atom summary"`
}

// has reports whether the entry carries the category term.
func (e atomEntry) has(term string) bool {
	for _, c := range e.Categories {
		if c.Term == term {
			return true
		}
	}
	return false
}

// alternate is the entry's link to its page.
func (e atomEntry) alternate() string {
	for _, l := range e.Links {
		if l.Rel == "" || l.Rel == "alternate" {
			return l.Href
		}
	}
	return ""
}

// fetchFeed gets and parses /feed.atom (with query q, "" for none) and
// checks what Atom 1.0 (RFC 4287) requires of a feed and its entries.
func fetchFeed(t *testing.T, base, q string) atomDoc {
	t.Helper()
	url := base + "/feed.atom" + q
	r := httpGetOK(t, url)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/atom+xml") {
		t.Errorf("GET %s: Content-Type %q, want application/atom+xml", url, ct)
	}
	var f atomDoc
	dec := xml.NewDecoder(bytes.NewReader(r.body))
	dec.Strict = true
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s is not an Atom feed: %v\n%s", url, err, clip(string(r.body), 3000))
	}
	bad := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: "+format, append([]any{url}, args...)...)
	}
	if f.XMLName.Space != atomNamespace {
		bad("root element in namespace %q, want %q", f.XMLName.Space, atomNamespace)
	}
	if f.ID == "" || f.Title == "" {
		bad("feed id %q, title %q: both are required", f.ID, f.Title)
	}
	if _, err := time.Parse(time.RFC3339, f.Updated); err != nil {
		bad("feed updated %q is not an RFC 3339 date: %v", f.Updated, err)
	}
	self := false
	for _, l := range f.Links {
		self = self || l.Rel == "self"
	}
	if !self {
		bad("no link rel=self")
	}
	ids := map[string]bool{}
	for i, e := range f.Entries {
		if e.ID == "" || e.Title == "" {
			bad("entry %d: id %q, title %q: both are required", i, e.ID, e.Title)
		}
		if ids[e.ID] {
			bad("entry id %q appears twice", e.ID)
		}
		ids[e.ID] = true
		if _, err := time.Parse(time.RFC3339, e.Updated); err != nil {
			bad("entry %s: updated %q is not an RFC 3339 date: %v", e.ID, e.Updated, err)
		}
	}
	if len(f.Entries) > 0 && len(f.Authors) == 0 {
		bad("the feed has no author, so every entry needs one (RFC 4287 4.1.1)")
	}
	return f
}

// sampleValue is the value of a counter, gauge or untyped sample.
func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// labelsOf is a sample's labels as a map.
func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

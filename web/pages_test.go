package web

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/ident"
)

const refreshMeta = `<meta http-equiv="refresh"`

func TestPagesRenderAndEscape(t *testing.T) {
	te := newTestEnv(t, Options{FUSEOps: func() map[string]uint64 { return map[string]uint64{"read": 3} }})
	b := te.put("gws", evilEntry, evilTag, map[string]string{evilFile: "abc", "sub/plain.txt": "hello"})
	te.wait(b.ID)
	evil := te.evilWorkspace()

	pages := []string{
		"/",
		"/batches",
		"/batches?workspace=gws",
		"/batches?state=CACHED_SYNCED",
		"/batches?state=synced&workspace=" + urlq(evilWS),
		fmt.Sprintf("/batches/%d", b.ID),
		fmt.Sprintf("/batches/%d", evil),
	}
	for _, p := range pages {
		body := te.mustGet(p)
		assertEscaped(t, p, body)
		if !strings.Contains(body, "<title>") || !strings.Contains(body, "</html>") {
			t.Errorf("%s: not a whole page", p)
		}
		if strings.Contains(body, "<script") {
			t.Errorf("%s: a page has a script", p)
		}
	}

	over := te.mustGet("/")
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt;", // the tag
		"run &#34;7&#34; &lt;b&gt;&amp;amp;",    // the entry
		"ws&#34;&lt;em&gt;&amp;x",               // the workspace
		"CACHED_SYNCED", "TF0001",               // a state, the cartridge written
	} {
		if !strings.Contains(over, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	page := te.mustGet(fmt.Sprintf("/batches/%d", b.ID))
	// The path: quotes, <, & escaped; the newline shown as \n.
	if want := `we&#34;ird &#39;name&#39; &lt;i&gt;&amp;\nline2.dat`; !strings.Contains(page, want) {
		t.Errorf("batch page lacks the escaped path %q", want)
	}
	for _, want := range []string{"900150983cd24fb0d6963f7d28e17f72", "TF0001", "online", "sealed",
		// the access rule as it applies: gws's manager is 1000, its group 500
		"the manager " + ident.UserText(1000) + " and group " + ident.GroupText(500), "removable by root, " + ident.UserText(1000)} {
		if !strings.Contains(page, want) {
			t.Errorf("batch page lacks %q", want)
		}
	}
	// A workspace filter shows only that workspace.
	list := te.mustGet("/batches?workspace=" + urlq(evilWS))
	if !strings.Contains(list, fmt.Sprintf(">%d</a>", evil)) || strings.Contains(list, fmt.Sprintf(">%d</a>", b.ID)) {
		t.Errorf("the filtered list is wrong:\n%s", list)
	}

	for path, code := range map[string]int{
		"/batches/999999":        http.StatusNotFound,
		"/batches/x":             http.StatusNotFound,
		"/batches?state=BOGUS":   http.StatusBadRequest,
		"/batches?workspace=nop": http.StatusNotFound,
		"/batches?after=-1":      http.StatusBadRequest,
		"/nothing":               http.StatusNotFound,
	} {
		got, body, _ := te.get(path)
		if got != code {
			t.Errorf("GET %s: %d, want %d", path, got, code)
		}
		assertEscaped(t, path, body)
	}
	_, body, _ := te.get("/batches?state=" + urlq("<script>x"))
	assertEscaped(t, "bad state", body)
}

func TestSecurityHeaders(t *testing.T) {
	te := newTestEnv(t, Options{})
	_, _, h := te.get("/")
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q", csp)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
}

func TestRefreshOnlyWhileSomethingMoves(t *testing.T) {
	te := newTestEnv(t, Options{})
	b := te.put("gws", "quiet", "", map[string]string{"f": "x"})
	te.wait(b.ID)
	// Drives may still be unloading or held right after the flush.
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := te.mustGet("/")
		if !strings.Contains(body, refreshMeta) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the overview of a quiet archive refreshes itself:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if body := te.mustGet(fmt.Sprintf("/batches/%d", b.ID)); strings.Contains(body, refreshMeta) {
		t.Error("the page of a synced batch refreshes itself")
	}
	if body := te.mustGet("/batches"); strings.Contains(body, refreshMeta) {
		t.Error("the list of synced batches refreshes itself")
	}

	// A CLI put in progress: CACHING until its bytes arrive.
	r, err := te.e.Reserve("gws", "moving", 1000, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/batches", fmt.Sprintf("/batches/%d", r.ID)} {
		if body := te.mustGet(p); !strings.Contains(body, refreshMeta) {
			t.Errorf("%s does not refresh while batch %d is CACHING", p, r.ID)
		}
	}
	if body := te.mustGet(fmt.Sprintf("/batches/%d", b.ID)); strings.Contains(body, refreshMeta) {
		t.Error("the page of a synced batch refreshes because another batch moves")
	}
}

var batchLink = regexp.MustCompile(`href="/batches/(\d+)"`)

func batchIDs(body string) []string {
	var out []string
	for _, m := range batchLink.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

var pagerLink = regexp.MustCompile(`href="(/batches\?[^"]*)">([^<]*)</a>`)

// pager returns the pager links of a page by their text.
func pager(body string) map[string]string {
	out := map[string]string{}
	for _, m := range pagerLink.FindAllStringSubmatch(body, -1) {
		out[strings.TrimSpace(m[2])] = strings.ReplaceAll(m[1], "&amp;", "&")
	}
	return out
}

func TestBatchPaging(t *testing.T) {
	te := newTestEnv(t, Options{})
	// 23 batches straight into the catalog, every third one FAILED.
	err := te.cat.Update(func(tx *catalog.Tx) error {
		for i := 1; i <= 23; i++ {
			st := catalog.Synced
			if i%3 == 0 {
				st = catalog.Failed
			}
			if _, _, err := tx.RegisterBatch(catalog.Batch{Workspace: "gws", State: st, Created: time.Now()}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Walk all pages of 5 down, then back up.
	var seen []string
	path := "/batches?limit=5"
	var pages []string
	for path != "" {
		body := te.mustGet(path)
		pages = append(pages, path)
		seen = append(seen, batchIDs(body)...)
		path = pager(body)["older →"]
		if len(pages) > 10 {
			t.Fatal("paging does not end")
		}
	}
	if got := strings.Join(seen, ","); got != "23,22,21,20,19,18,17,16,15,14,13,12,11,10,9,8,7,6,5,4,3,2,1" {
		t.Fatalf("pages down: %s", got)
	}
	body := te.mustGet(pages[len(pages)-1])
	var up []string
	for {
		newer := pager(body)["← newer"]
		if newer == "" {
			break
		}
		body = te.mustGet(newer)
		up = append(up, strings.Join(batchIDs(body), ","))
	}
	if got := strings.Join(up, " | "); got != "8,7,6,5,4 | 13,12,11,10,9 | 18,17,16,15,14 | 23,22,21,20,19" {
		t.Errorf("pages up: %s", got)
	}

	// Filtered by state, with a scan budget smaller than the catalog: a
	// page may end early and say where to go on; following it finds all.
	te.s.scanBudget = 4
	seen = nil
	path = "/batches?state=FAILED&limit=2"
	for n := 0; path != ""; n++ {
		body := te.mustGet(path)
		seen = append(seen, batchIDs(body)...)
		p := pager(body)
		path = p["older →"] + p["search older batches →"]
		if n > 20 {
			t.Fatal("paging does not end")
		}
	}
	if got := strings.Join(seen, ","); got != "21,18,15,12,9,6,3" {
		t.Errorf("FAILED pages: %s", got)
	}
	// And back up from the oldest, by the newer links.
	body = te.mustGet("/batches?state=FAILED&limit=2&after=3")
	var back []string
	for n := 0; ; n++ {
		p := pager(body)
		newer := p["← newer"]
		if newer == "" {
			break
		}
		body = te.mustGet(newer)
		back = append(back, batchIDs(body)...)
		if n > 20 {
			t.Fatal("paging up does not end")
		}
	}
	// Budget-cut pages may be short (and the newest page may repeat the
	// last one); every FAILED batch must be passed on the way.
	for _, id := range []string{"3", "6", "9", "12", "15", "18", "21"} {
		if !slices.Contains(back, id) {
			t.Errorf("paging up FAILED batches skips %s: %v", id, back)
		}
	}
	if ids := batchIDs(body); len(ids) == 0 || ids[0] != "21" || strings.Contains(body, "« newest") {
		t.Errorf("paging up did not end on the newest page")
	}
	// The overview links to the older batches beyond its list.
	over := te.mustGet("/")
	if !strings.Contains(over, `href="/batches?after=9"`) {
		t.Errorf("the overview has no link to older batches")
	}
}

func TestFilePaging(t *testing.T) {
	te := newTestEnv(t, Options{})
	files := map[string]string{}
	for i := range filesPerPage + 20 {
		files[fmt.Sprintf("f%03d", i)] = "x"
	}
	b := te.put("gws", "many", "", files)
	first := te.mustGet(fmt.Sprintf("/batches/%d", b.ID))
	m := regexp.MustCompile(`href="(/batches/\d+\?after=\d+)">next files`).FindStringSubmatch(first)
	if m == nil {
		t.Fatal("no link to the next files")
	}
	second := te.mustGet(m[1])
	if !strings.Contains(second, "f119") || strings.Contains(second, "f050") || strings.Contains(second, "next files") {
		t.Errorf("the second page of files is wrong:\n%s", second)
	}
	if !strings.Contains(second, "first files") {
		t.Error("no link back to the first files")
	}
}

func urlq(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "\"", "%22", "<", "%3C", ">", "%3E", " ", "%20", "#", "%23", "\n", "%0A")
	return r.Replace(s)
}

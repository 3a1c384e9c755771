package web

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The Atom document as a reader parses it: names with their namespace.
type parsedFeed struct {
	XMLName xml.Name      `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string        `xml:"http://www.w3.org/2005/Atom id"`
	Title   string        `xml:"http://www.w3.org/2005/Atom title"`
	Updated string        `xml:"http://www.w3.org/2005/Atom updated"`
	Author  []parsedName  `xml:"http://www.w3.org/2005/Atom author"`
	Links   []parsedLink  `xml:"http://www.w3.org/2005/Atom link"`
	Entries []parsedEntry `xml:"http://www.w3.org/2005/Atom entry"`
}

type parsedName struct {
	Name string `xml:"http://www.w3.org/2005/Atom name"`
}

type parsedLink struct {
	Rel  string `xml:"rel,attr"`
	Href string `xml:"href,attr"`
}

type parsedEntry struct {
	ID      string       `xml:"http://www.w3.org/2005/Atom id"`
	Title   string       `xml:"http://www.w3.org/2005/Atom title"`
	Updated string       `xml:"http://www.w3.org/2005/Atom updated"`
	Summary string       `xml:"http://www.w3.org/2005/Atom summary"`
	Links   []parsedLink `xml:"http://www.w3.org/2005/Atom link"`
}

func parseFeed(t *testing.T, body string) parsedFeed {
	t.Helper()
	var f parsedFeed
	if err := xml.Unmarshal([]byte(body), &f); err != nil {
		t.Fatalf("the feed is not XML: %v\n%s", err, body)
	}
	return f
}

// entryID is an RFC 4151 tag: URI (DNS name authority, date, specific)
// of an installation's event.
var entryID = regexp.MustCompile(`^tag:[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*,\d{4}-\d{2}-\d{2}:tapefs-[0-9a-f]{16}/event/\d+$`)

// checkAtom checks what RFC 4287 requires of a feed and its entries.
func checkAtom(t *testing.T, f parsedFeed) {
	t.Helper()
	if f.ID == "" || f.Title == "" || len(f.Author) == 0 || f.Author[0].Name == "" {
		t.Errorf("feed lacks id, title or author: %+v", f)
	}
	if _, err := time.Parse(time.RFC3339, f.Updated); err != nil {
		t.Errorf("feed updated %q: %v", f.Updated, err)
	}
	self := false
	for _, l := range f.Links {
		if l.Rel == "self" {
			u, err := url.Parse(l.Href)
			self = err == nil && u.IsAbs() && u.Path == "/feed.atom"
		}
	}
	if !self {
		t.Errorf("feed has no absolute self link: %+v", f.Links)
	}
	if !tagPrefixRE.MatchString(f.ID) {
		t.Errorf("feed id %q is not a tag: URI", f.ID)
	}
	seen := map[string]bool{}
	for _, e := range f.Entries {
		if !entryID.MatchString(e.ID) || e.Title == "" {
			t.Errorf("entry id %q, title %q", e.ID, e.Title)
		}
		if seen[e.ID] {
			t.Errorf("entry id %q twice", e.ID)
		}
		seen[e.ID] = true
		if _, err := time.Parse(time.RFC3339, e.Updated); err != nil {
			t.Errorf("entry %s updated %q: %v", e.ID, e.Updated, err)
		}
		if len(e.Links) != 1 || e.Links[0].Rel != "alternate" {
			t.Errorf("entry %s links %+v", e.ID, e.Links)
			continue
		}
		if u, err := url.Parse(e.Links[0].Href); err != nil || !u.IsAbs() || !strings.HasPrefix(u.Path, "/batches") {
			t.Errorf("entry %s links to %q", e.ID, e.Links[0].Href)
		}
	}
}

func TestFeed(t *testing.T) {
	te := newTestEnv(t, Options{})
	b := te.put("gws", evilEntry, evilTag, map[string]string{evilFile: "abc"})
	te.wait(b.ID)
	te.evilWorkspace()

	code, body, h := te.get("/feed.atom")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/atom+xml") {
		t.Fatalf("feed: %d %s", code, h.Get("Content-Type"))
	}
	assertEscaped(t, "feed", body)
	f := parseFeed(t, body)
	checkAtom(t, f)
	titles := map[string]bool{}
	ids := map[string]bool{}
	for _, e := range f.Entries {
		titles[e.Title] = true
		if ids[e.ID] {
			t.Errorf("entry id %s twice", e.ID)
		}
		ids[e.ID] = true
	}
	for _, want := range []string{"Batch 1 sealed (gws)", "Batch 1 is SYNCING (gws)", "Batch 1 is CACHED_SYNCED (gws)", "Batch 2 FAILED (" + evilWS + ")"} {
		if !titles[want] {
			t.Errorf("no entry %q in %v", want, titles)
		}
	}
	// The escaped message comes back whole.
	found := false
	for _, e := range f.Entries {
		found = found || strings.Contains(e.Summary, evilFile+" "+evilTag)
	}
	if !found {
		t.Error("the failure's message did not survive the feed")
	}
	for _, e := range f.Entries {
		if strings.Contains(e.Title, "aggregate") || strings.Contains(e.Title, "workspace") {
			t.Errorf("entry %q is not a batch change", e.Title)
		}
	}

	// Ids are stable: a second request after more events repeats them.
	b2 := te.put("gws", "second", "", map[string]string{"f": "x"})
	te.wait(b2.ID)
	f2 := parseFeed(t, te.mustGet("/feed.atom"))
	checkAtom(t, f2)
	again := map[string]string{}
	for _, e := range f2.Entries {
		again[e.ID] = e.Title
	}
	for _, e := range f.Entries {
		if again[e.ID] != e.Title {
			t.Errorf("entry %s was %q, now %q", e.ID, e.Title, again[e.ID])
		}
	}
	if len(f2.Entries) <= len(f.Entries) {
		t.Errorf("the new batch added no entries (%d, then %d)", len(f.Entries), len(f2.Entries))
	}

	// One workspace: only its entries; its own feed id.
	fw := parseFeed(t, te.mustGet("/feed.atom?workspace="+url.QueryEscape(evilWS)))
	checkAtom(t, fw)
	if len(fw.Entries) != 1 || fw.ID == f.ID || !strings.Contains(fw.Title, evilWS) {
		t.Errorf("workspace feed: id %s, title %q, %d entries", fw.ID, fw.Title, len(fw.Entries))
	}
	if code, _, _ := te.get("/feed.atom?workspace=nope"); code != http.StatusNotFound {
		t.Errorf("feed of a missing workspace: %d", code)
	}

	// A reader polling with the ETag gets 304 until something happens.
	_, _, h = te.get("/feed.atom")
	if code, _, _ := te.get("/feed.atom", "If-None-Match", h.Get("ETag")); code != http.StatusNotModified {
		t.Errorf("conditional request: %d", code)
	}
}

func TestFeedKeepsToken(t *testing.T) {
	te := newTestEnv(t, Options{Token: "s3cret"})
	b := te.put("gws", "e", "", map[string]string{"f": "x"})
	te.wait(b.ID)
	f := parseFeed(t, te.mustGet("/feed.atom?token=s3cret"))
	checkAtom(t, f)
	for _, e := range f.Entries {
		if !strings.Contains(e.Links[0].Href, "token=s3cret") {
			t.Errorf("entry link %q drops the token", e.Links[0].Href)
		}
	}
}

// TestFeedTag: the installation's tag: prefix is minted once (host name
// made a DNS name, the day, a random ID), kept in the home and read back
// unchanged; two installations never share one; a damaged file is an
// error that says what to do.
func TestFeedTag(t *testing.T) {
	home := t.TempDir()
	day := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	a, err := FeedTag(home, day)
	if err != nil || !tagPrefixRE.MatchString(a) || !strings.Contains(a, ",2026-11-30:tapefs-") {
		t.Fatalf("minted %q, %v", a, err)
	}
	b, err := FeedTag(home, day.AddDate(1, 0, 0))
	if err != nil || b != a {
		t.Errorf("read back %q, %v; want the minted %q (IDs never change)", b, err, a)
	}
	if other, _ := FeedTag(t.TempDir(), day); other == a {
		t.Errorf("two installations share the prefix %q", a)
	}
	if got := MintFeedTag("My_Host.Example.ORG.", day); !strings.HasPrefix(got, "tag:my-host.example.org,2026-11-30:tapefs-") || !tagPrefixRE.MatchString(got) {
		t.Errorf("MintFeedTag of an odd host name: %q", got)
	}
	if got := MintFeedTag("", day); !strings.HasPrefix(got, "tag:localhost,") {
		t.Errorf("no host name: %q", got)
	}
	if err := os.WriteFile(filepath.Join(home, feedTagFile), []byte("tag:tapefs,2026:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FeedTag(home, day); err == nil || !strings.Contains(err.Error(), "remove the file") {
		t.Errorf("a bad feed-tag file: %v", err)
	}
}

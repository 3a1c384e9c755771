package web

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/tapefs/tapefs/archive"
)

const (
	feedEntries = 100
	feedBudget  = 1 << 16 // newest events searched for feed entries
	atomNS      = "http://www.w3.org/2005/Atom"
)

type atomFeed struct {
	XMLName xml.Name    `xml:"feed"`
	NS      string      `xml:"xmlns,attr"`
	ID      string      `xml:"id"`
	Title   string      `xml:"title"`
	Updated string      `xml:"updated"`
	Author  atomPerson  `xml:"author"`
	Gen     string      `xml:"generator"`
	Links   []atomLink  `xml:"link"`
	Entries []atomEntry `xml:"entry"`
}

type atomPerson struct {
	Name string `xml:"name"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr,omitempty"`
	Type string `xml:"type,attr,omitempty"`
	Href string `xml:"href,attr"`
}

type atomEntry struct {
	ID       string         `xml:"id"`
	Title    string         `xml:"title"`
	Updated  string         `xml:"updated"`
	Link     atomLink       `xml:"link"`
	Category []atomCategory `xml:"category"`
	Summary  string         `xml:"summary"`
}

type atomCategory struct {
	Term string `xml:"term,attr"`
}

func atomTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// feed serves the batch state changes and failures as Atom 1.0, newest
// first, of one workspace or of all.
func (s *Server) feed(w http.ResponseWriter, r *http.Request) {
	ws := r.URL.Query().Get("workspace")
	var evs []archive.Event
	var last uint64
	err := s.e.Read(s.caller(r), func(tx archive.Snapshot) error {
		if ws != "" {
			if _, err := tx.Workspace(ws); err != nil {
				return err
			}
		}
		var err error
		if last, err = tx.LastEvent(); err != nil {
			return err
		}
		evs, _, err = latestEvents(tx, eventQuery{workspace: ws, want: feedEntries, budget: feedBudget,
			keep: func(ev archive.Event) bool { return slices.Contains(feedKinds, ev.Kind) }})
		return err
	})
	if err != nil {
		code := http.StatusInternalServerError
		if ws != "" {
			code = http.StatusNotFound
		}
		http.Error(w, fmt.Sprintf("feed: %v", err), code)
		return
	}
	// A reader polling an unchanged log gets 304: the tag is the newest
	// event's sequence number and the selection.
	etag := fmt.Sprintf(`W/"%d-%s"`, last, url.QueryEscape(ws))
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}

	base := "http://" + r.Host
	if r.Host == "" {
		base = "http://localhost"
	}
	p := s.newPage(r, "", "")
	self := base + p.L("/feed.atom", "workspace", ws)
	f := atomFeed{
		NS:     atomNS,
		ID:     s.feedTag + "/feed",
		Title:  "tapefs: batches",
		Author: atomPerson{Name: "tapefs"},
		Gen:    "tapefs",
		Links: []atomLink{
			{Rel: "self", Type: "application/atom+xml", Href: self},
			{Rel: "alternate", Type: "text/html", Href: base + p.L("/batches", "workspace", ws)},
		},
	}
	if ws != "" {
		f.ID = s.feedTag + "/feed/" + url.PathEscape(ws)
		f.Title = "tapefs: batches of " + ws
	}
	updated := time.Time{}
	for _, ev := range evs {
		if ev.Time.After(updated) {
			updated = ev.Time
		}
		e := atomEntry{
			ID:       s.feedTag + "/event/" + strconv.FormatUint(ev.Seq, 10),
			Title:    entryTitle(ev),
			Updated:  atomTime(ev.Time),
			Category: []atomCategory{{Term: ev.Kind}},
			Summary:  ev.Message,
		}
		if ev.Batch != 0 {
			e.Link = atomLink{Rel: "alternate", Type: "text/html", Href: base + p.L(fmt.Sprintf("/batches/%d", ev.Batch))}
		} else {
			e.Link = atomLink{Rel: "alternate", Type: "text/html", Href: base + p.L("/batches", "workspace", ev.Workspace)}
		}
		if ev.State != "" {
			e.Category = append(e.Category, atomCategory{Term: string(ev.State)})
		}
		f.Entries = append(f.Entries, e)
	}
	if updated.IsZero() {
		updated = s.now()
	}
	f.Updated = atomTime(updated)

	out, err := xml.MarshalIndent(f, "", " ")
	if err != nil {
		http.Error(w, fmt.Sprintf("feed: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/atom+xml; charset=utf-8")
	w.Write([]byte(xml.Header))
	w.Write(out)
	w.Write([]byte("\n"))
}

// entryTitle says in a few words what happened to which batch.
func entryTitle(ev archive.Event) string {
	b := fmt.Sprintf("Batch %d", ev.Batch)
	in := ""
	if ev.Workspace != "" {
		in = " (" + ev.Workspace + ")"
	}
	switch ev.Kind {
	case archive.EvSealed:
		return b + " sealed" + in
	case archive.EvState:
		return b + " is " + string(ev.State) + in
	case archive.EvFailed:
		return b + " FAILED" + in
	case archive.EvRetry:
		return b + ": migration will be retried" + in
	case archive.EvRejected:
		return "Entry rejected" + in
	case archive.EvDeleted:
		return b + " deleted" + in
	case archive.EvUndeleted:
		return b + " undeleted" + in
	case archive.EvPurged:
		return b + " purged" + in
	case archive.EvRemoving:
		return b + ": removal in progress" + in
	case archive.EvRemovalUndone:
		return b + ": removal undone, entries back" + in
	case archive.EvMD5Mismatch:
		return b + ": checksum mismatch on recall" + in
	case archive.EvRecallError:
		return b + ": recall failed" + in
	case archive.EvMissing:
		return b + ": cached object missing" + in
	}
	return b + ": " + ev.Kind + in
}

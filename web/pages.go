package web

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tapefs/tapefs/archive"
)

const (
	refreshSeconds = 5
	overviewRows   = 15  // recent batches on the overview
	overviewEvents = 25  // recent events on the overview
	eventWindow    = 512 // the overview looks for failures among this many newest events
	pageRows       = 50  // batches per page of /batches
	maxRows        = 500 // largest ?limit=
	scanBudget     = 5000
	filesPerPage   = 100
	cartridgeScan  = 2000 // files of a batch read to find its cartridges
	batchEventScan = 2000 // events of the workspace read for a batch page, forward from its creation and back from now
)

// batchRow is a batch as the tables show it.
type batchRow struct {
	archive.Batch
	Percent float64
}

func (s *Server) rows(bs []archive.Batch) []batchRow {
	out := make([]batchRow, 0, len(bs))
	for _, b := range bs {
		out = append(out, batchRow{Batch: b, Percent: float64(int(b.Progress*1000)) / 10})
	}
	return out
}

type stateTally struct {
	State archive.BatchState
	tally
}

type workspaceRow struct {
	archive.Workspace
	Percent float64
	States  []stateTally // every state, in life-cycle order
	Batches int64
}

type driveRow struct {
	archive.DriveInfo
	Rate float64
	Busy bool
}

type cartridgeRow struct {
	archive.CartridgeInfo
	Percent  float64
	Pool     string    // "": in no pool
	Admin    string    // root's state (read-only, disabled, lost), shown instead of the library's
	Verified time.Time // last read back whole (zero: never)
	Damaged  int       // bad copies that read-back found
}

func newCartridgeRow(c archive.CartridgeInfo, lib archive.Library) cartridgeRow {
	a := lib.Admin[c.VOLSER]
	return cartridgeRow{CartridgeInfo: c, Percent: pct(c.Used, c.Capacity), Pool: a.Pool, Admin: a.Admin,
		Verified: lib.Verified[c.VOLSER], Damaged: lib.VerifyDamaged[c.VOLSER]}
}

type overviewData struct {
	page
	Totals     []stateTally
	Workspaces []workspaceRow
	Batches    []batchRow
	Older      uint64 // cursor of the next page of /batches, 0: none
	Drives     []driveRow
	Cartridges []cartridgeRow
	Scratch    int // scratch cartridges in their slots, not listed
	Full       int // full cartridges in their slots, not listed
	Library    archive.TapeCounters
	Hosts      []archive.HostView // several hosts on one catalog; nil with one
	Cache      archive.CacheStats
	CachePct   float64
	Stats      archive.Stats
	Recalls    archive.RecallQueue
	Failures   []archive.Event
	Events     []archive.Event
	Charts     []chart // the last hours; nil until two samples
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	d := &overviewData{page: s.newPage(r, "tapefs", "overview")}
	agg, err := s.agg.get()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var wss []archive.Workspace
	err = s.e.Read(s.caller(r), func(tx archive.Snapshot) error {
		var err error
		if wss, err = tx.Workspaces(); err != nil {
			return err
		}
		bs, err := tx.Batches(archive.BatchQuery{Newest: true, Limit: overviewRows + 1})
		if err != nil {
			return err
		}
		if len(bs) > overviewRows {
			bs = bs[:overviewRows]
			d.Older = bs[len(bs)-1].ID
		}
		d.Batches = s.rows(bs)
		evs, _, err := latestEvents(tx, eventQuery{want: eventWindow, budget: eventWindow})
		if err != nil {
			return err
		}
		for _, ev := range evs {
			switch {
			case isFailure(ev.Kind):
				d.Failures = append(d.Failures, ev)
			case len(d.Events) < overviewEvents:
				d.Events = append(d.Events, ev)
			}
		}
		d.Failures = d.Failures[:min(len(d.Failures), overviewEvents)]
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, st := range states {
		d.Totals = append(d.Totals, stateTally{State: st, tally: agg.byState[st]})
	}
	for _, ws := range wss {
		row := workspaceRow{Workspace: ws, Percent: pct(ws.Used, ws.Quota)}
		for _, st := range states {
			t := agg.byWS[ws.Name][st]
			row.States = append(row.States, stateTally{State: st, tally: t})
			row.Batches += t.Batches
		}
		d.Workspaces = append(d.Workspaces, row)
	}

	moves := false
	for _, t := range d.Totals {
		moves = moves || moving(t.State) && t.Batches > 0
	}
	for _, b := range d.Batches {
		moves = moves || moving(b.State)
	}
	lib := s.e.Library()
	drives := lib.Drives
	rates := s.rates.rates(drives)
	for _, di := range drives {
		row := driveRow{DriveInfo: di, Rate: rates[di.Index], Busy: driveBusy(di)}
		moves = moves || row.Busy
		d.Drives = append(d.Drives, row)
	}
	for _, c := range lib.Cartridges {
		// A library may hold thousands: list only those in a drive, being
		// filled or in error; count the others.
		switch {
		case c.Drive >= 0, c.State == archive.CartridgeFilling, c.State == archive.CartridgeError, lib.Admin[c.VOLSER].Admin != "":
		case c.State == archive.CartridgeScratch:
			d.Scratch++
			continue
		case c.State == archive.CartridgeFull:
			d.Full++
			continue
		}
		d.Cartridges = append(d.Cartridges, newCartridgeRow(c, lib))
	}
	d.Library = lib.Counters
	d.Hosts = lib.Hosts
	d.Cache = s.e.CacheStats()
	d.CachePct = pct(d.Cache.Used, d.Cache.Limit)
	d.Stats = s.e.Stats()
	d.Charts = s.history.charts()
	if d.Stats.RecallQueue > 0 {
		d.Recalls = s.e.RecallQueue()
	}
	moves = moves || d.Stats.RecallQueue > 0 || d.Stats.EntriesPending > 0
	if moves {
		d.Refresh = refreshSeconds
	}
	s.render(w, r, http.StatusOK, "overview", d)
}

// driveBusy: a drive that is doing something (not idle with a cartridge,
// not empty) or held by a caller.
func driveBusy(d archive.DriveInfo) bool {
	return d.InUse || d.State != archive.DriveIdle && d.State != archive.DriveEmpty
}

type batchesData struct {
	page
	Workspace string
	State     string
	Limit     int
	AllWS     []string
	AllStates []archive.BatchState
	Batches   []batchRow
	Older     uint64 // cursor for the next (older) page, 0: none
	Newer     uint64 // cursor for the previous (newer) page, 0: none
	ScannedTo uint64 // the budget ran out here without a full page
	First     bool   // this is the newest page
	// LimitParam is the ?limit= to keep in links (0: the default).
	LimitParam int
	Budget     int
	// Refused are the entries of put/ refused at sealing (rejected,
	// write-failed): not batches, but what a person looking at batches,
	// or at failures, must see.
	Refused []archive.PutEntry
	// Quotas are the workspaces shown (the chosen one, or all) with
	// their use of their quota.
	Quotas []workspaceRow
}

func (s *Server) batches(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := &batchesData{page: s.newPage(r, "Batches", "batches"), Workspace: q.Get("workspace"), Limit: pageRows, AllStates: states}
	d.FeedWorkspace = d.Workspace
	var stFilter []archive.BatchState
	if st := strings.ToUpper(strings.TrimSpace(q.Get("state"))); st != "" {
		if !slices.Contains(states, archive.BatchState(st)) {
			s.renderError(w, r, http.StatusBadRequest, "There is no batch state "+strconv.Quote(st)+".")
			return
		}
		d.State = st
		stFilter = []archive.BatchState{archive.BatchState(st)}
		if st == string(archive.StateFailed) {
			d.Nav = "failed"
		}
	}
	after, err1 := queryUint(q.Get("after"))
	before, err2 := queryUint(q.Get("before"))
	limit, err3 := queryUint(q.Get("limit"))
	if err := errors.Join(err1, err2, err3); err != nil {
		s.renderError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if limit > 0 {
		d.Limit = int(min(limit, maxRows))
		d.LimitParam = d.Limit
	}
	d.Budget = s.scanBudget
	if d.Workspace != "" {
		d.Title = "Batches of " + printable(d.Workspace)
	}
	err := s.e.Read(s.caller(r), func(tx archive.Snapshot) error {
		wss, err := tx.Workspaces()
		if err != nil {
			return err
		}
		for _, w := range wss {
			d.AllWS = append(d.AllWS, w.Name)
			if d.Workspace == "" || d.Workspace == w.Name {
				d.Quotas = append(d.Quotas, workspaceRow{Workspace: w, Percent: pct(w.Used, w.Quota)})
			}
		}
		if d.Workspace != "" && !slices.Contains(d.AllWS, d.Workspace) {
			return errNoWorkspace
		}
		lp, err := listPage(tx, d.Workspace, stFilter, after, before, d.Limit, s.scanBudget)
		if err == nil && before != 0 && lp.newer == 0 && len(lp.batches) < d.Limit {
			// Paging up reached the newest batches without a full page:
			// that is the newest page.
			before = 0
			lp, err = listPage(tx, d.Workspace, stFilter, 0, 0, d.Limit, s.scanBudget)
		}
		if err != nil {
			return err
		}
		d.Batches = s.rows(lp.batches)
		d.Older, d.Newer, d.ScannedTo = lp.older, lp.newer, lp.scannedTo
		d.First = after == 0 && before == 0 || before != 0 && lp.newer == 0
		return nil
	})
	if errors.Is(err, errNoWorkspace) {
		s.renderError(w, r, http.StatusNotFound, "There is no workspace "+strconv.Quote(d.Workspace)+".")
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ents, err := s.e.PutEntries(s.caller(r), d.Workspace)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, p := range ents {
		if p.Refused() {
			d.Refused = append(d.Refused, p)
		}
	}
	for _, b := range d.Batches {
		if moving(b.State) {
			d.Refresh = refreshSeconds
		}
	}
	if s.e.Stats().RecallQueue > 0 {
		d.Refresh = refreshSeconds
	}
	s.render(w, r, http.StatusOK, "batches", d)
}

var errNoWorkspace = errors.New("no such workspace")

type listResult struct {
	batches   []archive.Batch // newest first
	older     uint64          // After cursor of the older page; 0: no older batches
	newer     uint64          // Before cursor of the newer page; 0: this is the newest
	scannedTo uint64          // set when the budget ran out: the search goes on after this ID
}

// listPage reads one page of batches, newest first: those older than
// after (0: the newest), or, with before, the page just newer than
// before. With a state filter, at most budget records are read: a rare
// state among many batches does not cost a scan of the catalog; the page
// then ends early and says where the search goes on.
func listPage(tx archive.Snapshot, ws string, st []archive.BatchState, after, before uint64, limit, budget int) (listResult, error) {
	var res listResult
	newest := before == 0
	cursor := after
	if !newest {
		cursor = before
	}
	var got []archive.Batch
	more := false // a batch past the page exists in the direction of reading
	read := 0
	for len(got) <= limit {
		chunk := limit + 1 - len(got)
		if len(st) > 0 {
			chunk = min(max(chunk, 200), budget-read)
		}
		if chunk <= 0 {
			// Out of budget: say where the search goes on, unless that
			// is the end anyway (one record read to know).
			end, err := tx.Batches(archive.BatchQuery{Workspace: ws, Limit: 1, Newest: !newest})
			if err != nil {
				return res, err
			}
			if len(end) > 0 && end[0].ID != cursor {
				res.scannedTo = cursor
			}
			break
		}
		bs, err := tx.Batches(archive.BatchQuery{Workspace: ws, After: cursor, Limit: chunk, Newest: newest})
		if err != nil {
			return res, err
		}
		read += len(bs)
		for _, b := range bs {
			if len(st) == 0 || slices.Contains(st, b.State) {
				if len(got) == limit {
					more = true
					break
				}
				got = append(got, b)
			}
			cursor = b.ID
		}
		if more || len(bs) < chunk {
			break
		}
	}
	if newest {
		switch {
		case more:
			res.older = got[len(got)-1].ID
		case res.scannedTo != 0:
			res.older = res.scannedTo // the search goes on from here
		}
		switch {
		case after == 0:
		case len(got) > 0:
			res.newer = got[0].ID
		default:
			res.newer = after - 1 // the page before ended at after
		}
	} else {
		switch {
		case more:
			res.newer = got[len(got)-1].ID
		case res.scannedTo != 0:
			res.newer = res.scannedTo
		}
		if len(got) > 0 {
			res.older = got[0].ID
		} else {
			res.older = before + 1
		}
		slices.Reverse(got)
	}
	res.batches = got
	return res, nil
}

func queryUint(v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errors.New("\"" + v + "\" is not a number.")
	}
	return n, nil
}

type fileRow struct {
	archive.File
	Kind    string // file, dir, link
	State   archive.FileState
	VOLSERs []string
}

type batchData struct {
	page
	B          batchRow
	WS         archive.Workspace // for the access rule as it applies to the batch
	PurgeAt    time.Time
	Files      []fileRow
	FilesAfter uint64 // cursor of this page
	NextFiles  uint64 // cursor of the next page, 0: none
	FirstFiles bool
	Events     []archive.Event
	EventsCut  bool // some events of the batch, between its first and its newest, were not searched
	Cartridges []cartridgeRow
	CartsFrom  int64 // files checked for cartridges, when not all
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		s.renderError(w, r, http.StatusNotFound, strconv.Quote(r.PathValue("id"))+" is not a batch number.")
		return
	}
	after, err := queryUint(r.URL.Query().Get("after"))
	if err != nil {
		s.renderError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	d := &batchData{page: s.newPage(r, "Batch "+strconv.FormatUint(id, 10), "batches"), FilesAfter: after, FirstFiles: after == 0}
	var b archive.Batch
	vols := map[string]bool{}
	err = s.e.Read(s.caller(r), func(tx archive.Snapshot) error {
		var err error
		if b, err = tx.Batch(id); err != nil {
			return err
		}
		if d.WS, err = tx.Workspace(b.Workspace); err != nil {
			return err
		}
		files, err := tx.Files(id, after, filesPerPage+1)
		if err != nil {
			return err
		}
		if len(files) > filesPerPage {
			files = files[:filesPerPage]
			d.NextFiles = files[len(files)-1].ID
		}
		for i := range files {
			f := &files[i]
			row := fileRow{File: *f, Kind: kindName(f.Type), State: f.State}
			for _, c := range f.Copies {
				if !slices.Contains(row.VOLSERs, c.VOLSER) {
					row.VOLSERs = append(row.VOLSERs, c.VOLSER)
				}
				vols[c.VOLSER] = true
			}
			d.Files = append(d.Files, row)
		}
		// The batch's cartridges: from a bounded number of its files.
		if b.Files > cartridgeScan {
			d.CartsFrom = cartridgeScan
		}
		scan, err := tx.Files(id, 0, cartridgeScan)
		if err != nil {
			return err
		}
		for _, f := range scan {
			for _, c := range f.Copies {
				vols[c.VOLSER] = true
			}
		}
		d.Events, d.EventsCut, err = batchEvents(tx, b, batchEventScan)
		return err
	})
	if errors.Is(err, archive.ErrNotFound) {
		s.renderError(w, r, http.StatusNotFound, "There is no batch "+strconv.FormatUint(id, 10)+" (a purged batch is gone for good).")
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d.B = s.rows([]archive.Batch{b})[0]
	if b.State == archive.StateDeleted {
		d.PurgeAt = b.PurgeAfter
	}
	lib := s.e.Library()
	for v := range vols {
		c := archive.CartridgeInfo{VOLSER: v, State: archive.CartridgeError, Drive: -1}
		for _, lc := range lib.Cartridges {
			if lc.VOLSER == v {
				c = lc
			}
		}
		d.Cartridges = append(d.Cartridges, newCartridgeRow(c, lib))
	}
	slices.SortFunc(d.Cartridges, func(a, b cartridgeRow) int { return strings.Compare(a.VOLSER, b.VOLSER) })
	staging := false
	for _, f := range d.Files {
		staging = staging || f.State == archive.Staging
	}
	if moving(b.State) || staging {
		d.Refresh = refreshSeconds
	}
	s.render(w, r, http.StatusOK, "batch", d)
}

func kindName(t archive.FileType) string {
	switch t {
	case archive.TypeDir:
		return "dir"
	case archive.TypeSymlink:
		return "link"
	}
	return "file"
}

// fail answers an unexpected error (the catalog failed us).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error().Err(err).Str("path", r.URL.Path).Msg("status page request failed")
	s.renderError(w, r, http.StatusInternalServerError, "The catalog could not be read: "+err.Error())
}

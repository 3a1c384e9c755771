package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/archive/errkind"
)

// Server is the control API of a running daemon: HTTP over the engine's
// surface. Every decision of who may do what is the surface's.
type Server struct {
	e     archive.Surface
	log   zerolog.Logger
	mount string // mount point, to resolve seal paths; "" without a mount
	mux   *http.ServeMux
	srv   *http.Server
}

// NewServer builds the API over an engine. mount is where the daemon's
// filesystem is mounted ("" for `tapefs serve`).
func NewServer(e archive.Surface, log zerolog.Logger, mount string) *Server {
	s := &Server{e: e, log: log, mount: mount, mux: http.NewServeMux()}
	s.routes()
	return s
}

// Handler serves the API; every request must carry a Caller in its
// context (ServeUnix attaches it from SO_PEERCRED).
func (s *Server) Handler() http.Handler { return s.mux }

// ServeUnix listens on a Unix socket at path (replacing a stale one) and
// serves until Close. The socket is world-connectable: authorisation is
// per request, from the peer's credentials.
func (s *Server) ServeUnix(path string) error {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return err
	}
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			caller, err := peerCaller(c)
			if err != nil {
				// No credentials: nobody. Requests get 403.
				return WithCaller(ctx, archive.Nobody())
			}
			return WithCaller(ctx, caller)
		},
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("control socket stopped")
		}
	}()
	return nil
}

// Close stops the server, letting requests in flight finish for a moment.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /v1/workspaces", s.listWorkspaces)
	m.HandleFunc("POST /v1/workspaces", s.createWorkspace)
	m.HandleFunc("POST /v1/workspaces/{ws}/quota", s.setQuota)
	m.HandleFunc("POST /v1/workspaces/{ws}/copies", s.setCopies)
	m.HandleFunc("POST /v1/library/cartridges/{volser}", s.setCartridge)
	m.HandleFunc("GET /v1/batches", s.listBatches)
	m.HandleFunc("POST /v1/batches", s.reserve)
	m.HandleFunc("GET /v1/batches/{id}", s.getBatch)
	m.HandleFunc("GET /v1/batches/{id}/wait", s.waitBatch)
	m.HandleFunc("GET /v1/batches/{id}/files", s.listFiles)
	m.HandleFunc("PUT /v1/batches/{id}/data", s.ingest)
	m.HandleFunc("POST /v1/batches/{id}/remove", s.remove)
	m.HandleFunc("POST /v1/batches/{id}/undelete", s.undelete)
	m.HandleFunc("POST /v1/paths/check", s.checkPaths)
	m.HandleFunc("POST /v1/recall", s.recall)
	m.HandleFunc("GET /v1/files/{id}/data", s.fileData)
	m.HandleFunc("POST /v1/seal", s.seal)
	m.HandleFunc("GET /v1/library", s.library)
	m.HandleFunc("POST /v1/library/repack", s.repack)
	m.HandleFunc("GET /v1/entries", s.putEntries)
	m.HandleFunc("POST /v1/cache/evict", s.evict)
	m.HandleFunc("GET /v1/events", s.events)
	m.HandleFunc("POST /v1/verify/cache", s.verifyCache)
	m.HandleFunc("POST /v1/verify/tape", s.verifyTape)
	m.HandleFunc("GET /v1/progress/{token}", s.progress)
	m.HandleFunc("GET /v1/batches/{id}/access", s.access)
}

// httpError is a refusal of the server itself (a malformed request), with
// its kind.
type httpError struct {
	kind errkind.Kind
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(kind errkind.Kind, format string, args ...any) error {
	return &httpError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// kindOf is the kind of an error: the server's own, or the engine's.
func kindOf(err error) errkind.Kind {
	var he *httpError
	if errors.As(err, &he) {
		return he.kind
	}
	return archive.KindOf(err)
}

// fail answers an error with the status errkind.Table gives its kind.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	kind := kindOf(err)
	code := errkind.Of(kind).HTTP
	c := caller(r)
	ev := s.log.Warn()
	if code >= 500 && kind != errkind.NoSpace && kind != errkind.Quota {
		ev = s.log.Error()
	}
	ev.Err(err).Str("method", r.Method).Str("path", r.URL.Path).Uint32("uid", c.UID).Int("status", code).Str("kind", string(kind)).Msg("control request refused")
	writeJSON(w, code, api.ErrorResponse{Error: err.Error(), Kind: string(kind)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(errkind.Invalid, "malformed request body: %v", err)
	}
	return nil
}

func caller(r *http.Request) archive.Caller {
	c, ok := CallerFrom(r.Context())
	if !ok {
		return archive.Nobody()
	}
	return c
}

func pathID(r *http.Request) (uint64, error) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		return 0, errorf(errkind.Invalid, "%q is not a batch or file ID", r.PathValue("id"))
	}
	return id, nil
}

func queryInt(r *http.Request, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errorf(errkind.Invalid, "parameter %s=%q is not a number", name, v)
	}
	return n, nil
}

// read runs fn in one read of the archive as the request's caller.
func (s *Server) read(r *http.Request, fn func(archive.Snapshot) error) error {
	return s.e.Read(caller(r), fn)
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request) {
	out := []api.Workspace{}
	err := s.read(r, func(tx archive.Snapshot) error {
		wss, err := tx.Workspaces()
		for _, ws := range wss {
			out = append(out, wireWorkspace(ws))
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request) {
	var req api.WorkspaceRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	ws, err := s.e.CreateWorkspace(caller(r), archive.Workspace{Name: req.Name, Quota: req.Quota, Manager: req.Manager, Group: req.Group})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, wireWorkspace(ws))
}

func (s *Server) setQuota(w http.ResponseWriter, r *http.Request) {
	var req api.QuotaRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	ws, err := s.e.SetQuota(caller(r), r.PathValue("ws"), req.Quota)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireWorkspace(ws))
}

func (s *Server) setCopies(w http.ResponseWriter, r *http.Request) {
	var req api.CopiesRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	ws, err := s.e.SetCopies(caller(r), r.PathValue("ws"), req.Copies)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireWorkspace(ws))
}

func (s *Server) setCartridge(w http.ResponseWriter, r *http.Request) {
	var req api.CartridgeRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	c, n, err := s.e.SetCartridge(caller(r), r.PathValue("volser"), archive.CartridgeChange{State: req.State, Pool: req.Pool})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.CartridgeResponse{VOLSER: c.VOLSER, Pool: c.Pool, State: c.Admin, Batches: n})
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := queryInt(r, "after")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	bq := archive.BatchQuery{Workspace: q.Get("workspace"), After: after, Limit: int(limit), Newest: q.Get("newest") != ""}
	for _, st := range q["state"] {
		bq.States = append(bq.States, archive.BatchState(strings.ToUpper(st)))
	}
	out := []api.Batch{}
	err = s.read(r, func(tx archive.Snapshot) error {
		bs, err := tx.Batches(bq)
		for _, b := range bs {
			out = append(out, wireBatch(b))
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	var b archive.Batch
	if err == nil {
		err = s.read(r, func(tx archive.Snapshot) error {
			var err error
			b, err = tx.Batch(id)
			return err
		})
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireBatch(b))
}

func (s *Server) waitBatch(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, werr := s.e.WaitBatch(r.Context(), caller(r), id)
	switch {
	case errors.Is(werr, context.Canceled):
		return
	case b.ID == 0 && werr != nil:
		s.fail(w, r, werr)
		return
	}
	// A FAILED batch is an answer, not an error: the status says so.
	writeJSON(w, http.StatusOK, wireBatch(b))
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	after, aerr := queryInt(r, "after")
	limit, lerr := queryInt(r, "limit")
	err = errors.Join(err, aerr, lerr)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if limit == 0 || limit > 10_000 {
		limit = 10_000
	}
	out := []api.FileInfo{}
	err = s.read(r, func(tx archive.Snapshot) error {
		files, err := tx.Files(id, after, int(limit))
		for _, f := range files {
			out = append(out, wireFile(f))
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) reserve(w http.ResponseWriter, r *http.Request) {
	var req api.PutRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := validTag(req.Tag); err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := s.e.Reserve(caller(r), req.Workspace, req.Tag, req.Bytes, string(req.LargestPath), req.Largest)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, wireBatch(b))
}

// validTag: a tag is one word, so it survives being shown in lists and
// passed around in scripts.
func validTag(tag string) error {
	if len(tag) > 64 || strings.ContainsFunc(tag, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errorf(errkind.Invalid, "tag %q: a tag is one word of at most 64 characters", tag)
	}
	return nil
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	var b archive.Batch
	if err == nil {
		b, err = s.e.Ingest(r.Context(), caller(r), id, r.Body)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.notified(r)
	writeJSON(w, http.StatusOK, wireBatch(b))
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	var b archive.Batch
	if err == nil {
		b, err = s.e.Remove(caller(r), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.notified(r)
	writeJSON(w, http.StatusOK, api.RemoveResponse{Batch: wireBatch(b), PurgeAfter: b.PurgeAfter})
}

func (s *Server) undelete(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	var b archive.Batch
	if err == nil {
		b, err = s.e.Undelete(caller(r), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.notified(r)
	writeJSON(w, http.StatusOK, wireBatch(b))
}

// notifiedWait bounds how long an answer waits for the mount to hear of
// the change it made: a kernel that does not take the notification must
// not hang the command.
const notifiedWait = 2 * time.Second

// notified waits until the mount has dropped what the kernel cached about
// the batches this request changed, so that the command's next step (ls
// of the mount) sees the change.
func (s *Server) notified(r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), notifiedWait)
	defer cancel()
	if err := s.e.WaitNotified(ctx); err != nil {
		s.log.Warn().Err(err).Msg("the mount did not take the kernel cache notification in time; ls may show the old state for a moment")
	}
}

func (s *Server) checkPaths(w http.ResponseWriter, r *http.Request) {
	var req api.PathsRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.PathsResponse{Archived: []api.ArchivedPath{}}
	err := s.read(r, func(tx archive.Snapshot) error {
		if _, err := tx.Workspace(req.Workspace); err != nil {
			return err
		}
		for _, p := range req.Paths {
			ids, err := tx.FindPath(req.Workspace, strings.TrimPrefix(string(p), "/"))
			if err != nil {
				return err
			}
			for _, id := range ids {
				b, err := tx.Batch(id)
				if err == nil && b.State.Live() && b.State != archive.StateFailed {
					out.Archived = append(out.Archived, api.ArchivedPath{Path: p, Batch: id})
				}
			}
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) recall(w http.ResponseWriter, r *http.Request) {
	var req api.RecallRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Batch != 0 {
		if err := s.e.RecallBatch(caller(r), req.Batch); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if len(req.Files) > 0 {
		if err := s.e.Recall(caller(r), req.Files...); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusAccepted, struct{}{})
}

func (s *Server) fileData(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rd, f, err := s.e.Open(caller(r), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rd.Close()
	// Wait for the first bytes before answering, so a recall that fails is
	// an error status rather than a cut stream.
	buf := make([]byte, 1<<20)
	n, err := rd.ReadAt(r.Context(), buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		if kindOf(err) == errkind.Internal {
			err = errorf(errkind.TapeFailed, "read %s (batch %d): %v", f.Path, f.Batch, err)
		}
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
	w.Header().Set("X-Tapefs-MD5", f.MD5)
	w.WriteHeader(http.StatusOK)
	off := int64(0)
	for {
		if _, werr := w.Write(buf[:n]); werr != nil {
			return
		}
		off += int64(n)
		if off >= rd.Size() {
			return
		}
		n, err = rd.ReadAt(r.Context(), buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			// The status is sent: cutting the stream short makes the
			// client see fewer bytes than Content-Length.
			s.log.Error().Err(err).Uint64("batch", f.Batch).Str("path", f.Path).Msg("file stream cut")
			return
		}
	}
}

func (s *Server) seal(w http.ResponseWriter, r *http.Request) {
	var req api.SealRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Path != "" {
		ws, entry, err := s.entryOfPath(string(req.Path))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		req.Workspace, req.Entry = ws, api.Name(entry)
	}
	b, err := s.e.Seal(r.Context(), caller(r), req.Workspace, string(req.Entry), req.Tag)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.notified(r)
	writeJSON(w, http.StatusOK, wireBatch(b))
}

// entryOfPath maps MOUNT/<ws>/put/<entry>[/...] to its workspace and entry.
func (s *Server) entryOfPath(p string) (string, string, error) {
	if s.mount == "" {
		return "", "", errorf(errkind.Invalid, "this daemon has no mount (tapefs serve): give the workspace and entry")
	}
	rel, err := filepath.Rel(s.mount, filepath.Clean(p))
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if err != nil || strings.HasPrefix(rel, "..") || len(parts) < 3 || parts[1] != "put" {
		return "", "", errorf(errkind.Invalid, "%s is not inside %s/<workspace>/put/: only entries being put can be sealed", p, s.mount)
	}
	return parts[0], parts[2], nil
}

func (s *Server) putEntries(w http.ResponseWriter, r *http.Request) {
	ents, err := s.e.PutEntries(caller(r), r.URL.Query().Get("workspace"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]api.PutEntry, 0, len(ents))
	for _, p := range ents {
		out = append(out, api.PutEntry{Workspace: p.Workspace, Name: api.Name(p.Name), State: string(p.State), Reason: p.Reason,
			Since: p.Since, Bytes: p.Bytes, Hint: p.Hint})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) library(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, WireLibrary(s.e.Library()))
}

func (s *Server) repack(w http.ResponseWriter, r *http.Request) {
	var req api.RepackRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.e.Repack(caller(r), req.VOLSER)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, api.Repack{VOLSER: st.VOLSER, Job: st.Job, Queued: st.Queued, Progress: st.Progress})
}

func (s *Server) evict(w http.ResponseWriter, r *http.Request) {
	var req api.EvictRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	freed, err := s.e.Evict(caller(r), req.Batch)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.EvictResponse{Freed: freed})
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	after, err := queryInt(r, "after")
	limit, lerr := queryInt(r, "limit")
	if err = errors.Join(err, lerr); err != nil {
		s.fail(w, r, err)
		return
	}
	if limit == 0 || limit > 10_000 {
		limit = 1000
	}
	out := []api.Event{}
	err = s.read(r, func(tx archive.Snapshot) error {
		evs, err := tx.Events(after, int(limit), r.URL.Query().Get("workspace"))
		for _, ev := range evs {
			out = append(out, wireEvent(ev))
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// access answers what a caller may do with a batch, by the one rule. It
// is how the page (which has no caller of its own) shows the rule: the
// caller asked about is given as uid, gid and groups (comma-separated);
// without them, the request's own caller. file=ID asks about reading that
// file of the batch too.
func (s *Server) access(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c := caller(r)
	q := r.URL.Query()
	if q.Has("uid") {
		uid, err := queryInt(r, "uid")
		gid, gerr := queryInt(r, "gid")
		if err = errors.Join(err, gerr); err != nil {
			s.fail(w, r, err)
			return
		}
		c = archive.Caller{UID: uint32(uid), GID: uint32(gid)}
		for _, g := range strings.FieldsFunc(q.Get("groups"), func(r rune) bool { return r == ',' }) {
			n, err := strconv.ParseUint(g, 10, 32)
			if err != nil {
				s.fail(w, r, errorf(errkind.Invalid, "groups=%q: a comma-separated list of gids", q.Get("groups")))
				return
			}
			c.Groups = append(c.Groups, uint32(n))
		}
	}
	file, err := queryInt(r, "file")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The batch must be visible to the one asking.
	err = s.read(r, func(tx archive.Snapshot) error {
		_, err := tx.Batch(id)
		return err
	})
	var a archive.Access
	if err == nil {
		a, err = s.e.Access(c, id, file)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Access{See: a.See, Read: a.Read, Manage: a.Manage, Remove: a.Remove})
}

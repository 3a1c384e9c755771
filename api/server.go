package api

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
	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/catalog"
)

// Server is the control API of a running daemon.
type Server struct {
	e     *archive.Engine
	log   zerolog.Logger
	mount string // mount point, to resolve seal paths; "" without a mount
	mux   *http.ServeMux
	srv   *http.Server
}

// NewServer builds the API over an engine. mount is where the daemon's
// filesystem is mounted ("" for `tapefs serve`).
func NewServer(e *archive.Engine, log zerolog.Logger, mount string) *Server {
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
				return WithCaller(ctx, Caller{UID: ^uint32(0), GID: ^uint32(0)})
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
	m.HandleFunc("POST /v1/cache/evict", s.evict)
	m.HandleFunc("GET /v1/events", s.events)
	m.HandleFunc("POST /v1/verify/cache", s.verifyCache)
}

// httpError is an error with the status code it is answered with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	var rej *archive.RejectError
	switch {
	case errors.As(err, &he):
		code = he.code
	case errors.As(err, &rej):
		code = http.StatusUnprocessableEntity
	case errors.Is(err, catalog.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, catalog.ErrExists):
		code = http.StatusConflict
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusRequestTimeout
	}
	c, _ := CallerFrom(r.Context())
	ev := s.log.Warn()
	if code >= 500 {
		ev = s.log.Error()
	}
	ev.Err(err).Str("method", r.Method).Str("path", r.URL.Path).Uint32("uid", c.UID).Int("status", code).Msg("control request refused")
	writeJSON(w, code, ErrorResponse{Error: err.Error()})
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
		return errorf(http.StatusBadRequest, "malformed request body: %v", err)
	}
	return nil
}

func caller(r *http.Request) Caller {
	c, ok := CallerFrom(r.Context())
	if !ok {
		return Caller{UID: ^uint32(0), GID: ^uint32(0)}
	}
	return c
}

func pathID(r *http.Request) (uint64, error) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, "%q is not a batch or file ID", r.PathValue("id"))
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
		return 0, errorf(http.StatusBadRequest, "parameter %s=%q is not a number", name, v)
	}
	return n, nil
}

// workspace loads a workspace the caller may read (manage, with manage set).
// A workspace the caller may not see is "not found", not "forbidden".
func (s *Server) workspace(r *http.Request, name string, manage bool) (catalog.Workspace, error) {
	var w catalog.Workspace
	err := s.e.Catalog().View(func(tx *catalog.Tx) error {
		var err error
		w, err = tx.Workspace(name)
		return err
	})
	c := caller(r)
	if err != nil || !c.CanRead(w) {
		return w, errorf(http.StatusNotFound, "no workspace %q (or you are not in its group)", name)
	}
	if manage && !c.CanManage(w) {
		return w, errorf(http.StatusForbidden, "only the manager of workspace %s (uid %d) or root may do this", name, w.Manager)
	}
	return w, nil
}

// batch loads a batch whose workspace the caller may read (or manage).
func (s *Server) batch(r *http.Request, id uint64, manage bool) (catalog.Batch, error) {
	var b catalog.Batch
	err := s.e.Catalog().View(func(tx *catalog.Tx) error {
		var err error
		b, err = tx.Batch(id)
		return err
	})
	if err != nil {
		return b, errorf(http.StatusNotFound, "no batch %d", id)
	}
	if _, err := s.workspace(r, b.Workspace, manage); err != nil {
		var he *httpError
		if errors.As(err, &he) && he.code == http.StatusNotFound {
			return b, errorf(http.StatusNotFound, "no batch %d", id)
		}
		return b, err
	}
	return b, nil
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request) {
	var out []catalog.Workspace
	c := caller(r)
	err := s.e.Catalog().View(func(tx *catalog.Tx) error {
		all, err := tx.Workspaces()
		for _, ws := range all {
			if c.CanRead(ws) {
				out = append(out, ws)
			}
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if out == nil {
		out = []catalog.Workspace{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request) {
	var req WorkspaceRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if !caller(r).Root() {
		s.fail(w, r, errorf(http.StatusForbidden, "only root creates workspaces"))
		return
	}
	ws := catalog.Workspace{Name: req.Name, Quota: req.Quota, Manager: req.Manager, Group: req.Group}
	if err := s.e.CreateWorkspace(ws); err != nil {
		if !errors.Is(err, catalog.ErrExists) {
			err = errorf(http.StatusBadRequest, "%v", err)
		}
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ws)
}

func (s *Server) setQuota(w http.ResponseWriter, r *http.Request) {
	var req QuotaRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if !caller(r).Root() {
		s.fail(w, r, errorf(http.StatusForbidden, "only root sets quotas"))
		return
	}
	ws, err := s.e.SetQuota(r.PathValue("ws"), req.Quota)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ws)
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
	opts := catalog.ListOptions{After: after, Limit: int(limit), Newest: q.Get("newest") != ""}
	for _, st := range q["state"] {
		opts.States = append(opts.States, catalog.State(strings.ToUpper(st)))
	}
	var names []string
	if ws := q.Get("workspace"); ws != "" {
		if _, err := s.workspace(r, ws, false); err != nil {
			s.fail(w, r, err)
			return
		}
		names = []string{ws}
	}
	c := caller(r)
	out := []archive.Status{}
	err = s.e.Catalog().View(func(tx *catalog.Tx) error {
		if names == nil {
			all, err := tx.Workspaces()
			if err != nil {
				return err
			}
			for _, ws := range all {
				if c.CanRead(ws) {
					names = append(names, ws.Name)
				}
			}
		}
		for _, ws := range names {
			o := opts
			o.Workspace = ws
			bs, err := tx.Batches(o)
			if err != nil {
				return err
			}
			for _, b := range bs {
				out = append(out, s.e.StatusOf(b))
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

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		var b catalog.Batch
		if b, err = s.batch(r, id, false); err == nil {
			writeJSON(w, http.StatusOK, s.e.StatusOf(b))
			return
		}
	}
	s.fail(w, r, err)
}

func (s *Server) waitBatch(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		_, err = s.batch(r, id, false)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, werr := s.e.WaitBatch(r.Context(), id)
	if errors.Is(werr, context.Canceled) {
		return
	}
	// A FAILED batch is an answer, not an error: the status says so.
	writeJSON(w, http.StatusOK, s.e.StatusOf(b))
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		_, err = s.batch(r, id, false)
	}
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
	var files []catalog.File
	err = s.e.Catalog().View(func(tx *catalog.Tx) error {
		var err error
		files, err = tx.Files(id, after, int(limit))
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]FileInfo, 0, len(files))
	for i := range files {
		out = append(out, FileInfo{File: files[i], State: s.e.FileState(&files[i])})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) reserve(w http.ResponseWriter, r *http.Request) {
	var req PutRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := validTag(req.Tag); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.workspace(r, req.Workspace, true); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.e.CheckFileSize(req.Workspace, req.LargestPath, req.Largest); err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := s.e.Reserve(req.Workspace, req.Tag, caller(r).UID, req.Bytes)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.e.StatusOf(b))
}

// validTag: a tag is one word, so it survives being shown in lists and
// passed around in scripts.
func validTag(tag string) error {
	if len(tag) > 64 || strings.ContainsFunc(tag, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errorf(http.StatusBadRequest, "tag %q: a tag is one word of at most 64 characters", tag)
	}
	return nil
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	var b catalog.Batch
	if err == nil {
		b, err = s.batch(r, id, true)
	}
	if err == nil && b.Owner != caller(r).UID && !caller(r).Root() {
		err = errorf(http.StatusForbidden, "batch %d was reserved by uid %d", id, b.Owner)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err = s.e.Ingest(r.Context(), id, r.Body)
	if err != nil {
		s.fail(w, r, errorf(http.StatusUnprocessableEntity, "%v", err))
		return
	}
	writeJSON(w, http.StatusOK, s.e.StatusOf(b))
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		_, err = s.batch(r, id, true)
	}
	var b catalog.Batch
	if err == nil {
		b, err = s.e.Remove(id)
	}
	if err != nil {
		s.fail(w, r, asConflict(err))
		return
	}
	writeJSON(w, http.StatusOK, RemoveResponse{Batch: s.e.StatusOf(b), PurgeAfter: s.e.PurgeTime(b)})
}

func (s *Server) undelete(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		_, err = s.batch(r, id, true)
	}
	var b catalog.Batch
	if err == nil {
		b, err = s.e.Undelete(id)
	}
	if err != nil {
		s.fail(w, r, asConflict(err))
		return
	}
	writeJSON(w, http.StatusOK, s.e.StatusOf(b))
}

// asConflict turns an engine refusal (already deleted, not deleted) into 409.
func asConflict(err error) error {
	var he *httpError
	if errors.As(err, &he) || errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	return errorf(http.StatusConflict, "%v", err)
}

func (s *Server) checkPaths(w http.ResponseWriter, r *http.Request) {
	var req PathsRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.workspace(r, req.Workspace, false); err != nil {
		s.fail(w, r, err)
		return
	}
	out := PathsResponse{Archived: []ArchivedPath{}}
	err := s.e.Catalog().View(func(tx *catalog.Tx) error {
		for _, p := range req.Paths {
			ids, err := tx.FindPath(req.Workspace, strings.TrimPrefix(string(p), "/"))
			if err != nil {
				return err
			}
			for _, id := range ids {
				b, err := tx.Batch(id)
				if err == nil && b.State.Live() && b.State != catalog.Failed {
					out.Archived = append(out.Archived, ArchivedPath{Path: p, Batch: id})
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
	var req RecallRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Batch != 0 {
		if _, err := s.batch(r, req.Batch, false); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.e.RecallBatch(req.Batch); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if len(req.Files) > 0 {
		seen := map[uint64]bool{}
		err := s.e.Catalog().View(func(tx *catalog.Tx) error {
			for _, id := range req.Files {
				f, err := tx.File(id)
				if err != nil {
					return errorf(http.StatusNotFound, "no file %d", id)
				}
				seen[f.Batch] = true
			}
			return nil
		})
		for b := range seen {
			if err == nil {
				_, err = s.batch(r, b, false)
			}
		}
		if err == nil {
			err = s.e.Recall(req.Files...)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusAccepted, struct{}{})
}

func (s *Server) fileData(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	var f catalog.File
	if err == nil {
		err = s.e.Catalog().View(func(tx *catalog.Tx) error {
			var err error
			f, err = tx.File(id)
			return err
		})
	}
	if err == nil {
		_, err = s.batch(r, f.Batch, false)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rd, err := s.e.Open(id)
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
		s.fail(w, r, errorf(http.StatusBadGateway, "read %s (batch %d): %v", f.Path, f.Batch, err))
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
	var req SealRequest
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
		req.Workspace, req.Entry = ws, Name(entry)
	}
	if _, err := s.workspace(r, req.Workspace, true); err != nil {
		s.fail(w, r, err)
		return
	}
	owner := caller(r).UID
	if st, err := os.Lstat(filepath.Join(s.e.StagingDir(req.Workspace), string(req.Entry))); err == nil {
		owner = fileOwner(st)
	}
	b, err := s.e.Seal(r.Context(), req.Workspace, string(req.Entry), owner, req.Tag)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.e.StatusOf(b))
}

// entryOfPath maps MOUNT/<ws>/put/<entry>[/...] to its workspace and entry.
func (s *Server) entryOfPath(p string) (string, string, error) {
	if s.mount == "" {
		return "", "", errorf(http.StatusBadRequest, "this daemon has no mount (tapefs serve): give the workspace and entry")
	}
	rel, err := filepath.Rel(s.mount, filepath.Clean(p))
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if err != nil || strings.HasPrefix(rel, "..") || len(parts) < 3 || parts[1] != "put" {
		return "", "", errorf(http.StatusBadRequest, "%s is not inside %s/<workspace>/put/: only entries being put can be sealed", p, s.mount)
	}
	return parts[0], parts[2], nil
}

func (s *Server) library(w http.ResponseWriter, r *http.Request) {
	lib := s.e.Library()
	writeJSON(w, http.StatusOK, LibraryStatus{Drives: lib.Drives(), Cartridges: lib.Cartridges(), Counters: lib.Counters()})
}

func (s *Server) evict(w http.ResponseWriter, r *http.Request) {
	var req EvictRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Batch == 0 && !caller(r).Root() {
		s.fail(w, r, errorf(http.StatusForbidden, "only root evicts every batch; give -b ID"))
		return
	}
	if req.Batch != 0 {
		if _, err := s.batch(r, req.Batch, true); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	freed, err := s.e.EvictBatch(req.Batch)
	if err != nil {
		s.fail(w, r, errorf(http.StatusConflict, "%v", err))
		return
	}
	writeJSON(w, http.StatusOK, EvictResponse{Freed: freed})
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
	ws := r.URL.Query().Get("workspace")
	if ws != "" {
		if _, err := s.workspace(r, ws, false); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	c := caller(r)
	out := []catalog.Event{}
	err = s.e.Catalog().View(func(tx *catalog.Tx) error {
		visible := map[string]bool{}
		all, err := tx.Workspaces()
		for _, w := range all {
			visible[w.Name] = c.CanRead(w)
		}
		if err != nil {
			return err
		}
		evs, err := tx.Events(after, int(limit), ws)
		for _, ev := range evs {
			if ev.Workspace == "" && c.Root() || visible[ev.Workspace] {
				out = append(out, ev)
			}
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

package api

import (
	"context"
	"net/http"

	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/catalog"
)

// VerifyRequest asks the daemon to check cached objects against the md5
// recorded at sealing: one batch, one workspace, or (neither) every
// workspace the caller may read.
type VerifyRequest struct {
	Batch     uint64 `json:"batch,omitempty"`
	Workspace string `json:"workspace,omitempty"`
}

// verifyCache checks the cache on demand. Reading is all it takes to ask:
// what it does to damaged objects (drop and recall what is on tape, keep
// and fail what is not) is what any read would have led to, and it only
// ever touches the workspaces the caller may read.
func (s *Server) verifyCache(w http.ResponseWriter, r *http.Request) {
	var req VerifyRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	scope := archive.VerifyScope{Batch: req.Batch}
	switch {
	case req.Batch != 0:
		b, err := s.batch(r, req.Batch, false)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if req.Workspace != "" && b.Workspace != req.Workspace {
			s.fail(w, r, errorf(http.StatusNotFound, "batch %d belongs to workspace %s, not %s", req.Batch, b.Workspace, req.Workspace))
			return
		}
	case req.Workspace != "":
		if _, err := s.workspace(r, req.Workspace, false); err != nil {
			s.fail(w, r, err)
			return
		}
		scope.Workspaces = map[string]bool{req.Workspace: true}
	case !caller(r).Root():
		c := caller(r)
		scope.Workspaces = map[string]bool{}
		if err := s.e.Catalog().View(func(tx *catalog.Tx) error {
			all, err := tx.Workspaces()
			for _, w := range all {
				if c.CanRead(w) {
					scope.Workspaces[w.Name] = true
				}
			}
			return err
		}); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	rep, err := s.e.VerifyCache(r.Context(), scope)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, d := range rep.Damaged {
		s.log.Warn().Uint64("batch", d.Batch).Str("workspace", d.Workspace).Uint64("file", d.FileID).Str("action", d.Action).
			Uint32("uid", caller(r).UID).Msg("tapefs verify found a damaged cached object")
	}
	writeJSON(w, http.StatusOK, rep)
}

// VerifyCache asks the daemon to check cached objects now.
func (c *Client) VerifyCache(ctx context.Context, req VerifyRequest) (archive.VerifyReport, error) {
	var rep archive.VerifyReport
	err := c.do(ctx, http.MethodPost, "/v1/verify/cache", nil, req, &rep)
	return rep, err
}

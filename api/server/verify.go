package server

import (
	"net/http"

	"github.com/tapefs/tapefs/api"
)

// verifyCache checks the cache on demand, in the workspaces the caller may
// see (the surface decides).
func (s *Server) verifyCache(w http.ResponseWriter, r *http.Request) {
	var req api.VerifyRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.e.VerifyCache(r.Context(), caller(r), req.Batch, req.Workspace)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.VerifyReport{Objects: rep.Objects, Bytes: rep.Bytes, Skipped: rep.Skipped}
	for _, d := range rep.Damaged {
		s.log.Warn().Uint64("batch", d.Batch).Str("workspace", d.Workspace).Uint64("file", d.FileID).Str("action", d.Action).
			Uint32("uid", caller(r).UID).Msg("tapefs verify found a damaged cached object")
		out.Damaged = append(out.Damaged, api.DamageReport{FileID: d.FileID, Batch: d.Batch, Workspace: d.Workspace,
			Path: api.Name(d.Path), Want: d.Want, Got: d.Got, Action: d.Action})
	}
	writeJSON(w, http.StatusOK, out)
}

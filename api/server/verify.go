package server

import (
	"fmt"
	"net/http"

	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/archive"
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

// verifyTape reads back tape copies on demand (the surface decides what
// the caller may ask for).
// progress answers how far the work named by the path's token got.
func (s *Server) progress(w http.ResponseWriter, r *http.Request) {
	p, ok := s.e.Progress(r.PathValue("token"))
	if !ok {
		s.fail(w, r, fmt.Errorf("no work in progress under that token: %w", archive.ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, api.WorkProgress{What: p.What, Cartridge: p.Cartridge, Bytes: p.Bytes, BytesTotal: p.BytesTotal,
		Files: p.Files, FilesTotal: p.FilesTotal, Done: p.Done})
}

func (s *Server) verifyTape(w http.ResponseWriter, r *http.Request) {
	var req api.TapeVerifyRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.e.VerifyTape(r.Context(), caller(r), archive.TapeScope{Batch: req.Batch, VOLSER: req.VOLSER, Workspace: req.Workspace, MD5: req.MD5, Progress: req.Progress})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.TapeVerifyReport{Files: rep.Files, Bytes: rep.Bytes, Cartridges: append([]string{}, rep.Cartridges...)}
	for _, d := range rep.Damaged {
		s.log.Warn().Uint64("batch", d.Batch).Str("workspace", d.Workspace).Str("volser", d.VOLSER).Int("tape_file", d.TapeFile).
			Uint64("file", d.FileID).Uint32("uid", caller(r).UID).Msg("tapefs verify found a damaged copy on tape")
		out.Damaged = append(out.Damaged, api.TapeDamage{FileID: d.FileID, Batch: d.Batch, Workspace: d.Workspace, Path: api.Name(d.Path),
			VOLSER: d.VOLSER, TapeFile: d.TapeFile, Offset: d.Offset, Want: d.Want, Got: d.Got, WantCRC: d.WantCRC, GotCRC: d.GotCRC, Error: d.Error})
	}
	writeJSON(w, http.StatusOK, out)
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/archive/errkind"
)

// TestErrorTableDrivesStatus: every error of the engine is answered with
// the HTTP status errkind.Table gives its kind, the body names the kind,
// and the client turns it back into the table's exit code. Sealing, a
// full cache and a busy object are not 500, and each cause of a refused
// seal has a status of its own.
func TestErrorTableDrivesStatus(t *testing.T) {
	s := &Server{log: zerolog.Nop()}
	reject := func(cause error) error {
		return &archive.RejectError{Workspace: "w", Entry: "e", Reason: "why", Cause: cause}
	}
	cases := []struct {
		err  error
		kind errkind.Kind
	}{
		{fmt.Errorf("batch 7: %w", archive.ErrNotFound), errkind.NotFound},
		{archive.ErrExists, errkind.Exists},
		{fmt.Errorf("rm: %w", archive.ErrDenied), errkind.Denied},
		{fmt.Errorf("seal: %w", archive.ErrSealing), errkind.Sealing},
		{fmt.Errorf("stage: %w", archive.ErrNoSpace), errkind.NoSpace},
		{fmt.Errorf("evict: %w", archive.ErrBusy), errkind.Busy},
		{fmt.Errorf("undelete: %w", archive.ErrConflict), errkind.Conflict},
		{reject(archive.ErrQuota), errkind.Quota},
		{reject(archive.ErrFileTooBig), errkind.TooBig},
		{reject(archive.ErrEntryOpen), errkind.EntryOpen},
		{reject(archive.ErrUnsupported), errkind.Unsupported},
		{context.Canceled, errkind.Interrupted},
		{errorf(errkind.Invalid, "bad"), errkind.Invalid},
		{errors.New("disk on fire"), errkind.Internal},
	}
	rejectStatus := map[int]errkind.Kind{}
	for _, tc := range cases {
		w := httptest.NewRecorder()
		s.fail(w, httptest.NewRequest("GET", "/v1/x", nil), tc.err)
		want := errkind.Table[tc.kind].HTTP
		if w.Code != want {
			t.Errorf("%v: status %d, want %d (%s)", tc.err, w.Code, want, tc.kind)
		}
		var body api.ErrorResponse
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Kind != string(tc.kind) || body.Error != tc.err.Error() {
			t.Errorf("%v: body %s, want kind %q and the message", tc.err, w.Body.Bytes(), tc.kind)
		}
		switch tc.kind {
		case errkind.Sealing, errkind.NoSpace, errkind.Busy:
			if w.Code == http.StatusInternalServerError {
				t.Errorf("%v is answered 500", tc.err)
			}
		case errkind.Quota, errkind.TooBig, errkind.EntryOpen, errkind.Unsupported:
			if other, dup := rejectStatus[w.Code]; dup {
				t.Errorf("seal refusals %s and %s share status %d", other, tc.kind, w.Code)
			}
			rejectStatus[w.Code] = tc.kind
		}
		// The client reads the kind back and exits by the same table.
		if got := api.ExitCode(&api.Error{Status: w.Code, Kind: errkind.Kind(body.Kind)}); got != errkind.Table[tc.kind].Exit {
			t.Errorf("%v: exit %d, want %d", tc.err, got, errkind.Table[tc.kind].Exit)
		}
	}
}

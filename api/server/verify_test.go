package server

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/archive"
)

// TestVerifyScope: verify checks only what the caller may read — a
// stranger neither sees the batch nor gets its files checked; a member and
// root do.
func TestVerifyScope(t *testing.T) {
	s, _ := newTestServer(t)
	code, body := call(t, s, manager, "POST", "/v1/batches", api.PutRequest{Workspace: "gws", Tag: "run1", Bytes: 5})
	if code != http.StatusCreated {
		t.Fatalf("reserve: %d %s", code, body)
	}
	var st api.Batch
	json.Unmarshal(body, &st)
	if code, body := call(t, s, manager, "PUT", "/v1/batches/"+itoa(st.ID)+"/data", oneFileTar(t)); code != http.StatusOK {
		t.Fatalf("upload: %d %s", code, body)
	}
	report := func(c archive.Caller, req api.VerifyRequest) (int, api.VerifyReport) {
		code, body := call(t, s, c, "POST", "/v1/verify/cache", req)
		var rep api.VerifyReport
		json.Unmarshal(body, &rep)
		return code, rep
	}
	if code, _ := report(stranger, api.VerifyRequest{Batch: st.ID}); code != http.StatusNotFound {
		t.Errorf("stranger verify -b: %d; want 404", code)
	}
	if code, _ := report(stranger, api.VerifyRequest{Workspace: "gws"}); code != http.StatusNotFound {
		t.Errorf("stranger verify -w: %d; want 404", code)
	}
	if code, rep := report(stranger, api.VerifyRequest{}); code != http.StatusOK || rep.Objects != 0 {
		t.Errorf("stranger verify of everything: %d, %d objects; want 200 and none of gws", code, rep.Objects)
	}
	for _, c := range []archive.Caller{member, root} {
		if code, rep := report(c, api.VerifyRequest{}); code != http.StatusOK || rep.Objects != 1 || len(rep.Damaged) != 0 {
			t.Errorf("verify as uid %d: %d %+v; want the one file checked, good", c.UID, code, rep)
		}
	}
	if code, _ := report(member, api.VerifyRequest{Batch: st.ID, Workspace: "other"}); code != http.StatusNotFound {
		t.Errorf("verify -b with the wrong -w: %d; want 404", code)
	}
}

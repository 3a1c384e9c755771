package server

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/enginetest"
)

func newTestServer(t testing.TB) (*Server, *archive.Engine) {
	t.Helper()
	e := enginetest.Open(t, enginetest.Options{}).Engine
	if err := e.CreateWorkspace(catalog.Workspace{Name: "gws", Manager: 1000, Group: 500}); err != nil {
		t.Fatal(err)
	}
	return NewServer(e.Surface(), zerolog.Nop(), "/mnt/tape"), e
}

func call(t *testing.T, s *Server, c archive.Caller, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req := httptest.NewRequest(method, path, rd).WithContext(WithCaller(context.Background(), c))
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w.Code, w.Body.Bytes()
}

var (
	root     = archive.Caller{UID: 0, GID: 0}
	manager  = archive.Caller{UID: 1000, GID: 1000}
	member   = archive.Caller{UID: 2000, GID: 2000, Groups: []uint32{500}}
	stranger = archive.Caller{UID: 3000, GID: 3000}
)

func oneFileTar(t *testing.T) io.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "data/f", Mode: 0o644, Size: 5, ModTime: time.Now(), Typeflag: tar.TypeReg})
	tw.Write([]byte("hello"))
	tw.Close()
	return &buf
}

// TestAuthorisation: the manager puts and removes, group members list and
// read, strangers see nothing, root does everything.
func TestAuthorisation(t *testing.T) {
	s, e := newTestServer(t)
	// Reserve: manager yes, member no (403), stranger "not found".
	if code, _ := call(t, s, member, "POST", "/v1/batches", api.PutRequest{Workspace: "gws"}); code != http.StatusForbidden {
		t.Fatalf("member reserve: %d", code)
	}
	if code, _ := call(t, s, stranger, "POST", "/v1/batches", api.PutRequest{Workspace: "gws"}); code != http.StatusNotFound {
		t.Fatalf("stranger reserve: %d", code)
	}
	code, body := call(t, s, manager, "POST", "/v1/batches", api.PutRequest{Workspace: "gws", Tag: "run1", Bytes: 5})
	if code != http.StatusCreated {
		t.Fatalf("manager reserve: %d %s", code, body)
	}
	var st api.Batch
	json.Unmarshal(body, &st)
	if code, body := call(t, s, manager, "PUT", "/v1/batches/"+itoa(st.ID)+"/data", oneFileTar(t)); code != http.StatusOK {
		t.Fatalf("upload: %d %s", code, body)
	}
	if _, err := e.WaitBatch(context.Background(), st.ID); err != nil {
		t.Fatal(err)
	}
	// Listing.
	for _, tc := range []struct {
		c    archive.Caller
		want int
	}{{manager, 1}, {member, 1}, {root, 1}, {stranger, 0}} {
		code, body := call(t, s, tc.c, "GET", "/v1/workspaces", nil)
		var ws []api.Workspace
		json.Unmarshal(body, &ws)
		if code != 200 || len(ws) != tc.want {
			t.Errorf("uid %d sees %d workspaces (%d), want %d", tc.c.UID, len(ws), code, tc.want)
		}
		code, body = call(t, s, tc.c, "GET", "/v1/batches", nil)
		var bs []api.Batch
		json.Unmarshal(body, &bs)
		if code != 200 || len(bs) != tc.want {
			t.Errorf("uid %d sees %d batches, want %d", tc.c.UID, len(bs), tc.want)
		}
	}
	if code, _ := call(t, s, stranger, "GET", "/v1/batches/"+itoa(st.ID), nil); code != http.StatusNotFound {
		t.Errorf("stranger reads batch: %d", code)
	}
	// Reading a file: member yes, stranger no.
	_, files := call(t, s, member, "GET", "/v1/batches/"+itoa(st.ID)+"/files", nil)
	var fis []api.FileInfo
	json.Unmarshal(files, &fis)
	var fid uint64
	for _, f := range fis {
		if f.Path == "data/f" {
			fid = f.ID
		}
	}
	if code, body := call(t, s, member, "GET", "/v1/files/"+itoa(fid)+"/data", nil); code != 200 || string(body) != "hello" {
		t.Errorf("member get: %d %q", code, body)
	}
	if code, _ := call(t, s, stranger, "GET", "/v1/files/"+itoa(fid)+"/data", nil); code != http.StatusNotFound {
		t.Errorf("stranger get: %d", code)
	}
	// Removing: member no, manager yes; undelete by manager.
	if code, _ := call(t, s, member, "POST", "/v1/batches/"+itoa(st.ID)+"/remove", struct{}{}); code != http.StatusForbidden {
		t.Errorf("member rm: %d", code)
	}
	code, body = call(t, s, manager, "POST", "/v1/batches/"+itoa(st.ID)+"/remove", struct{}{})
	var rr api.RemoveResponse
	json.Unmarshal(body, &rr)
	if code != 200 || rr.Batch.State != api.Deleted || rr.PurgeAfter.Before(time.Now().Add(6*24*time.Hour)) {
		t.Errorf("manager rm: %d %s", code, body)
	}
	if code, _ := call(t, s, manager, "POST", "/v1/batches/"+itoa(st.ID)+"/remove", struct{}{}); code != http.StatusConflict {
		t.Errorf("second rm: %d", code)
	}
	if code, _ := call(t, s, manager, "POST", "/v1/batches/"+itoa(st.ID)+"/undelete", struct{}{}); code != 200 {
		t.Errorf("undelete: %d", code)
	}
	// Workspaces: only root creates.
	if code, _ := call(t, s, manager, "POST", "/v1/workspaces", api.WorkspaceRequest{Name: "x"}); code != http.StatusForbidden {
		t.Errorf("manager creates a workspace: %d", code)
	}
	if code, body := call(t, s, root, "POST", "/v1/workspaces", api.WorkspaceRequest{Name: "x", Manager: 3000}); code != http.StatusCreated {
		t.Errorf("root creates a workspace: %d %s", code, body)
	}
	if code, _ := call(t, s, root, "POST", "/v1/workspaces", api.WorkspaceRequest{Name: "x"}); code != http.StatusConflict {
		t.Errorf("duplicate workspace: %d", code)
	}
}

// TestBadRequests: malformed input gets 400 with a message saying what.
func TestBadRequests(t *testing.T) {
	s, _ := newTestServer(t)
	for _, tc := range []struct{ method, path, body, want string }{
		{"POST", "/v1/batches", "{not json", "malformed request body"},
		{"POST", "/v1/batches", `{"workspace":"gws","tag":"two words"}`, "one word"},
		{"GET", "/v1/batches/abc", "", "not a batch or file ID"},
		{"GET", "/v1/batches?limit=x", "", "not a number"},
		{"POST", "/v1/seal", `{"path":"/elsewhere/x"}`, "not inside /mnt/tape"},
	} {
		code, body := call(t, s, manager, tc.method, tc.path, strings.NewReader(tc.body))
		if code != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %s: %d %s; want 400 with %q", tc.method, tc.path, code, body, tc.want)
		}
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

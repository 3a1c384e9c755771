package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/archive"
)

// FuzzControlRequest sends any method, path, query and body to the
// control API as any of four callers (root, the workspace's manager, a
// member of its group, a stranger), against one engine whose state the
// requests change. A request must never panic the daemon or be answered
// 500 (a malformed request is the caller's fault: 4xx, saying what), and
// every JSON answer must be JSON.
func FuzzControlRequest(f *testing.F) {
	s, e := newTestServer(f)
	for _, seed := range []struct {
		method uint8
		who    uint8
		target string
		body   string
	}{
		{1, 1, "batches", `{"workspace":"gws","tag":"t","files":2,"bytes":5}`},
		{0, 2, "batches?workspace=gws&state=cached&after=1&limit=10&newest=1", ""},
		{0, 2, "batches/1", ""},
		{0, 2, "batches/1/files?after=0&limit=100", ""},
		{2, 1, "batches/1/data", "not a tar stream"},
		{1, 1, "batches/1/remove", `{}`},
		{1, 1, "batches/1/undelete", `{}`},
		{1, 2, "paths/check", `{"workspace":"gws","paths":["data/a","/data/b"]}`},
		{1, 2, "recall", `{"files":[1,2],"batch":1}`},
		{0, 2, "files/1/data", ""},
		{1, 1, "seal", `{"workspace":"gws","entry":"run1","tag":"x"}`},
		{1, 1, "seal", `{"path":"/mnt/tape/gws/put/run1/sub"}`},
		{0, 3, "library", ""},
		{1, 0, "cache/evict", `{"batch":0}`},
		{0, 0, "events?after=0&limit=5&workspace=gws", ""},
		{1, 0, "workspaces", `{"name":"ws2","quota":1048576,"manager":1000,"group":500}`},
		{1, 0, "workspaces/gws/quota", `{"quota":-1}`},
		{0, 3, "workspaces", ""},
		{1, 1, "batches", `{"workspace":"gws","bytes":-9223372036854775808,"files":-1}`},
		{1, 1, "batches", `{"workspace":"gws","unknown":1}`},
	} {
		f.Add(seed.method, seed.who, seed.target, []byte(seed.body))
	}
	methods := []string{"GET", "POST", "PUT", "DELETE"}
	callers := []archive.Caller{root, manager, member, stranger}
	f.Fuzz(func(t *testing.T, method, who uint8, target string, body []byte) {
		u, err := url.Parse("http://tapefs/v1/" + target)
		if err != nil {
			return // not a request a client can send
		}
		// Waits for tape and reads that recall end when this does: a
		// request of the fuzzer must not block it.
		ctx, cancel := context.WithTimeout(WithCaller(context.Background(), callers[int(who)%len(callers)]), 200*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, methods[int(method)%len(methods)], u.String(), bytes.NewReader(body))
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s (%q) as uid %d: 500 %s", req.Method, u, body, callers[int(who)%len(callers)].UID, w.Body.Bytes())
		}
		if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s: answer is not JSON: %q", req.Method, u, w.Body.Bytes())
		}
		// No request may make a workspace's use negative or overflow it:
		// the quota check trusts it.
		if err := e.Surface().Read(root, func(tx archive.Snapshot) error {
			wss, err := tx.Workspaces()
			for _, ws := range wss {
				if ws.Used < 0 {
					t.Fatalf("%s %s (%q): workspace %s uses %d bytes", req.Method, u, body, ws.Name, ws.Used)
				}
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	})
}

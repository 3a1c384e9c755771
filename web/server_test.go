package web

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tapefs/tapefs/api"
)

func TestToken(t *testing.T) {
	te := newTestEnv(t, Options{Token: "s3cret"})
	paths := []string{"/", "/batches", "/batches/1", "/feed.atom", "/metrics", "/api/v1/workspaces", "/nothing"}
	for _, p := range paths {
		if code, body, h := te.get(p); code != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s without the token: %d %s", p, code, body)
		}
		if code, _, _ := te.get(p, "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d", p, code)
		}
		if code, _, _ := te.get(p + "?token=s3cre"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a prefix of the token: %d", p, code)
		}
	}
	for _, p := range []string{"/", "/batches", "/feed.atom", "/metrics", "/api/v1/workspaces"} {
		if code, body, _ := te.get(p, "Authorization", "Bearer s3cret"); code != http.StatusOK {
			t.Errorf("GET %s with the header: %d %s", p, code, body)
		}
		sep := "?"
		if strings.Contains(p, "?") {
			sep = "&"
		}
		if code, body, _ := te.get(p + sep + "token=s3cret"); code != http.StatusOK {
			t.Errorf("GET %s with ?token=: %d %s", p, code, body)
		}
	}
	// Links of a page asked for with ?token= keep it; with the header they
	// need not.
	_, body, _ := te.get("/?token=s3cret")
	if !strings.Contains(body, `href="/batches?token=s3cret"`) {
		t.Error("the overview's links drop the token")
	}
	_, body, _ = te.get("/batches?token=s3cret")
	if !strings.Contains(body, `<input type="hidden" name="token" value="s3cret">`) {
		t.Error("the filter form drops the token")
	}
	_, body, _ = te.get("/", "Authorization", "Bearer s3cret")
	if strings.Contains(body, "s3cret") {
		t.Error("a page asked for with the header shows the token")
	}
}

func TestReadOnly(t *testing.T) {
	te := newTestEnv(t, Options{})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		for _, p := range []string{"/", "/api/v1/workspaces", "/api/v1/batches", "/api/v1/recall", "/metrics"} {
			if code, _, h := te.do(m, p); code != http.StatusMethodNotAllowed || h.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d", m, p, code)
			}
		}
	}
	if code, _, _ := te.do(http.MethodHead, "/"); code != http.StatusOK {
		t.Errorf("HEAD /: %d", code)
	}
}

func TestAPI(t *testing.T) {
	te := newTestEnv(t, Options{})
	b := te.put("gws", "run1", "x", map[string]string{"f": "hello"})
	te.wait(b.ID)
	var wss []api.Workspace
	if err := json.Unmarshal([]byte(te.mustGet("/api/v1/workspaces")), &wss); err != nil || len(wss) != 1 || wss[0].Name != "gws" {
		t.Errorf("workspaces: %v %+v", err, wss)
	}
	var st struct {
		ID    uint64
		State api.State
	}
	if err := json.Unmarshal([]byte(te.mustGet("/api/v1/batches/1")), &st); err != nil || st.ID != b.ID || !st.State.OnTape() {
		t.Errorf("batch: %v %+v", err, st)
	}
	var files []api.FileInfo
	if err := json.Unmarshal([]byte(te.mustGet("/api/v1/batches/1/files")), &files); err != nil || len(files) != 2 {
		t.Errorf("files: %v %+v", err, files)
	}
	te.mustGet("/api/v1/library")
	te.mustGet("/api/v1/events")
	// File contents stay on the control socket.
	ids, _ := te.fileIDs(b.ID)
	if code, body, _ := te.get("/api/v1/files/" + strconv.FormatUint(ids[0], 10) + "/data"); code != http.StatusForbidden {
		t.Errorf("file data on the status listener: %d %s", code, body)
	}
}

func TestListen(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		ln, err := Listen(addr, "")
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%s) without a token succeeded", addr)
		} else if !strings.Contains(err.Error(), "--http-token") {
			t.Errorf("Listen(%s): %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		ln, err := Listen(addr, "")
		if err != nil {
			t.Errorf("Listen(%s): %v", addr, err)
			continue
		}
		ln.Close()
	}
	ln, err := Listen("0.0.0.0:0", "tok")
	if err != nil {
		t.Fatalf("Listen with a token: %v", err)
	}
	ln.Close()
	if _, err := Listen("nonsense", ""); err == nil {
		t.Error("Listen(nonsense) succeeded")
	}
}

// TestServe runs the real listener: a request without the token is
// refused, with it answered; Close ends Serve.
func TestServe(t *testing.T) {
	te := newTestEnv(t, Options{Token: "tok"})
	ln, err := Listen("127.0.0.1:0", "tok")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- te.s.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %d", resp.StatusCode)
	}
	resp, err = http.Get(url + "?token=tok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("with the token: %d", resp.StatusCode)
	}
	if err := te.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("still listening after Close")
	}
}

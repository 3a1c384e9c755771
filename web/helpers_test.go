package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/enginetest"
	"github.com/tapefs/tapefs/tape"
)

// Names users typed that must come out escaped everywhere.
const (
	evilTag   = "<script>alert(1)</script>"
	evilEntry = `run "7" <b>&amp;`
	evilFile  = "we\"ird 'name' <i>&\nline2.dat"
	// evilWS cannot be made through the engine (workspace names are
	// checked there) but the catalog would hold it.
	evilWS = `ws"<em>&x`
)

type testEnv struct {
	t   testing.TB
	s   *Server
	e   *archive.Engine
	cat *catalog.Catalog // for seeding records the engine would take long to make
	lib tape.Library
}

// newTestEnv starts an engine on a temporary home with workspace gws and
// the server over it.
func newTestEnv(t testing.TB, opts Options) *testEnv {
	t.Helper()
	h := enginetest.Open(t, enginetest.Options{Drives: 2, Cartridges: 4, CacheLimit: 10 << 30})
	e := h.Engine
	if err := e.CreateWorkspace(catalog.Workspace{Name: "gws", Manager: 1000, Group: 500, Quota: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	s := New(e.Surface(), opts)
	t.Cleanup(func() { s.Close() })
	return &testEnv{t: t, s: s, e: e, cat: h.Catalog, lib: h.Library}
}

// put seals an entry of files (path -> content) into a batch.
func (te *testEnv) put(ws, entry, tag string, files map[string]string) catalog.Batch {
	te.t.Helper()
	root := filepath.Join(te.e.StagingDir(ws), entry)
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			te.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			te.t.Fatal(err)
		}
	}
	b, err := te.e.Seal(context.Background(), ws, entry, 1000, tag)
	if err != nil {
		te.t.Fatal(err)
	}
	return b
}

func (te *testEnv) wait(id uint64) catalog.Batch {
	te.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := te.e.WaitBatch(ctx, id)
	if err != nil {
		te.t.Fatal(err)
	}
	return b
}

// get requests path with optional header key, value pairs.
func (te *testEnv) get(path string, hdr ...string) (int, string, http.Header) {
	te.t.Helper()
	return te.do(http.MethodGet, path, hdr...)
}

func (te *testEnv) do(method, path string, hdr ...string) (int, string, http.Header) {
	te.t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	te.s.Handler().ServeHTTP(w, req)
	body, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(body), w.Result().Header
}

// mustGet requests path and fails the test unless it is 200.
func (te *testEnv) mustGet(path string) string {
	te.t.Helper()
	code, body, _ := te.get(path)
	if code != http.StatusOK {
		te.t.Fatalf("GET %s: %d\n%s", path, code, body)
	}
	return body
}

// evilWorkspace adds a workspace whose name needs escaping, with one
// batch, straight into the catalog.
func (te *testEnv) evilWorkspace() uint64 {
	te.t.Helper()
	var id uint64
	err := te.cat.Update(func(tx *catalog.Tx) error {
		if err := tx.PutWorkspace(catalog.Workspace{Name: evilWS, Quota: 1 << 20}); err != nil {
			return err
		}
		b, _, err := tx.RegisterBatch(catalog.Batch{Workspace: evilWS, Tag: evilTag, Entry: evilEntry, State: catalog.Synced,
			Created: time.Now(), Synced: time.Now(), Bytes: 3, OnTape: 3},
			[]catalog.File{{Path: evilEntry, Type: catalog.TypeDir, Mode: 0o755}, {Path: evilEntry + "/" + evilFile, Type: catalog.TypeFile, Mode: 0o644, Size: 3, MD5: "0123"}})
		if err != nil {
			return err
		}
		id = b.ID
		_, err = tx.AppendEvent(catalog.Event{Time: time.Now(), Workspace: evilWS, Batch: b.ID, Kind: archive.EvFailed, State: catalog.Failed,
			Message: "could not write " + evilEntry + "/" + evilFile + " " + evilTag})
		return err
	})
	if err != nil {
		te.t.Fatal(err)
	}
	return id
}

// assertEscaped checks that none of the raw names appear in body.
func assertEscaped(t testing.TB, where, body string) {
	t.Helper()
	for _, raw := range []string{"<script>", "<b>", "<i>", "<em>", `"7"`, "'name'"} {
		if strings.Contains(body, raw) {
			i := strings.Index(body, raw)
			t.Errorf("%s: raw %q is in the output: ...%s...", where, raw, body[max(0, i-80):min(len(body), i+80)])
		}
	}
}

// fileIDs are the regular files of a batch.
func (te *testEnv) fileIDs(batch uint64) ([]uint64, error) {
	var out []uint64
	err := te.cat.View(func(tx *catalog.Tx) error {
		fs, err := tx.Files(batch, 0, 0)
		for _, f := range fs {
			if f.Type == catalog.TypeFile {
				out = append(out, f.ID)
			}
		}
		return err
	})
	return out, err
}

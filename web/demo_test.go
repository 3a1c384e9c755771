//go:build demo

package web

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/catalog"
)

// TestDemo serves the pages over a small archive in every state, to look
// at them in a browser:
//
//	TAPEFS_WEB_DEMO=127.0.0.1:7071 go test -tags demo -run TestDemo -timeout 0 ./web/

// It is built only with the "demo" tag: not a test of the suite.
//
// It serves for TAPEFS_WEB_DEMO_FOR (default 2m).
func TestDemo(t *testing.T) {
	addr := os.Getenv("TAPEFS_WEB_DEMO")
	if addr == "" {
		t.Fatal("set TAPEFS_WEB_DEMO=127.0.0.1:PORT to serve a demo archive")
	}
	serveFor := 2 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("TAPEFS_WEB_DEMO_FOR")); err == nil {
		serveFor = d
	}
	te := newTestEnv(t, Options{Token: os.Getenv("TAPEFS_WEB_DEMO_TOKEN"), FUSEOps: func() map[string]uint64 {
		return map[string]uint64{"lookup": 1200, "getattr": 5400, "read": 880, "write": 96}
	}})
	for _, w := range []catalog.Workspace{{Name: "atlas-raw", Quota: 0}, {Name: "cms_daq", Quota: 1200 << 10}} {
		if err := te.e.CreateWorkspace(w); err != nil {
			t.Fatal(err)
		}
	}
	var last catalog.Batch
	for i := range 12 {
		ws := []string{"gws", "atlas-raw", "cms_daq"}[i%3]
		files := map[string]string{}
		for j := range 3 + i {
			files[fmt.Sprintf("run%04d/chunk-%02d.dat", 1200+i, j)] = string(make([]byte, 4096*(j+1)))
		}
		tag := []string{"", "calib", "physics-2026"}[i%3]
		last = te.put(ws, fmt.Sprintf("run%04d", 1200+i), tag, files)
	}
	te.wait(last.ID)
	b := te.put("gws", evilEntry, evilTag, map[string]string{evilFile: "abc"})
	te.wait(b.ID)
	del := te.put("cms_daq", "scratch-test", "", map[string]string{"a": "b"})
	te.wait(del.ID)
	if _, err := te.e.Remove(del.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := te.e.Reserve("atlas-raw", "cli-put", 1000, 50<<20); err != nil {
		t.Fatal(err)
	}
	// A failure, as the engine would record it.
	err := te.cat.Update(func(tx *catalog.Tx) error {
		fb, _, err := tx.RegisterBatch(catalog.Batch{Workspace: "gws", Entry: "run0999", State: catalog.Failed, Created: time.Now().Add(-time.Hour),
			Bytes: 1 << 30, Reason: "write to TF0003 failed: medium error at block 88121; retries exhausted (5 attempts)", Attempts: 5},
			[]catalog.File{{Path: "run0999", Type: catalog.TypeDir, Mode: 0o755}, {Path: "run0999/big.raw", Type: catalog.TypeFile, Mode: 0o644, Size: 1 << 30, MD5: "8f14e45fceea167a5a36dedd4bea2543"}})
		if err != nil {
			return err
		}
		_, err = tx.AppendEvent(catalog.Event{Time: time.Now(), Workspace: "gws", Batch: fb.ID, VOLSER: "TF0003", Kind: archive.EvFailed, State: catalog.Failed, Message: fb.Reason})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(addr, te.s.opts.Token)
	if err != nil {
		t.Fatal(err)
	}
	go te.s.Serve(ln)
	t.Logf("serving http://%s/ for %s", ln.Addr(), serveFor)
	time.Sleep(serveFor)
}

package web

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/enginetest"
)

// TestSealingProgressShown: a batch whose md5s are still being computed
// shows as SEALING with the share checksummed, on its page and in the
// batch list, and the page keeps refreshing.
func TestSealingProgressShown(t *testing.T) {
	// 8 MiB at 1 MiB/s: the batch stays SEALING for 8 s.
	h := enginetest.Open(t, enginetest.Options{Config: func(c *archive.Config) {
		c.FlushAge, c.RecallLinger, c.HashRate = 0, 0, 1<<20
	}})
	e := h.Engine
	s := New(e.Surface(), Options{})
	t.Cleanup(func() { s.Close() })
	if err := e.CreateWorkspace(catalog.Workspace{Name: "gws"}); err != nil {
		t.Fatal(err)
	}
	te := &testEnv{t: t, s: s, e: e, cat: h.Catalog, lib: h.Library}
	data := make([]byte, 8<<20)
	rand.Read(data)
	if err := os.MkdirAll(filepath.Join(e.StagingDir("gws"), "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.StagingDir("gws"), "run", "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := e.Seal(context.Background(), "gws", "run", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	checksummed := regexp.MustCompile(`<progress max="100" value="([0-9.]+)"></progress> [^<]*<span class="dim">\(([0-9.]+) %\) computed`)
	deadline := time.Now().Add(8 * time.Second)
	for {
		page := te.mustGet(fmt.Sprintf("/batches/%d", b.ID))
		if !strings.Contains(page, `<span class="badge st-sealing">SEALING</span>`) {
			t.Fatalf("batch page of a SEALING batch without its badge:\n%s", page)
		}
		if !strings.Contains(page, `http-equiv="refresh"`) {
			t.Errorf("the page of a SEALING batch does not refresh itself")
		}
		m := checksummed.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("batch page of a SEALING batch shows no checksum progress:\n%s", page)
		}
		if m[2] != "0" {
			list := te.mustGet("/batches")
			if !strings.Contains(list, "% checksummed") {
				t.Errorf("the batch list does not say the SEALING batch's share checksummed:\n%s", list)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("checksum progress stayed at 0 %")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

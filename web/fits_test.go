package web

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapefs/tapefs/catalog"
)

// TestPagesLinkFeedShowQuotaAndRefused: every page's head links to the
// Atom feed (a workspace's page to its own feed too); the batches page
// shows the quota of its workspaces, and the entries of put/ refused at
// sealing with reason and size — on the Failed page as well — once each.
func TestPagesLinkFeedShowQuotaAndRefused(t *testing.T) {
	te := newTestEnv(t, Options{})
	if err := te.e.CreateWorkspace(catalog.Workspace{Name: "small", Quota: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(te.e.StagingDir("small"), "toobig")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // refused twice for one cause: one rejection
		if _, err := te.e.Seal(context.Background(), "small", "toobig", 0, ""); err == nil {
			t.Fatal("3 MiB sealed into a 1 MiB quota")
		}
	}
	for _, path := range []string{"/", "/batches", "/batches/0"} {
		_, body, _ := te.get(path)
		if !strings.Contains(body, `<link rel="alternate" type="application/atom+xml" title="tapefs: batches" href="/feed.atom">`) {
			t.Errorf("%s: no feed link in the head", path)
		}
	}
	body := te.mustGet("/batches?workspace=small")
	if !strings.Contains(body, `href="/feed.atom?workspace=small"`) {
		t.Errorf("the batches page of a workspace does not link its feed")
	}
	if !strings.Contains(body, "0 B of its 1.0 MiB quota (0 %)") {
		t.Errorf("the batches page does not show the quota:\n%s", body)
	}
	for _, path := range []string{"/batches?workspace=small", "/batches?state=FAILED", "/batches"} {
		body := te.mustGet(path)
		if strings.Count(body, "put/toobig") != 1 || !strings.Contains(body, "needs 3.0 MiB but workspace small has 1.0 MiB of its 1.0 MiB quota left") ||
			!strings.Contains(body, ">3.0 MiB<") {
			t.Errorf("%s does not list the refused entry once with reason and size", path)
		}
	}
	if body := te.mustGet("/batches?workspace=gws"); strings.Contains(body, "put/toobig") {
		t.Errorf("another workspace's page lists the refused entry")
	}
	if m := te.mustGet("/metrics"); !strings.Contains(m, "tapefs_put_entries_refused 1") || !strings.Contains(m, "tapefs_put_entries_pending 0") {
		t.Errorf("/metrics: want 1 refused and 0 pending entries")
	}
	ov := te.mustGet("/")
	if strings.Count(ov, "put/toobig rejected") != 1 || !strings.Contains(ov, "entries not archived") {
		t.Errorf("the overview: want the rejection once and the refused tile")
	}
}

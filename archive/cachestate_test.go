package archive

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tapefs/tapefs/catalog"
)

// A batch recorded CACHED_SYNCED whose objects went while the daemon was
// down (the cache disk replaced, the objects wiped) is SYNCED after the
// next start, as if the cache had evicted them.
func TestCachedSyncedFollowsTheCacheAtStart(t *testing.T) {
	s := testSetup{Home: t.TempDir()}
	te := s.open(t)
	b, _ := sealTree(t, te, "e", map[string][]byte{"a": []byte("alpha"), "b": randomBytes(3, 100_000)})
	if got := waitSynced(t, te.Engine, b.ID); got.State != catalog.CachedSynced {
		t.Fatalf("batch %d is %s, want CACHED_SYNCED", b.ID, got.State)
	}
	te.close()
	if err := os.RemoveAll(filepath.Join(s.Home, "cache", "objects")); err != nil {
		t.Fatal(err)
	}
	te = s.open(t)
	waitState(t, te.Engine, b.ID, catalog.Synced)
}

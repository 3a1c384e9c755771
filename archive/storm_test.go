package archive

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tapefs/tapefs/tape"
)

// concurrencyLibrary counts the drives held at once.
type concurrencyLibrary struct {
	tape.Library
	mu        sync.Mutex
	held, max int
}

func (l *concurrencyLibrary) Acquire(ctx context.Context, volser string) (tape.Drive, error) {
	d, err := l.Library.Acquire(ctx, volser)
	if err == nil {
		l.mu.Lock()
		l.held++
		l.max = max(l.max, l.held)
		l.mu.Unlock()
	}
	return d, err
}

func (l *concurrencyLibrary) Release(d tape.Drive) {
	l.mu.Lock()
	l.held--
	l.mu.Unlock()
	l.Library.Release(d)
}

// TestRecallWorkspaceDrivesLimit: with RecallWorkspaceDrives 1, the
// recalls of one workspace spread over several cartridges hold one drive
// at a time although two are free; without the limit they take both.
func TestRecallWorkspaceDrivesLimit(t *testing.T) {
	for _, limit := range []int{0, 1} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			cl := &concurrencyLibrary{}
			const files, size = 60, 256 << 10
			te := testSetup{Home: t.TempDir(), Settle: time.Hour, Cartridges: 8, Capacity: files * (size + 2048) / 4, WSDrives: limit, Linger: time.Millisecond,
				wrap: func(l tape.Library) tape.Library { cl.Library = l; return cl }}.open(t)
			_, fs := offlineBatch(t, te, files, size)
			var ids []uint64
			vols := map[string]bool{}
			for _, f := range fs {
				ids = append(ids, f.ID)
				vols[f.Copies[0].VOLSER] = true
			}
			if len(vols) < 3 {
				t.Fatalf("files on %d cartridges; the test needs several", len(vols))
			}
			cl.mu.Lock()
			cl.max = 0
			cl.mu.Unlock()
			if err := te.Recall(ids...); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if _, err := md5Through(context.Background(), te.Engine, id); err != nil {
					t.Fatal(err)
				}
			}
			cl.mu.Lock()
			got := cl.max
			cl.mu.Unlock()
			want := 2
			if limit > 0 {
				want = limit
			}
			if got != want {
				t.Errorf("recalls of one workspace on %d cartridges held %d drives at once; want %d", len(vols), got, want)
			}
		})
	}
}

package catalog

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestWriteSnapshotWhileWriting: a snapshot taken while another goroutine
// keeps committing is a whole catalog as of one moment (bbolt: WriteTo in
// a read transaction; another engine: every key in one View), and opens
// as a catalog.
func TestWriteSnapshotWhileWriting(t *testing.T) {
	dir := t.TempDir()
	for name, open := range map[string]func() *Catalog{
		"bolt": func() *Catalog {
			c, err := Open(filepath.Join(dir, "live.db"))
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		"memory": func() *Catalog {
			c, err := New(NewMemoryEngine())
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := open()
			defer c.Close()
			// Each transaction writes two workspaces whose quotas must
			// agree: a snapshot cutting through a transaction would not.
			// The first transaction before any snapshot: a snapshot may
			// come before the writer's goroutine has run at all.
			if err := c.Update(func(tx *Tx) error {
				if err := tx.PutWorkspace(Workspace{Name: "a", Quota: 0}); err != nil {
					return err
				}
				return tx.PutWorkspace(Workspace{Name: "b000", Quota: 0, Created: time.Unix(0, 0)})
			}); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int64(1); ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					err := c.Update(func(tx *Tx) error {
						if err := tx.PutWorkspace(Workspace{Name: "a", Quota: i}); err != nil {
							return err
						}
						return tx.PutWorkspace(Workspace{Name: fmt.Sprintf("b%03d", i%50), Quota: i, Created: time.Unix(i, 0)})
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
			for n := range 5 {
				time.Sleep(5 * time.Millisecond)
				path := filepath.Join(dir, fmt.Sprintf("%s-%d.db", name, n))
				size, err := c.WriteSnapshot(path)
				if err != nil || size == 0 {
					t.Fatalf("snapshot: %d bytes, %v", size, err)
				}
				s, err := Open(path)
				if err != nil {
					t.Fatalf("the snapshot does not open as a catalog: %v", err)
				}
				err = s.View(func(tx *Tx) error {
					a, err := tx.Workspace("a")
					if err != nil {
						return err
					}
					b, err := tx.Workspace(fmt.Sprintf("b%03d", a.Quota%50))
					if err != nil {
						return err
					}
					if b.Quota != a.Quota {
						t.Errorf("snapshot %d cuts a transaction: a=%d, b=%d", n, a.Quota, b.Quota)
					}
					return nil
				})
				s.Close()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.WriteSnapshot(path); err == nil {
					t.Errorf("a snapshot overwrote %s", path)
				}
			}
			close(stop)
			wg.Wait()
		})
	}
}

package test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// Several hosts on one archive (issue 13), all on this machine: a
// PostgreSQL catalog (the run's server, or one of the test's own), daemons
// with their own homes (so their own caches, logs and sockets) and mounts,
// and one virtual library directory they share (--shared-library). The
// caches are sibling directories every host can read, as NFS or CephFS
// would make them.

// testLease is the heartbeat lease of the hosts of a test: short, so
// takeovers happen within seconds.
const testLease = 3 * time.Second

// cluster is the hosts of one test.
type cluster struct {
	t       *testing.T
	url     string // the catalog every host shares
	library string // the shared library directory
	hosts   []*daemon
}

// startHosts starts n hosts ("host1" … "hostN") on a fresh shared catalog
// and library, host 1 first (it creates the library and the workspace
// "default"). flags go to every host after the cluster's own, so a test
// may override them (a later flag wins).
func startHosts(t *testing.T, n int, flags ...string) *cluster {
	t.Helper()
	c := newHosts(t, n, flags...)
	for _, d := range c.hosts {
		d.start()
	}
	return c
}

// newHosts is startHosts without starting them.
func newHosts(t *testing.T, n int, flags ...string) *cluster {
	t.Helper()
	pg := postgresForTest(t)
	url, err := pg.NewDB(fmt.Sprintf("hosts%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, url: url, library: filepath.Join(t.TempDir(), "library")}
	for i := 1; i <= n; i++ {
		f := append(fastFlags(), "--host-id", fmt.Sprintf("host%d", i), "--lease", testLease.String(),
			"--library", c.library, "--shared-library", "--drives", "2", "--cartridges", "4",
			// Long: another host's changes must reach this mount's kernel
			// cache through the notifications (multihost_notify_test.go),
			// not by the cache running out.
			"--kernel-cache", "1h")
		d := newDaemon(t, append(f, flags...)...)
		setCatalog(d.home, url)
		c.hosts = append(c.hosts, d)
	}
	return c
}

// host is host i (1-based).
func (c *cluster) host(i int) *daemon { return c.hosts[i-1] }

// openCatalog opens the shared catalog for the test to look into.
func (c *cluster) openCatalog() *catalog.Catalog {
	c.t.Helper()
	cat, err := catalog.OpenAt(c.url, "")
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cat.Close() })
	return cat
}

// batch reads a batch from the shared catalog.
func (c *cluster) batch(cat *catalog.Catalog, id uint64) catalog.Batch {
	c.t.Helper()
	var b catalog.Batch
	if err := cat.View(func(tx *catalog.Tx) error {
		var err error
		b, err = tx.Batch(id)
		return err
	}); err != nil {
		c.t.Fatal(err)
	}
	return b
}

// waitOnTape waits until every batch of ids is CACHED_SYNCED or SYNCED in
// the shared catalog.
func (c *cluster) waitOnTape(cat *catalog.Catalog, ids []uint64, timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, fmt.Sprintf("batches %v on tape", ids), func() (bool, string) {
		var states []string
		all := true
		for _, id := range ids {
			b := c.batch(cat, id)
			states = append(states, fmt.Sprintf("%d:%s@%s", id, b.State, b.Host))
			if b.State == catalog.Failed {
				c.t.Fatalf("batch %d FAILED: %s", id, b.Reason)
			}
			all = all && b.State.OnTape()
		}
		return all, strings.Join(states, " ")
	})
}

// partials lists the tape files being written in the shared library.
func (c *cluster) partials() []string {
	m, _ := filepath.Glob(filepath.Join(c.library, "*", "*.partial"))
	return m
}

// checkCopies checks what the catalog records on tape: every data file of
// the batches has exactly one copy, no two copies share a place on tape,
// and every recorded tape file is listed by its cartridge's newest index
// and on disk.
func (c *cluster) checkCopies(cat *catalog.Catalog, ids []uint64) {
	c.t.Helper()
	type place struct {
		volser   string
		tapeFile int
		off      int64
	}
	seen := map[place]string{}
	tapeFiles := map[string]bool{}
	err := cat.View(func(tx *catalog.Tx) error {
		for _, id := range ids {
			var after uint64
			for {
				files, err := tx.Files(id, after, 1000)
				if err != nil {
					return err
				}
				for _, f := range files {
					if f.Type != catalog.TypeFile || f.Link != 0 {
						continue
					}
					if len(f.Copies) != 1 {
						c.t.Errorf("batch %d %s: %d tape copies, want 1: %+v", id, f.Path, len(f.Copies), f.Copies)
					}
					for _, cp := range f.Copies {
						p := place{cp.VOLSER, cp.TapeFile, cp.Offset}
						if other, dup := seen[p]; dup {
							c.t.Errorf("batch %d %s and %s are at the same place on tape %+v", id, f.Path, other, p)
						}
						seen[p] = fmt.Sprintf("batch %d %s", id, f.Path)
						tapeFiles[fmt.Sprintf("%s/%06d", cp.VOLSER, cp.TapeFile)] = true
					}
				}
				if len(files) < 1000 {
					break
				}
				after = files[len(files)-1].ID
			}
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	for tf := range tapeFiles {
		volser, num, _ := strings.Cut(tf, "/")
		if m, _ := filepath.Glob(filepath.Join(c.library, volser, num+"*.tar")); len(m) == 0 {
			c.t.Errorf("tape file %s is recorded in the catalog but not in the library", tf)
		}
	}
}

// sigstop freezes the daemon; sigcont lets it go on.
func (d *daemon) sigstop() {
	d.t.Helper()
	if err := d.process().Signal(syscall.SIGSTOP); err != nil {
		d.t.Fatal(err)
	}
}

func (d *daemon) sigcont() {
	d.t.Helper()
	if err := d.process().Signal(syscall.SIGCONT); err != nil {
		d.t.Fatal(err)
	}
}

// putBatch copies a tree into put/ of host d, seals it at once and
// returns its batch ID.
func (d *daemon) putBatch(src string) uint64 {
	d.t.Helper()
	before := d.batchIDs("default")
	sh(d.t, "/", "cp -a "+q(src)+" "+q(d.put("default")+"/"))
	seal(d.t, filepath.Join(d.put("default"), filepath.Base(src)))
	id := d.waitNewBatch("default", before, 60*time.Second)
	var n uint64
	fmt.Sscan(id, &n)
	return n
}

// md5Tree is relative path -> md5 of every regular file under root.
func md5Tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := md5.New()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTree fails the test unless got has exactly want's files and md5s.
func sameTree(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var bad []string
	for p, sum := range want {
		if got[p] != sum {
			bad = append(bad, fmt.Sprintf("%s: md5 %q, want %s", p, got[p], sum))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			bad = append(bad, p+": not put")
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		t.Errorf("%s: %d file(s) differ:\n%s", what, len(bad), strings.Join(bad, "\n"))
	}
}

// recordedTapeFiles is "VOLSER/file name: md5" of every tape file the
// catalog records copies of the batches in, read from the library.
func (c *cluster) recordedTapeFiles(cat *catalog.Catalog, ids []uint64) []string {
	c.t.Helper()
	names := map[string]bool{}
	err := cat.View(func(tx *catalog.Tx) error {
		for _, id := range ids {
			files, err := tx.Files(id, 0, 100_000)
			if err != nil {
				return err
			}
			for _, f := range files {
				for _, cp := range f.Copies {
					m, _ := filepath.Glob(filepath.Join(c.library, cp.VOLSER, fmt.Sprintf("%06d*.tar", cp.TapeFile)))
					if len(m) == 0 {
						c.t.Errorf("batch %d %s: tape file %s/%d is not in the library", id, f.Path, cp.VOLSER, cp.TapeFile)
					}
					for _, p := range m {
						names[p] = true
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for p := range names {
		b, err := os.ReadFile(p)
		if err != nil {
			c.t.Fatal(err)
		}
		sum := md5.Sum(b)
		rel, _ := filepath.Rel(c.library, p)
		out = append(out, rel+": "+hex.EncodeToString(sum[:]))
	}
	sort.Strings(out)
	return out
}

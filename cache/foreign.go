package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/tapefs/tapefs/internal/longpath"
)

// OpenForeign opens object id in the cache directory dir of another host
// (a dead one whose cache is on storage this host reaches too), for
// reading only: that cache is not this Cache's to account, evict or
// change, so the handle is counted nowhere.
func OpenForeign(dir string, id uint64) (*Handle, error) {
	path := filepath.Join(dir, objectsDir, fmt.Sprintf("%02x", id&0xff), strconv.FormatUint(id, 10))
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open object %d in the cache %s of another host: %w", id, dir, err)
	}
	return &Handle{f: f}, nil
}

// Reachable reports whether dir is a cache directory this host can read
// (another host's, on shared storage).
func Reachable(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, objectsDir))
	return err == nil && st.IsDir()
}

// AdoptForeign is Adopt into the cache directory dir of another host (a
// dead one whose seal this host finishes): each file Src becomes object ID
// there, by rename, for that host's cache to account when it runs again.
// Idempotent like Adopt: an object whose source is gone and which exists
// was adopted before.
func AdoptForeign(dir string, objs []Adoption) error {
	dirs := map[string]bool{}
	for _, o := range objs {
		fan := filepath.Join(dir, objectsDir, fmt.Sprintf("%02x", o.ID&0xff))
		dst := filepath.Join(fan, strconv.FormatUint(o.ID, 10))
		root, rel := o.root()
		var st unix.Stat_t
		err := longpath.Lstat(root, rel, &st)
		if errors.Is(err, fs.ErrNotExist) {
			if _, derr := os.Stat(dst); derr == nil {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("adopt object %d into the cache %s of another host: %w", o.ID, dir, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("adopt object %d into the cache %s of another host: %s is not a regular file", o.ID, dir, filepath.Join(root, rel))
		}
		if err := os.MkdirAll(fan, 0o755); err != nil {
			return fmt.Errorf("adopt object %d into the cache %s of another host: %w", o.ID, dir, err)
		}
		if err := longpath.Rename(root, rel, dst); err != nil {
			return fmt.Errorf("adopt object %d into the cache %s of another host: %w", o.ID, dir, err)
		}
		dirs[fan] = true
	}
	for d := range dirs {
		if err := syncRenames(d); err != nil {
			return fmt.Errorf("adopt objects into the cache %s of another host: %w", dir, err)
		}
	}
	return nil
}

// SyncForeign flushes the filesystem of another host's cache directory
// (syncfs), as Sync does for this host's.
func SyncForeign(dir string) error {
	d, err := os.Open(filepath.Join(dir, objectsDir))
	if err != nil {
		return fmt.Errorf("sync the cache of another host: %w", err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync the cache %s of another host: %w", dir, err)
	}
	return nil
}

package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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

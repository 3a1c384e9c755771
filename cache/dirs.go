package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// sealingTokenLayout is fixed-width, so that sorting tokens as strings sorts
// them by time.
const sealingTokenLayout = "20060102T150405.000000000Z"

// StagingDir is the directory of workspace's put/ entries, created if
// missing. Workspace names are checked by the catalog when the workspace is
// created; a failure to create the directory shows when it is used.
func (c *Cache) StagingDir(workspace string) string {
	dir := filepath.Join(c.dir, putDir, workspace)
	_ = os.MkdirAll(dir, 0o755)
	return dir
}

// NewSealingDir creates a fresh directory under sealing/ to move an entry
// into while it is sealed. Its name sorts by creation time, so crash recovery
// can take the sealing directories in the order they were made.
func (c *Cache) NewSealingDir() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := time.Now().UTC()
	for {
		// Strictly increasing, even if the clock steps back or two calls
		// fall in the same nanosecond.
		if !t.After(c.lastToken) {
			t = c.lastToken.Add(time.Nanosecond)
		}
		c.lastToken = t
		dir := filepath.Join(c.dir, sealingDir, t.Format(sealingTokenLayout))
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("new sealing directory: %w", err)
		}
	}
}

// SealingDirs lists the existing sealing directories, oldest first: after a
// crash, the entries the archive was sealing.
func (c *Cache) SealingDirs() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(c.dir, sealingDir))
	if err != nil {
		return nil, fmt.Errorf("list sealing directories: %w", err)
	}
	var dirs []string
	for _, e := range entries { // ReadDir sorts by name
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(c.dir, sealingDir, e.Name()))
		}
	}
	return dirs, nil
}

// ObjectPath is where the complete object id lives. The low byte of the ID
// fans the objects out over 256 directories, so that no directory grows to
// millions of entries.
func (c *Cache) ObjectPath(id uint64) string {
	return filepath.Join(c.fanoutDir(id), strconv.FormatUint(id, 10))
}

func (c *Cache) fanoutDir(id uint64) string {
	return filepath.Join(c.objects, fmt.Sprintf("%02x", id&0xff))
}

func (c *Cache) partialPath(id uint64) string {
	return c.ObjectPath(id) + partialSuffix
}

// syncRenames makes the renames in dir durable.
func syncRenames(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// trashLocked renames path into trash/, to be unlinked by removeTrash once
// the lock is released. It returns "" if path was already gone.
func (c *Cache) trashLocked(path string) (string, error) {
	c.trashSeq++
	t := filepath.Join(c.dir, trashDir, strconv.FormatUint(c.trashSeq, 10))
	if err := os.Rename(path, t); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", err
	}
	return t, nil
}

func appendTrash(trash []string, path string) []string {
	if path == "" {
		return trash
	}
	return append(trash, path)
}

// removeTrash unlinks files moved to trash/. Whatever it fails to remove is
// removed at the next Open.
func removeTrash(trash []string) error {
	var errs []error
	for _, t := range trash {
		if err := os.Remove(t); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// emptyTrash removes what a previous run left in trash/.
func (c *Cache) emptyTrash() error {
	dir := filepath.Join(c.dir, trashDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

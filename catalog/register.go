package catalog

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"
)

// RegisterBatch stores a new batch and its files, inside the caller's
// Update so that registering goes with whatever else the caller records.
//
// b gets its ID from the store-wide batch sequence (or keeps the ID of the
// CACHING batch ReserveBatch made for it, whose charge b.Bytes replaces),
// and the files get consecutive IDs (b.FirstFile, b.Files). files come
// parents first, each with Path (slash-separated, relative); Name and
// Parent are derived from it. On input a file's Link is 1 + the index in files of the file owning
// its data (0: none); on output it is that file's ID. Nlink of regular
// files is set to the number of links in the batch. b.Bytes is added to the
// workspace's Used; quota is the caller's to check.
//
// Nothing is written, and no ID is used up, unless everything is valid.
func (tx *Tx) RegisterBatch(b Batch, files []File) (Batch, []File, error) {
	fail := func(format string, args ...any) (Batch, []File, error) {
		return Batch{}, nil, fmt.Errorf("register batch: "+format, args...)
	}
	if b.State == "" {
		return fail("the batch has no state")
	}
	w, err := tx.Workspace(b.Workspace)
	if err != nil {
		return fail("%w", err)
	}
	files = slices.Clone(files)
	parents, err := parentIndexes(files)
	if err != nil {
		return fail("%w", err)
	}
	if err := linkFiles(files); err != nil {
		return fail("%w", err)
	}

	if b.ID != 0 {
		// A batch reserved by ReserveBatch (a CLI put) gets its files now.
		r, err := tx.Batch(b.ID)
		if err != nil {
			return fail("%w", err)
		}
		if r.State != Caching || r.Workspace != b.Workspace {
			return fail("batch %d is %s in %s, not a CACHING reservation of %s", b.ID, r.State, r.Workspace, b.Workspace)
		}
		w.Used -= r.Bytes // the reservation's charge is replaced below
	} else if b.ID, err = tx.allocate(sequenceBatch, 1); err != nil {
		return fail("%w", err)
	}
	b.Files = int64(len(files))
	b.Dirs, b.Symlinks, b.Kinds = 0, 0, true
	for _, f := range files {
		switch f.Type {
		case TypeDir:
			b.Dirs++
		case TypeSymlink:
			b.Symlinks++
		}
	}
	b.FirstFile = 0
	if len(files) > 0 {
		if b.FirstFile, err = tx.allocate(sequenceFile, uint64(len(files))); err != nil {
			return fail("%w", err)
		}
	}
	for i := range files {
		f := &files[i]
		f.ID = b.FirstFile + uint64(i)
		f.Batch = b.ID
		f.Name = path.Base(f.Path)
		f.Parent = 0
		if parents[i] >= 0 {
			f.Parent = b.FirstFile + uint64(parents[i])
		}
		if f.Link != 0 {
			f.Link = b.FirstFile + f.Link - 1
		}
	}

	// Write every key in ascending order, across tables: bbolt then
	// appends at the end of its in-memory nodes instead of shifting them
	// on each insert, which is what makes 100,000 files one quick
	// transaction rather than minutes of memmove.
	w.Used += b.Bytes
	writes := make([]kvPair, 0, 4*len(files)+3)
	for i := range files {
		f := &files[i]
		if writes, err = appendFileWrites(writes, b.Workspace, f); err != nil {
			return fail("%w", err)
		}
	}
	batchData, err := encodeRecord(&b)
	if err != nil {
		return fail("%w", err)
	}
	wsData, err := encodeRecord(&w)
	if err != nil {
		return fail("%w", err)
	}
	writes = append(writes,
		kvPair{batchKey(b.ID), batchData},
		kvPair{batchByWSKey(b.Workspace, b.ID), nil},
		kvPair{workspaceKey(w.Name), wsData})
	slices.SortFunc(writes, func(x, y kvPair) int { return bytes.Compare(x.key, y.key) })
	for _, kv := range writes {
		if err := tx.kv.Put(kv.key, kv.value); err != nil {
			return fail("%w", err)
		}
	}
	return b, files, nil
}

// parentIndexes checks the paths of files and returns, for each, the
// index of its parent directory in files (-1: top level).
func parentIndexes(files []File) ([]int, error) {
	parents := make([]int, len(files))
	index := make(map[string]int, len(files)) // path -> index in files
	for i := range files {
		p := files[i].Path
		if err := checkPath(p); err != nil {
			return nil, err
		}
		if _, dup := index[p]; dup {
			return nil, fmt.Errorf("%s appears twice in the batch: %w", p, ErrExists)
		}
		index[p] = i
		parents[i] = -1
		dir := path.Dir(p)
		if dir == "." {
			continue
		}
		pi, ok := index[dir]
		switch {
		case !ok:
			return nil, fmt.Errorf("%s: its parent directory %s is not in the batch (or comes after it)", p, dir)
		case files[pi].Type != TypeDir:
			return nil, fmt.Errorf("%s: its parent %s is not a directory", p, dir)
		}
		parents[i] = pi
	}
	return parents, nil
}

type kvPair struct{ key, value []byte }

// checkPath refuses paths that are not a clean relative path: they could
// not be shown in a batch tree, nor restored safely under a target dir.
func checkPath(p string) error {
	if p == "" {
		return fmt.Errorf("a file has an empty path")
	}
	if strings.ContainsRune(p, 0) {
		return fmt.Errorf("%q: a path cannot contain NUL", p)
	}
	if strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("%s: not a clean relative path (no leading or trailing /, no . or .. components)", p)
	}
	return nil
}

// linkFiles checks the hard links of files (Link = 1 + index of the data
// owner) and sets Nlink of every regular file to its link count.
func linkFiles(files []File) error {
	links := make(map[int]uint32) // owner index -> files sharing its data
	for i := range files {
		f := &files[i]
		switch f.Type {
		case TypeFile, TypeDir, TypeSymlink:
		default:
			return fmt.Errorf("%s: unknown file type %q", f.Path, f.Type)
		}
		if f.Link == 0 {
			continue
		}
		o := f.Link - 1
		switch {
		case f.Type != TypeFile:
			return fmt.Errorf("%s: only a regular file can be a hard link", f.Path)
		case o >= uint64(len(files)) || o == uint64(i):
			return fmt.Errorf("%s: hard link to file index %d, which is not another file of the batch", f.Path, o)
		case files[o].Type != TypeFile:
			return fmt.Errorf("%s: hard link to %s, which is not a regular file", f.Path, files[o].Path)
		case files[o].Link != 0:
			return fmt.Errorf("%s: hard link to %s, which is itself a link: link to the file owning the data", f.Path, files[o].Path)
		}
		links[int(o)]++
	}
	for i := range files {
		f := &files[i]
		if f.Type != TypeFile {
			continue
		}
		owner := i
		if f.Link != 0 {
			owner = int(f.Link - 1)
		}
		f.Nlink = 1 + links[owner]
	}
	return nil
}

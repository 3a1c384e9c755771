// Package longpath reaches files whose path passes PATH_MAX. Linux takes
// a tree of any depth (programs reach deep files relative to directory
// descriptors), but a system call refuses a path of 4,096 bytes or more
// with ENAMETOOLONG. Both faces of the daemon meet such trees: put/ is a
// directory a user fills as deep as they like, and sealing walks and
// adopts what they put there. A path short enough goes to the system call
// as it is; a longer one is reached from a descriptor of its parent,
// opened a piece of the path (shorter than PATH_MAX) at a time.
package longpath

import (
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Chunk bounds the piece of a path handed to one system call.
const Chunk = unix.PathMax - 256

// OpenDirAt opens dir, a path relative to root of any length, as an
// O_PATH descriptor, a piece shorter than PATH_MAX at a time. No symbolic
// link is followed and nothing outside root is reached.
func OpenDirAt(root, dir string) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	comps := strings.Split(strings.Trim(dir, "/"), "/")
	for len(comps) > 0 && comps[0] != "" {
		k, size := 0, 0
		for k < len(comps) && size+len(comps[k])+1 < Chunk {
			size += len(comps[k]) + 1
			k++
		}
		how := unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH,
		}
		var next int
		for range 10 { // EAGAIN: a rename raced the resolution
			next, err = unix.Openat2(fd, strings.Join(comps[:k], "/"), &how)
			if !errors.Is(err, unix.EAGAIN) {
				break
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd, comps = next, comps[k:]
	}
	return fd, nil
}

// At names the file rel below root for the *at system calls: with a
// short path, unix.AT_FDCWD and the joined path (no system call spent);
// otherwise a descriptor of its parent and its last name. Close releases
// the descriptor.
type At struct {
	Dir  int
	Name string
}

// Locate returns the At of rel (slash-separated) below root.
func Locate(root, rel string) (At, error) {
	full := filepath.Join(root, filepath.FromSlash(rel))
	if len(full) < Chunk {
		return At{unix.AT_FDCWD, full}, nil
	}
	dir, base := path.Split(rel)
	fd, err := OpenDirAt(root, dir)
	if err != nil {
		return At{}, &fs.PathError{Op: "open", Path: full, Err: err}
	}
	return At{fd, base}, nil
}

// Deep reports whether the file is reached through a parent descriptor.
func (a At) Deep() bool { return a.Dir != unix.AT_FDCWD }

// Close releases the parent descriptor, if any.
func (a At) Close() {
	if a.Deep() {
		unix.Close(a.Dir)
	}
}

// Lstat stats rel below root without following a symbolic link.
func Lstat(root, rel string, st *unix.Stat_t) error {
	a, err := Locate(root, rel)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := unix.Fstatat(a.Dir, a.Name, st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "lstat", Path: filepath.Join(root, rel), Err: err}
	}
	return nil
}

// Rename renames rel below root to newpath, a path shorter than PATH_MAX.
func Rename(root, rel, newpath string) error {
	a, err := Locate(root, rel)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := unix.Renameat(a.Dir, a.Name, unix.AT_FDCWD, newpath); err != nil {
		return &fs.PathError{Op: "rename", Path: filepath.Join(root, rel), Err: err}
	}
	return nil
}

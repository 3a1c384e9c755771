package archive

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/filetype"
)

// stagedFile is one entry found by walking a staged put entry.
type stagedFile struct {
	rel      string // path inside the batch ("entry/dir/file")
	typ      catalog.FileType
	mode     uint32 // permission bits with setuid, setgid, sticky
	uid, gid uint32
	size     int64
	mtime    time.Time
	target   string // of a symbolic link
	owner    int    // for a hard link: index of the file that owns the data; -1 otherwise
}

// walkEntry lists a staged entry, parents before children and each
// directory's names in byte order (the order members go to tape), and
// refuses what cannot be archived. It only stats and reads links: no
// byte of a file is read.
//
// It works relative to directory descriptors, so an entry of any depth
// is walked: put/ takes trees whose paths pass PATH_MAX, as a local
// directory does, and the absolute path of such a file cannot be handed
// to a system call.
func walkEntry(root, entry string) ([]stagedFile, error) {
	var out []stagedFile
	inodes := map[[2]uint64]int{} // (dev, ino) of a multiply linked file -> index of its first name
	err := walkTree(root, entry, func(dirFd int, name, rel string, st *unix.Stat_t) error {
		sf := stagedFile{rel: rel, mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid,
			mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec), owner: -1}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			sf.typ, sf.size = catalog.TypeFile, st.Size
			if st.Nlink > 1 {
				key := [2]uint64{st.Dev, st.Ino}
				if first, ok := inodes[key]; ok {
					sf.owner = first
				} else {
					inodes[key] = len(out)
				}
			}
		case unix.S_IFLNK:
			sf.typ = catalog.TypeSymlink
			t, err := readlinkAt(dirFd, name, st.Size)
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			sf.target = t
		case unix.S_IFDIR:
			sf.typ = catalog.TypeDir
		default:
			return fmt.Errorf("%s: %s files cannot be archived; remove it from the entry", rel, filetype.Unarchivable(goFileType(st.Mode)))
		}
		out = append(out, sf)
		return nil
	})
	return out, err
}

// walkTree calls visit for root/entry and everything below it, parents
// before children and each directory's names in byte order, with the
// descriptor of the directory holding the file, its name there, its path
// from root ("entry/dir/file") and its lstat. It reaches any depth: it
// opens each directory relative to its parent. An error of visit or of
// the walk stops it.
func walkTree(root, entry string, visit func(dirFd int, name, rel string, st *unix.Stat_t) error) error {
	rootFd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootFd)
	return walkAt(rootFd, entry, entry, visit)
}

func walkAt(dirFd int, name, rel string, visit func(dirFd int, name, rel string, st *unix.Stat_t) error) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirFd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if err := visit(dirFd, name, rel, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	fd, err := unix.Openat(dirFd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	d := os.NewFile(uintptr(fd), rel)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := walkAt(fd, n, path.Join(rel, n), visit); err != nil {
			return err
		}
	}
	return nil
}

// readlinkAt reads the target of the symbolic link name in dirFd; size is
// its st_size, a hint.
func readlinkAt(dirFd int, name string, size int64) (string, error) {
	n := int(size) + 1
	if n < 256 {
		n = 256
	}
	for {
		buf := make([]byte, n)
		got, err := unix.Readlinkat(dirFd, name, buf)
		if err != nil {
			return "", err
		}
		if got < n {
			return string(buf[:got]), nil
		}
		n *= 2 // the link changed since the stat
	}
}

// goFileType is the io/fs type bits of a file type from st_mode.
func goFileType(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

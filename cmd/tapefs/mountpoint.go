package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// prepareMountpoint checks that mnt can be mounted on: it exists, is an
// empty directory and nothing is mounted there. A mount left by a daemon
// that died (stat says ENOTCONN) is detached first.
func prepareMountpoint(mnt string, log zerolog.Logger) error {
	st, err := statSync(mnt)
	if errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) {
		log.Warn().Str("mountpoint", mnt).Msg("stale mount of a daemon that is gone; detaching it (lazy unmount)")
		if uerr := lazyUnmount(mnt); uerr != nil {
			return fmt.Errorf("mount point %s holds a stale mount that could not be detached: %w; try: fusermount3 -uz %s", mnt, uerr, mnt)
		}
		st, err = statSync(mnt)
	}
	switch {
	case errors.Is(err, syscall.ENOENT):
		return usageError{fmt.Errorf("mount point %s does not exist; create it first: mkdir -p %s", mnt, mnt)}
	case err != nil:
		return fmt.Errorf("mount point %s: %w", mnt, err)
	case st.Mode&syscall.S_IFMT != syscall.S_IFDIR:
		return usageError{fmt.Errorf("mount point %s is not a directory", mnt)}
	}
	if fstype, ok := mountedAt(mnt); ok {
		return fmt.Errorf("mount point %s is busy: a %s file system is mounted there; unmount it (umount %s) or choose another directory", mnt, fstype, mnt)
	}
	d, err := os.Open(mnt)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", mnt, err)
	}
	names, _ := d.Readdirnames(1)
	d.Close()
	if len(names) > 0 {
		return usageError{fmt.Errorf("mount point %s is not empty; tapefs mounts on an empty directory", mnt)}
	}
	return nil
}

// statSync stats path, asking its file system rather than the kernel's
// attribute cache: a FUSE mount whose daemon just died still answers
// from the cache for a second.
func statSync(path string) (unix.Statx_t, error) {
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, path, unix.AT_STATX_FORCE_SYNC, unix.STATX_TYPE|unix.STATX_MODE, &st)
	return st, err
}

// mountedAt reports whether something is mounted on mnt, and its type.
func mountedAt(mnt string) (string, bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source options
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || unescapeMountinfo(fields[4]) != mnt {
			continue
		}
		fstype := "unknown"
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) {
				fstype = fields[i+1]
				break
			}
		}
		return fstype, true
	}
	return "", false
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lazyUnmount detaches a mount even while it is in use.
func lazyUnmount(mnt string) error {
	if os.Geteuid() == 0 {
		return syscall.Unmount(mnt, syscall.MNT_DETACH)
	}
	out, err := exec.Command("fusermount3", "-u", "-z", mnt).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 -uz: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// unmount unmounts the server's mount, retrying while it is busy (a shell
// with its working directory in it, a file still open), then detaches it
// lazily. It reports whether the server's loops have ended.
func unmount(srv *fuse.Server, mnt string, wait time.Duration, log zerolog.Logger) bool {
	deadline := time.Now().Add(wait)
	warned := false
	for {
		var err error
		if os.Geteuid() == 0 {
			// go-fuse would fall back to fusermount and hide EBUSY.
			if err = syscall.Unmount(mnt, 0); err == nil {
				srv.Wait()
				return true
			}
		} else if err = srv.Unmount(); err == nil {
			return true
		}
		if time.Now().After(deadline) {
			log.Warn().Err(err).Str("mountpoint", mnt).Msg("mount still busy; detaching it lazily (it goes away when the last user leaves)")
			if err := lazyUnmount(mnt); err != nil {
				log.Error().Err(err).Str("mountpoint", mnt).Msg("lazy unmount failed")
			}
			return false
		}
		if !warned {
			log.Warn().Err(err).Str("mountpoint", mnt).Msg("mount busy; retrying the unmount")
			warned = true
		}
		time.Sleep(200 * time.Millisecond)
	}
}

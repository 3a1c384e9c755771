package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/internal/mountinfo"
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
	if fstype, ok := mountinfo.Lookup(mnt); ok {
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

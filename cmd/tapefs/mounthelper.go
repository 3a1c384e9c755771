package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// mount(8) runs "mount.fuse.tapefs SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]"
// for "mount -t fuse.tapefs" and for an fstab line of type fuse.tapefs;
// mount.fuse3 (the fallback when no mount.fuse.tapefs is installed) runs
// "tapefs SOURCE MOUNTPOINT -o OPTIONS". Both land in runMountHelper: the
// SOURCE is the home, the options are the daemon's flags, and the daemon
// runs detached in the background because mount(8) waits for its helper.

// mountHelperName is the name make install links to the binary.
const mountHelperName = "mount.fuse.tapefs"

// detachedEnv tells a daemon started by the mount helper to let go of the
// helper's pipes once the mount is ready (see daemon.notify).
const detachedEnv = "TAPEFS_DETACHED"

// mountHelperReadyTimeout bounds the wait for the daemon's READY=1: a home
// whose catalog is in an unreachable database gives up well before.
var mountHelperReadyTimeout = 5 * time.Minute

// Exit codes of a mount helper, as mount(8) documents them.
const (
	mountExitUsage   = 1
	mountExitFailure = 32
)

// ignoredMountOptions are the options mount(8) and fstab pass that concern
// mount(8) itself or the kernel's generic flags, not the daemon.
var ignoredMountOptions = map[string]bool{
	"rw": true, "defaults": true, "auto": true, "noauto": true, "user": true, "nouser": true,
	"users": true, "owner": true, "group": true, "_netdev": true, "nofail": true,
	"dev": true, "nodev": true, "suid": true, "nosuid": true, "exec": true, "noexec": true,
	"async": true, "sync": true, "atime": true, "noatime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "diratime": true, "nodiratime": true, "lazytime": true, "nolazytime": true,
}

// isMountHelperCall tells mount.fuse3's "tapefs SOURCE MOUNTPOINT -o
// OPTIONS" apart from a mistyped command: no command has a "/" in its
// name, and the mount point must be an existing directory.
func isMountHelperCall(args []string) bool {
	if len(args) != 2 && !(len(args) == 4 && args[2] == "-o") {
		return false
	}
	if !strings.Contains(args[0], "/") {
		return false
	}
	st, err := os.Stat(args[1])
	return err == nil && st.IsDir()
}

// mountHelperFlags turns mount options into daemon flags.
func mountHelperFlags(options string) ([]string, error) {
	known := newDaemonFlags("mount", "", "", "")
	var flags []string
	for _, opt := range strings.Split(options, ",") {
		if opt == "" || ignoredMountOptions[opt] || strings.HasPrefix(opt, "x-") || strings.HasPrefix(opt, "comment=") {
			continue
		}
		name, value, hasValue := strings.Cut(opt, "=")
		name = strings.ReplaceAll(name, "_", "-")
		if name == "ro" {
			return nil, errors.New("option ro: tapefs cannot be mounted read-only (put/ is how data comes in); use rw")
		}
		fl := known.fs.Lookup(name)
		if fl == nil || name == "home" {
			return nil, fmt.Errorf("unknown mount option %q; options are the daemon's flags (see 'tapefs mount --help'), e.g. allow_other,settle=30s,cache-size=2T", opt)
		}
		if !hasValue && fl.Value.Type() != "bool" {
			return nil, fmt.Errorf("mount option %q needs a value: %s=VALUE", opt, opt)
		}
		if hasValue {
			flags = append(flags, "--"+name+"="+value)
		} else {
			flags = append(flags, "--"+name)
		}
	}
	return flags, nil
}

// runMountHelper mounts SOURCE (a home) on MOUNTPOINT with a daemon in the
// background and returns once the mount is usable (0), or the daemon's
// error (32) if it stopped first.
func runMountHelper(args []string) int {
	var pos []string
	options := ""
	fake := false
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o" || a == "-t" || a == "-N":
			if i+1 >= len(args) {
				fmt.Fprintf(os.Stderr, "%s: %s needs a value\n", mountHelperName, a)
				return mountExitUsage
			}
			i++
			switch a {
			case "-o":
				options = strings.Trim(options+","+args[i], ",")
			case "-N":
				fmt.Fprintf(os.Stderr, "%s: -N (mount namespace) is not supported\n", mountHelperName)
				return mountExitUsage
			}
		case a == "-f":
			fake = true
		case a == "-s" || a == "-n" || a == "-v" || a == "-w":
			// sloppy, no mtab, verbose, read-write: nothing to do.
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(os.Stderr, "%s: unknown flag %s\n", mountHelperName, a)
			return mountExitUsage
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		fmt.Fprintf(os.Stderr, "usage: %s HOME MOUNTPOINT [-o OPTIONS]\n  (run by mount -t fuse.tapefs HOME MOUNTPOINT, or an fstab line: HOME MOUNTPOINT fuse.tapefs defaults,_netdev 0 0)\n", mountHelperName)
		return mountExitUsage
	}
	flags, err := mountHelperFlags(options)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", mountHelperName, err)
		return mountExitUsage
	}
	if fake {
		return 0
	}
	home, mnt := pos[0], pos[1]
	if err := startDetached(append(append([]string{"mount", "--home", home}, flags...), mnt)); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %s on %s: %v\n", mountHelperName, home, mnt, err)
		return mountExitFailure
	}
	return 0
}

// startDetached starts "tapefs ARGS" in a session of its own and waits for
// it to say READY=1 on a private notify socket (the protocol systemd's
// Type=notify uses, so the daemon has one way of saying it is up). If it
// stops before that, its output goes to stderr, so the error reaches the
// person who ran mount; once ready it writes only to its log file.
func startDetached(args []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tapefs-mount-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer ln.Close()

	cmd := exec.Command(exe, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, detachedEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+sock, detachedEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = nil // /dev/null
	if err := cmd.Start(); err != nil {
		return err
	}
	// The daemon's output until it is ready: shown only if it fails, as
	// mount(8) is silent on success. The last lines hold the error.
	var lines []string
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if lines = append(lines, sc.Text()); len(lines) > 40 {
				lines = lines[1:]
			}
		}
	}()
	exited := make(chan error, 1)
	go func() {
		<-copied // Wait closes the pipe: read it to the end first
		exited <- cmd.Wait()
	}()
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line == "READY=1" {
					close(ready)
					return
				}
			}
		}
	}()
	select {
	case <-ready:
		return nil
	case err := <-exited:
		for _, l := range lines {
			fmt.Fprintln(os.Stderr, l)
		}
		return fmt.Errorf("the daemon stopped before the mount was ready (%v); its log is HOME/tapefs.log", err)
	case <-time.After(mountHelperReadyTimeout):
		_ = cmd.Process.Kill()
		return fmt.Errorf("the daemon was not ready after %s; stopped it; see HOME/tapefs.log", mountHelperReadyTimeout)
	}
}

// notify tells the service manager (systemd with Type=notify, or the
// mount helper) about the daemon's state. A daemon started by the mount
// helper first puts /dev/null in place of the helper's pipe, so that it
// never writes into a pipe nobody reads once the helper has exited, and
// forgets the helper's socket, which is gone by then.
func (d *daemon) notify(state string) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	detached := os.Getenv(detachedEnv) != ""
	if detached && state == "READY=1" {
		if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
			for _, fd := range []int{0, 1, 2} {
				_ = unix.Dup2(int(null.Fd()), fd)
			}
			null.Close()
		}
	}
	if err := sdNotify(state); err != nil {
		d.log.Warn().Err(err).Str("state", state).Msg("cannot notify the service manager")
	}
	if detached {
		os.Unsetenv("NOTIFY_SOCKET")
	}
}

package api

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/tapefs/tapefs/catalog"
	"golang.org/x/sys/unix"
)

// Caller is who is on the other end of the socket, from SO_PEERCRED.
type Caller struct {
	UID, GID uint32
	PID      int32
	Groups   []uint32 // supplementary groups, from /proc/PID/status
}

// Root reports whether the caller is the superuser.
func (c Caller) Root() bool { return c.UID == 0 }

// InGroup reports whether the caller is a member of gid.
func (c Caller) InGroup(gid uint32) bool {
	if c.GID == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// CanManage: root or the workspace's manager may put, rm and undelete.
func (c Caller) CanManage(w catalog.Workspace) bool { return c.Root() || c.UID == w.Manager }

// CanRead: managers and members of the workspace's group may list and get.
func (c Caller) CanRead(w catalog.Workspace) bool { return c.CanManage(w) || c.InGroup(w.Group) }

type callerKey struct{}

// WithCaller attaches a caller to a context (the server does this for
// every connection; tests call handlers with it directly).
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller attached to ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// peerCaller reads the credentials of a Unix socket peer.
func peerCaller(conn net.Conn) (Caller, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return Caller{}, fmt.Errorf("not a unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Caller{}, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Caller{}, err
	}
	if credErr != nil {
		return Caller{}, credErr
	}
	c := Caller{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}
	c.Groups = procGroups(cred.Pid)
	return c, nil
}

// procGroups reads the supplementary groups of a process. A process that
// is gone has none: it can only lose rights by that.
func procGroups(pid int32) []uint32 {
	f, err := os.Open("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return nil
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if rest, ok := strings.CutPrefix(line, "Groups:"); ok {
			var out []uint32
			for _, g := range strings.Fields(rest) {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					out = append(out, uint32(n))
				}
			}
			return out
		}
	}
	return nil
}

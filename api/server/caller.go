package server

import (
	"context"
	"fmt"
	"net"

	"github.com/tapefs/tapefs/archive"
	"golang.org/x/sys/unix"
)

type callerKey struct{}

// WithCaller attaches a caller to a context (the server does this for
// every connection; the page attaches archive.Anonymous; tests call
// handlers with it directly).
func WithCaller(ctx context.Context, c archive.Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller attached to ctx.
func CallerFrom(ctx context.Context) (archive.Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(archive.Caller)
	return c, ok
}

// peerCaller reads the credentials of a Unix socket peer.
func peerCaller(conn net.Conn) (archive.Caller, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return archive.Caller{}, fmt.Errorf("not a unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return archive.Caller{}, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return archive.Caller{}, err
	}
	if credErr != nil {
		return archive.Caller{}, credErr
	}
	return archive.ProcessCaller(cred.Uid, cred.Gid, cred.Pid), nil
}

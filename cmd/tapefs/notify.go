package main

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// sdNotify sends one state ("READY=1", "STOPPING=1", "RELOADING=1") to
// the service manager: a datagram to the unix socket named by
// $NOTIFY_SOCKET (a leading "@" means the abstract namespace). Without
// NOTIFY_SOCKET it does nothing: the daemon was not started by systemd
// (Type=notify) nor by mount.fuse.tapefs.
//
// The protocol is this one datagram, so it is written here rather than
// taken from github.com/coreos/go-systemd: that module's daemon package
// does the same in as many lines and would be a dependency for nothing.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if !strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "@") {
		return fmt.Errorf("NOTIFY_SOCKET=%q: not a unix socket path", name)
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify the service manager: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify the service manager: %w", err)
	}
	return nil
}

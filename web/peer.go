package web

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/tapefs/tapefs/archive"
)

// Who is asking. A TCP peer has no SO_PEERCRED, but a peer on loopback is
// a process of this machine, and the kernel knows which user owns its end
// of the connection: /proc/net/tcp lists every socket with its addresses
// and the uid of its owner (what identd answered from). So a connection
// from loopback is identified once, when it is accepted, and each of its
// requests sees the archive as that user does through the mount and the
// control socket: the workspaces they may see, nothing else (the rule of
// archive/access.go, not a second one). A connection whose owner cannot
// be found sees nothing of any workspace. With --http-token the listener
// may face the network, where no peer can be identified: a request that
// carries the token is the operator's and sees every workspace, read
// only, as before.

type peerKey struct{}

// connContext records the caller of a connection in its context
// (http.Server.ConnContext).
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, s.peerCaller(c))
}

// peerCaller identifies the process at the other end of c.
func (s *Server) peerCaller(c net.Conn) archive.Caller {
	if s.opts.Token != "" {
		return archive.Anonymous()
	}
	remote, ok1 := c.RemoteAddr().(*net.TCPAddr)
	local, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 || !remote.IP.IsLoopback() {
		return archive.Nobody()
	}
	uid, inode, err := loopbackOwner(remote, local)
	if err != nil {
		s.log.Warn().Err(err).Str("peer", remote.String()).Msg("cannot tell which user connected to the status page; it is shown no workspace")
		return archive.Nobody()
	}
	if uid == 0 {
		return archive.Root()
	}
	// The groups of the process holding the socket, as the mount and the
	// control socket see them; the user database's when it is not found
	// (a process in another PID namespace).
	if pid, ok := socketProcess(inode, uid); ok {
		return archive.ProcessCaller(uid, processGID(pid, uid), int32(pid))
	}
	return userCaller(uid)
}

// socketProcess finds a process of uid that has the socket inode open.
// Only uid's processes are searched (a /proc/PID directory belongs to the
// process's user), so the cost follows that user's open files.
func socketProcess(inode string, uid uint32) (int, bool) {
	want := "socket:[" + inode + "]"
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		if info, err := p.Info(); err != nil {
			continue
		} else if st, ok := info.Sys().(*syscall.Stat_t); !ok || st.Uid != uid {
			continue
		}
		dir := "/proc/" + p.Name() + "/fd"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(dir + "/" + fd.Name()); err == nil && l == want {
				return pid, true
			}
		}
	}
	return 0, false
}

// processGID is the effective gid of pid (from /proc/PID/status), or the
// primary group of uid in the user database.
func processGID(pid int, uid uint32) uint32 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "Gid:"); ok {
				if f := strings.Fields(rest); len(f) >= 2 {
					if g, err := strconv.ParseUint(f[1], 10, 32); err == nil {
						return uint32(g)
					}
				}
			}
		}
	}
	return userCaller(uid).GID
}

// caller is who asks for r: the connection's user; for a request that did
// not come through Serve (tests driving the handler), the anonymous
// operator view.
func (s *Server) caller(r *http.Request) archive.Caller {
	if c, ok := r.Context().Value(peerKey{}).(archive.Caller); ok {
		return c
	}
	return archive.Anonymous()
}

// userCaller is the caller for uid with the groups the user database
// gives it.
func userCaller(uid uint32) archive.Caller {
	if uid == 0 {
		return archive.Root()
	}
	c := archive.Caller{UID: uid, GID: ^uint32(0)}
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return c
	}
	if g, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
		c.GID = uint32(g)
	}
	gids, _ := u.GroupIds()
	for _, s := range gids {
		if g, err := strconv.ParseUint(s, 10, 32); err == nil {
			c.Groups = append(c.Groups, uint32(g))
		}
	}
	return c
}

// loopbackOwner finds, in /proc/net/tcp or tcp6, the socket whose local
// end is remote and whose peer is local (the client's end of this
// connection) and returns the uid that owns it.
func loopbackOwner(remote, local *net.TCPAddr) (uid uint32, inode string, err error) {
	table := "/proc/net/tcp"
	if remote.IP.To4() == nil {
		table = "/proc/net/tcp6"
	}
	want := procAddr(remote) + " " + procAddr(local)
	f, err := os.Open(table)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[1]+" "+fields[2] != want {
			continue
		}
		n, err := strconv.ParseUint(fields[7], 10, 32)
		if err != nil {
			return 0, "", fmt.Errorf("%s: uid %q: %w", table, fields[7], err)
		}
		return uint32(n), fields[9], nil
	}
	if err := sc.Err(); err != nil {
		return 0, "", err
	}
	return 0, "", fmt.Errorf("no socket %s -> %s in %s", remote, local, table)
}

// procAddr writes an address as /proc/net/tcp does: the IP as 32-bit words
// in host (little-endian here) byte order, in hex, and the port in hex.
func procAddr(a *net.TCPAddr) string {
	ip := a.IP.To4()
	if ip == nil {
		ip = a.IP.To16()
	}
	var b strings.Builder
	for i := 0; i < len(ip); i += 4 {
		var w [4]byte
		binary.LittleEndian.PutUint32(w[:], binary.BigEndian.Uint32(ip[i:i+4]))
		b.WriteString(strings.ToUpper(hex.EncodeToString(w[:])))
	}
	fmt.Fprintf(&b, ":%04X", a.Port)
	return b.String()
}

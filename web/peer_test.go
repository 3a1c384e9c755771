package web

import (
	"net"
	"os"
	"testing"
)

// The client's end of a loopback connection is found in /proc/net/tcp
// (and tcp6) with its owner and the process holding it: this one.
func TestLoopbackOwner(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("%s: %v (no such loopback here)", addr, err)
			continue
		}
		defer ln.Close()
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		uid, inode, err := loopbackOwner(server.RemoteAddr().(*net.TCPAddr), server.LocalAddr().(*net.TCPAddr))
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if uid != uint32(os.Getuid()) {
			t.Errorf("%s: owner uid %d, want %d", addr, uid, os.Getuid())
		}
		if pid, ok := socketProcess(inode, uid); !ok || pid != os.Getpid() {
			t.Errorf("%s: socket %s held by pid %d (%v), want this process %d", addr, inode, pid, ok, os.Getpid())
		}
		// The server's own end is the reverse: never taken for the client's.
		if _, _, err := loopbackOwner(server.LocalAddr().(*net.TCPAddr), &net.TCPAddr{IP: server.RemoteAddr().(*net.TCPAddr).IP, Port: 1}); err == nil {
			t.Errorf("%s: found a socket for a connection that does not exist", addr)
		}
	}
}

func TestProcAddr(t *testing.T) {
	for a, want := range map[string]string{
		"127.0.0.1:8080": "0100007F:1F90",
		"[::1]:80":       "00000000000000000000000001000000:0050",
	} {
		ta, err := net.ResolveTCPAddr("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		if got := procAddr(ta); got != want {
			t.Errorf("procAddr(%s) = %s, want %s", a, got, want)
		}
	}
}

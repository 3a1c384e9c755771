package main

import (
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestSdNotify sends to a fake NOTIFY_SOCKET, by path and in the abstract
// namespace ("@name"), as systemd hands out both.
func TestSdNotify(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@tapefs-test-notify-" + strings.ReplaceAll(t.Name(), "/", "-")} {
		addr := name
		if addr[0] == '@' {
			addr = "\x00" + addr[1:]
		}
		ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", name)
		if err := sdNotify("READY=1"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		buf := make([]byte, 64)
		_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := ln.Read(buf)
		if err != nil || string(buf[:n]) != "READY=1" {
			t.Errorf("%s: received %q, %v; want READY=1", name, buf[:n], err)
		}
		ln.Close()
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v, want nothing done", err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if err := sdNotify("READY=1"); err == nil {
		t.Error("a relative NOTIFY_SOCKET was accepted")
	}
}

// TestMountHelperFlags: fstab options become daemon flags; mount(8)'s own
// are dropped; a mistake is named.
func TestMountHelperFlags(t *testing.T) {
	got, err := mountHelperFlags("rw,defaults,_netdev,nofail,x-systemd.automount,allow_other,cache_size=2T,settle=30s")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--allow-other", "--cache-size=2T", "--settle=30s"}; !reflect.DeepEqual(got, want) {
		t.Errorf("flags %q, want %q", got, want)
	}
	for opt, msg := range map[string]string{"ro": "read-only", "home=/x": "unknown mount option", "settle": "needs a value", "bogus": `"bogus"`} {
		if _, err := mountHelperFlags(opt); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error %v, want one with %q", opt, err, msg)
		}
	}
}

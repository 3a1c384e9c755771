package fs

import (
	"syscall"
	"testing"

	"github.com/tapefs/tapefs/archive"
)

func TestXattrValue(t *testing.T) {
	if n, errno := xattrValue(nil, "offline"); n != 7 || errno != syscall.ERANGE {
		t.Errorf("size query: %d, %v", n, errno)
	}
	buf := make([]byte, 3)
	if n, errno := xattrValue(buf, "offline"); n != 7 || errno != syscall.ERANGE {
		t.Errorf("short buffer: %d, %v", n, errno)
	}
	buf = make([]byte, 16)
	if n, errno := xattrValue(buf, "offline"); n != 7 || errno != 0 || string(buf[:n]) != "offline" {
		t.Errorf("value: %d, %v, %q", n, errno, buf[:n])
	}
	buf = make([]byte, 64)
	n, errno := xattrList(buf, []string{xattrState, xattrMD5})
	if errno != 0 || string(buf[:n]) != "user.tapefs.state\x00user.tapefs.md5\x00" {
		t.Errorf("list: %q, %v", buf[:n], errno)
	}
	var m attrMap
	m.add(xattrTag, "")
	if n, errno := m.get(buf, xattrTag); n != 0 || errno != 0 {
		t.Errorf("empty tag: %d, %v", n, errno)
	}
	if _, errno := m.get(buf, xattrSynced); errno != syscall.ENODATA {
		t.Errorf("missing attribute: %v", errno)
	}
}

func TestVolsers(t *testing.T) {
	got := volsers([]archive.Copy{{VOLSER: "TF0002"}, {VOLSER: "TF0001"}, {VOLSER: "TF0002"}})
	if got != "TF0002,TF0001" {
		t.Errorf("volsers = %q", got)
	}
	if volsers(nil) != "" {
		t.Errorf("volsers of none")
	}
}

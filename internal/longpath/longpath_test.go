package longpath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A file whose path passes PATH_MAX is stat'ed and renamed out; a short
// one takes the plain system call (no descriptor).
func TestDeepFile(t *testing.T) {
	root := t.TempDir()
	fd, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var comps []string
	for len(strings.Join(comps, "/")) < unix.PathMax+500 {
		c := strings.Repeat("x", 200) + string(rune('a'+len(comps)%26))
		if err := unix.Mkdirat(fd, c, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, c, unix.O_DIRECTORY|unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd, comps = next, append(comps, c)
	}
	f, err := unix.Openat(fd, "f", unix.O_CREAT|unix.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	unix.Write(f, []byte("abc"))
	unix.Close(f)
	unix.Close(fd)

	rel := strings.Join(append(comps, "f"), "/")
	if _, err := os.Lstat(filepath.Join(root, rel)); err == nil {
		t.Fatal("the test path is short enough for a plain lstat: make it deeper")
	}
	a, err := Locate(root, rel)
	if err != nil || !a.Deep() || a.Name != "f" {
		t.Fatalf("Locate: %+v, %v; want a parent descriptor and name f", a, err)
	}
	a.Close()
	var st unix.Stat_t
	if err := Lstat(root, rel, &st); err != nil || st.Size != 3 {
		t.Fatalf("Lstat of the deep file: size %d, %v", st.Size, err)
	}
	dst := filepath.Join(root, "out")
	if err := Rename(root, rel, dst); err != nil {
		t.Fatalf("Rename out of the deep tree: %v", err)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "abc" {
		t.Fatalf("renamed file: %q, %v", b, err)
	}
	if err := Lstat(root, rel, &st); !os.IsNotExist(err) {
		t.Fatalf("Lstat after the rename: %v, want not exist", err)
	}
	if a, err := Locate(root, "short"); err != nil || a.Deep() {
		t.Fatalf("Locate of a short path: %+v, %v; want the path itself", a, err)
	}
}

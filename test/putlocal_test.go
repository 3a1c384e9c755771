package test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// put/ behaves like a local directory (issue 8, "smaller ones"): each test
// does the same thing in a local directory and in put/, and wants the same
// result.

// quietFlags: a settle time long enough that nothing is sealed under the
// test.
func quietFlags(more ...string) []string {
	return append([]string{"--time-scale", "0", "--settle", "1h", "--flush-age", "1s", "--recall-linger", "1ms"}, more...)
}

// A file created with mode 0 and a directory made with mode 0 show mode 0,
// as they are on disk (go-fuse shows 0644/0755 without NullPermissions).
func TestPutNullPermissions(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, quietFlags()...)
	local := t.TempDir()
	entry := filepath.Join(d.put("default"), "e")
	if err := os.Mkdir(entry, 0o755); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0)
	syscall.Umask(old) // only read: the modes asked for are 0 whatever the umask
	for _, dir := range []string{local, entry} {
		fd, err := unix.Open(filepath.Join(dir, "f"), unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL, 0)
		if err != nil {
			t.Fatalf("open(O_CREAT, 0) in %s: %v", dir, err)
		}
		if _, err := unix.Write(fd, []byte("data\n")); err != nil {
			t.Fatalf("write to a mode-0 file just created: %v", err)
		}
		unix.Close(fd)
		if err := unix.Mkdir(filepath.Join(dir, "d"), 0); err != nil {
			t.Fatalf("mkdir(…, 0) in %s: %v", dir, err)
		}
	}
	staged := filepath.Join(d.home, "cache", "put", "default", "e")
	for _, name := range []string{"f", "d"} {
		want := modeOf(t, filepath.Join(local, name))
		if got := modeOf(t, filepath.Join(entry, name)); got != want {
			t.Errorf("put/e/%s shows mode %04o, want %04o (the same made in a local directory)", name, got, want)
		}
		if got := modeOf(t, filepath.Join(staged, name)); got != want {
			t.Errorf("the staged copy of e/%s has mode %04o, want %04o", name, got, want)
		}
	}
}

func modeOf(t *testing.T, p string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Mode & 0o7777
}

// A write or truncation by an unprivileged user clears the setuid bit, and
// the setgid bit of a group-executable file, as on a local file system.
func TestPutWriteClearsSetid(t *testing.T) {
	t.Parallel()
	setpriv := needSetpriv(t)
	d := newDaemon(t, quietFlags("--allow-other")...)
	// The mount point's parents are the test's 0700 temporary directory.
	for _, p := range []string{filepath.Dir(d.mnt), filepath.Dir(filepath.Dir(d.mnt))} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.start()
	uid := strconv.Itoa(nobodyUID)
	cliOK(t, cliOpts{home: d.home}, "workspace", "create", "w", "--owner", uid, "--group", uid)
	entry := filepath.Join(d.put("w"), "e")
	local := filepath.Join(sharedTempDir(t), "e")

	// file: mode before; what the unprivileged user does to it.
	cases := []struct{ name, script string }{
		{"append", "echo more >> {}"},
		{"trunc-open", ": > {}"},
		{"truncate", "truncate -s 3 {}"},
		{"dd-notrunc", "printf x | dd of={} conv=notrunc status=none"},
	}
	modes := []uint32{0o6777, 0o2766, 0o4766}
	for _, dir := range []string{local, entry} {
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			for _, m := range modes {
				p := filepath.Join(dir, fmt.Sprintf("%s-%04o", c.name, m))
				if err := os.WriteFile(p, []byte("content\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := unix.Chmod(p, m); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, dir := range []string{local, entry} {
		for _, c := range cases {
			for _, m := range modes {
				name := fmt.Sprintf("%s-%04o", c.name, m)
				cmd := exec.Command(setpriv, "--reuid="+uid, "--regid="+uid, "--clear-groups", "--",
					"bash", "-c", "set -e; "+strings.ReplaceAll(c.script, "{}", name))
				cmd.Dir = dir
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("as uid %s in %s: %s: %v\n%s", uid, dir, c.script, err, out)
				}
			}
		}
	}
	for _, c := range cases {
		for _, m := range modes {
			name := fmt.Sprintf("%s-%04o", c.name, m)
			want := modeOf(t, filepath.Join(local, name))
			if want == m && m&0o4000 != 0 {
				t.Fatalf("%s: the local file system kept mode %04o: the test proves nothing", name, m)
			}
			// The kernel may show the cached mode for a moment.
			waitFor(t, 5*time.Second, fmt.Sprintf("put/e/%s to show mode %04o as in a local directory", name, want), func() (bool, string) {
				got := modeOf(t, filepath.Join(entry, name))
				return got == want, fmt.Sprintf("%04o", got)
			})
		}
	}
}

// A tree deeper than PATH_MAX can be made, used and removed in put/, as
// in a local directory, by programs that work relative to directory
// descriptors (the daemon used to join the staging directory and the whole
// path into one absolute path: ENAMETOOLONG near 4,095 bytes).
func TestPutDeepPath(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, quietFlags()...)
	for _, top := range []string{t.TempDir(), d.put("default")} {
		deepTree(t, top)
	}
	// Tools that walk trees by descriptor see it whole.
	out := sh(t, d.put("default"), "find deep -name g | wc -l; rm -r deep; ls")
	if strings.TrimSpace(out) != "1" {
		t.Errorf("find and rm -r of the deep tree in put/: %q, want 1 file found and nothing left", out)
	}
}

// An entry deeper than PATH_MAX is sealed, written to tape and recalled
// like any other: sealing walks, reads and adopts it relative to
// directory descriptors (it used to refuse it, "file name too long", and
// leave it in put/ for good).
func TestSealDeepPath(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, quietFlags()...)
	rel := deepTree(t, d.put("default"))
	before := d.batchIDs("default")
	seal(t, filepath.Join(d.put("default"), "deep"))
	id := d.waitSynced("default", before, 60*time.Second)
	batch := filepath.Join(d.ws("default"), id)
	if got := strings.TrimSpace(sh(t, batch, "find deep -name g | wc -l; find deep -type l | wc -l")); got != "1\n1" {
		t.Errorf("find in the sealed deep batch: %q, want one file g and one symlink", got)
	}
	readDeep := func(when string) {
		t.Helper()
		fd := openDeep(t, batch, rel)
		defer unix.Close(fd)
		g, err := unix.Openat(fd, "g", unix.O_RDONLY, 0)
		if err != nil {
			t.Fatalf("%s: open g at the bottom of the deep batch: %v", when, err)
		}
		defer unix.Close(g)
		buf := make([]byte, 16)
		n, err := unix.Read(g, buf)
		if err != nil || string(buf[:n]) != "hel" {
			t.Errorf("%s: g of the deep batch reads %q, %v; want \"hel\"", when, buf[:max(n, 0)], err)
		}
		md5, err := xattr(fmt.Sprintf("/proc/self/fd/%d/g", fd), "user.tapefs.md5")
		if want := "46356afe55fa3cea9cbe73ad442cad47"; err != nil || md5 != want { // md5 of "hel"
			t.Errorf("%s: user.tapefs.md5 of the deep g: %q, %v; want %s", when, md5, err, want)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, "s", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("%s: the deep symlink s: mode %o, %v", when, st.Mode, err)
		}
	}
	readDeep("cached")
	d.evict()
	readDeep("recalled from tape")
}

// openDeep opens the directory rel below top (any length), one component
// at a time.
func openDeep(t *testing.T, top, rel string) int {
	t.Helper()
	fd, err := unix.Open(top, unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range strings.Split(strings.Trim(rel, "/"), "/") {
		next, err := unix.Openat(fd, c, unix.O_DIRECTORY|unix.O_RDONLY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("openat %.40s... in %s: %v", c, top, err)
		}
		fd = next
	}
	return fd
}

// deepTree makes under top a chain of directories whose relative path
// passes PATH_MAX, and at its bottom does every kind of operation,
// relative to a descriptor of the deepest directory. It returns that
// directory's path relative to top; the file g ("hel") and the symlink
// s to it stay there.
func deepTree(t *testing.T, top string) string {
	t.Helper()
	where := "in " + top
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s %s at depth > PATH_MAX: %v", what, where, err)
		}
	}
	fd, err := unix.Open(top, unix.O_DIRECTORY|unix.O_RDONLY, 0)
	must("open", err)
	rel := ""
	for i := 0; len(rel) < unix.PathMax+1000; i++ {
		name := "deep"
		if i > 0 {
			name = fmt.Sprintf("%03d%s", i, strings.Repeat("d", 197))
		}
		must("mkdirat", unix.Mkdirat(fd, name, 0o755))
		next, err := unix.Openat(fd, name, unix.O_DIRECTORY|unix.O_RDONLY, 0)
		must("openat of a directory", err)
		unix.Close(fd)
		fd = next
		rel += "/" + name
	}
	defer unix.Close(fd)

	f, err := unix.Openat(fd, "f", unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL, 0o644)
	must("openat(O_CREAT)", err)
	_, err = unix.Write(f, []byte("hello\n"))
	must("write", err)
	must("fsetxattr", unix.Fsetxattr(f, "user.test", []byte("v"), 0))
	unix.Close(f)

	var st unix.Stat_t
	must("fstatat", unix.Fstatat(fd, "f", &st, unix.AT_SYMLINK_NOFOLLOW))
	if st.Size != 6 || st.Mode&0o7777 != 0o644 {
		t.Errorf("%s: f is %d bytes mode %04o, want 6 bytes 0644", where, st.Size, st.Mode&0o7777)
	}
	must("fchmodat", unix.Fchmodat(fd, "f", 0o600, 0))
	must("fchownat", unix.Fchownat(fd, "f", 1, 2, unix.AT_SYMLINK_NOFOLLOW))
	// A path through the directory's descriptor: SETATTR without a handle.
	must("truncate", unix.Truncate(fmt.Sprintf("/proc/self/fd/%d/f", fd), 3))
	ts := []unix.Timespec{unix.NsecToTimespec(1e18), unix.NsecToTimespec(1e18)}
	must("utimensat", unix.UtimesNanoAt(fd, "f", ts, unix.AT_SYMLINK_NOFOLLOW))
	must("fstatat", unix.Fstatat(fd, "f", &st, unix.AT_SYMLINK_NOFOLLOW))
	if st.Size != 3 || st.Mode&0o7777 != 0o600 || st.Uid != 1 || st.Gid != 2 || st.Mtim.Sec != 1e9 {
		t.Errorf("%s: after truncate, chmod, chown, utimens: size %d mode %04o owner %d:%d mtime %d", where,
			st.Size, st.Mode&0o7777, st.Uid, st.Gid, st.Mtim.Sec)
	}
	buf := make([]byte, 16)
	n, err := unix.Getxattr(fmt.Sprintf("/proc/self/fd/%d/f", fd), "user.test", buf)
	must("getxattr", err)
	if string(buf[:n]) != "v" {
		t.Errorf("%s: user.test is %q", where, buf[:n])
	}
	n, err = unix.Listxattr(fmt.Sprintf("/proc/self/fd/%d/f", fd), buf)
	must("listxattr", err)
	if !strings.Contains(string(buf[:n]), "user.test") {
		t.Errorf("%s: listxattr: %q", where, buf[:n])
	}
	must("removexattr", unix.Removexattr(fmt.Sprintf("/proc/self/fd/%d/f", fd), "user.test"))

	must("renameat", unix.Renameat(fd, "f", fd, "g"))
	must("linkat", unix.Linkat(fd, "g", fd, "h", 0))
	must("symlinkat", unix.Symlinkat("g", fd, "s"))
	n, err = unix.Readlinkat(fd, "s", buf)
	must("readlinkat", err)
	if string(buf[:n]) != "g" {
		t.Errorf("%s: readlink: %q", where, buf[:n])
	}
	must("mkdirat", unix.Mkdirat(fd, "sub", 0o700))
	r, err := unix.Openat(fd, "g", unix.O_RDONLY, 0)
	must("openat(O_RDONLY)", err)
	n, err = unix.Read(r, buf)
	unix.Close(r)
	must("read", err)
	if string(buf[:n]) != "hel" {
		t.Errorf("%s: g holds %q, want \"hel\"", where, buf[:n])
	}
	dir, err := unix.Openat(fd, ".", unix.O_DIRECTORY|unix.O_RDONLY, 0)
	must("openat(.)", err)
	names := readDirFd(t, dir)
	unix.Close(dir)
	if want := ". .. g h s sub"; names != want {
		t.Errorf("%s: the deepest directory lists %q, want %q", where, names, want)
	}
	must("unlinkat", unix.Unlinkat(fd, "h", 0))
	must("unlinkat", unix.Unlinkat(fd, "s", 0))
	must("unlinkat(AT_REMOVEDIR)", unix.Unlinkat(fd, "sub", unix.AT_REMOVEDIR))
	must("symlinkat", unix.Symlinkat("g", fd, "s"))
	return rel
}

// readDirFd lists a directory by its descriptor, sorted, space separated.
func readDirFd(t *testing.T, fd int) string {
	t.Helper()
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			t.Fatalf("getdents: %v", err)
		}
		if n == 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	names = append(names, ".", "..") // ParseDirent skips them
	sort.Strings(names)
	return strings.Join(names, " ")
}

// put/ files are direct I/O (no kernel page cache of their own for read
// and write), yet a program may still map one shared and write through the
// mapping, as on a local disk; the bytes written that way are the ones
// sealed. And a file written with write(2) reads back through a shared
// mapping.
func TestPutSharedMmap(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, quietFlags()...)
	entry := filepath.Join(d.put("default"), "mapped")
	if err := os.Mkdir(entry, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 3<<20 + 123
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7 + i>>12)
	}

	// Written through a shared mapping.
	f, err := os.OpenFile(filepath.Join(entry, "m.dat"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap MAP_SHARED of a put/ file for writing: %v", err)
	}
	copy(m, want)
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		t.Fatalf("msync: %v", err)
	}
	if err := unix.Munmap(m); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// Written with write(2), read through a shared mapping.
	if err := os.WriteFile(filepath.Join(entry, "w.dat"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := os.Open(filepath.Join(entry, "w.dat"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := unix.Mmap(int(g.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap MAP_SHARED of a put/ file for reading: %v", err)
	}
	same := string(r) == string(want)
	_ = unix.Munmap(r)
	g.Close()
	if !same {
		t.Errorf("put/mapped/w.dat read through a shared mapping differs from what was written")
	}

	seal(t, entry)
	ids := d.batchIDs("default")
	if len(ids) != 1 {
		t.Fatalf("after the seal: batches %v, want one", ids)
	}
	sum := md5.Sum(want)
	for _, name := range []string{"m.dat", "w.dat"} {
		p := filepath.Join(d.ws("default"), ids[0], "mapped", name)
		if got := mustXattr(t, p, "user.tapefs.md5"); got != hex.EncodeToString(sum[:]) {
			t.Errorf("batch %s: mapped/%s has md5 %s, want %x", ids[0], name, got, sum)
		}
	}
}

package test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// expectFail runs each shell command in dir and expects it to fail with
// one of the error texts (strerror) in its output.
func expectFail(t *testing.T, dir string, texts []string, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		out, err := shErr(dir, c)
		ok := false
		for _, txt := range texts {
			ok = ok || strings.Contains(out, txt)
		}
		if err == nil || !ok {
			t.Errorf("%s: %v: %q; want it to fail with %q", c, err, strings.TrimSpace(out), strings.Join(texts, " or "))
		}
	}
}

var erofs = []string{"Read-only file system"}

// makeROSource writes the small tree of the read-only test.
func makeROSource(t *testing.T, root string) {
	t.Helper()
	for _, f := range []struct{ path, data string }{
		{"f", "hello\n"},
		{"sub/g", "inside\n"},
		{"sub/h", "another\n"},
		{"keep", "kept\n"},
	} {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("f", filepath.Join(root, "l")); err != nil {
		t.Fatal(err)
	}
	setPastTimes(t, root)
}

// TestBatchTreeIsReadOnly checks that every kind of write in a batch tree
// fails with EROFS, for cached and for offline files (which must not be
// recalled for it), that the tree is unchanged afterwards, that rm of a
// file hides it, and that rm -r of the batch directory removes the batch
// from the listing at once.
func TestBatchTreeIsReadOnly(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, fastFlags()...)
	base := t.TempDir()
	src := filepath.Join(base, "ro")
	makeROSource(t, src)
	id := d.cpSynced(src, 2*time.Minute)
	batch := filepath.Join(d.ws("default"), id)
	e := filepath.Join(batch, "ro")

	writes := []string{
		"touch " + q(e+"/new"),                   // create
		"echo x > " + q(e+"/new2"),               // create by redirection
		"cp /etc/hostname " + q(e+"/sub/"),       // create in a subdirectory
		"echo x >> " + q(e+"/f"),                 // open for writing
		"exec 3<>" + q(e+"/f"),                   // open read-write
		"truncate -s 0 " + q(e+"/f"),             // truncate
		"touch " + q(e+"/f"),                     // utimes
		"chmod 600 " + q(e+"/f"),                 // chmod
		"chown 1:1 " + q(e+"/f"),                 // chown
		"mkdir " + q(e+"/newdir"),                // mkdir
		"mkfifo " + q(e+"/fifo"),                 // mknod
		"mv " + q(e+"/f") + " " + q(e+"/f2"),     // rename
		"mv " + q(e+"/f") + " " + q(e+"/sub/f"),  // rename across directories
		"mv " + q(e+"/sub") + " " + q(e+"/sub2"), // rename a directory
		"ln " + q(e+"/f") + " " + q(e+"/hard"),   // link
		"ln -s f " + q(e+"/sym"),                 // symlink
		"setfattr -n user.other -v 1 " + q(e+"/f"),
		"setfattr -n user.other -v 1 " + q(e+"/sub"),
		"touch " + q(batch+"/new"), // at the batch level
		"mkdir " + q(batch+"/newdir"),
		"mv " + q(e) + " " + q(batch+"/renamed"),
		"chmod 700 " + q(batch),
	}
	expectFail(t, "/", erofs, writes...)
	diffTrees(t, src, e)
	compareTrees(t, src, e)

	// The same on offline files: EROFS, no recall.
	d.evict()
	expectFail(t, "/", erofs,
		"echo x >> "+q(e+"/f"),
		"exec 3<>"+q(e+"/sub/g"),
		"truncate -s 0 "+q(e+"/keep"),
		"touch "+q(e+"/f"),
	)
	if n := d.objectFiles(); n != 0 {
		t.Errorf("writes refused on offline files staged %d cache objects; want none", n)
	}
	if ev := d.logEvents("recall pass done"); len(ev) != 0 {
		t.Errorf("writes refused on offline files caused recalls: %v", ev)
	}
	compareTrees(t, src, e)

	// rm of a file hides it; the rest stays.
	sh(t, "/", "rm "+q(e+"/sub/g"))
	if names := listNames(filepath.Join(e, "sub")); !slices.Equal(names, []string{"h"}) {
		t.Errorf("after rm of sub/g the batch's sub/ holds %q; want [h]", names)
	}
	if _, err := os.Lstat(filepath.Join(e, "sub", "g")); !os.IsNotExist(err) {
		t.Errorf("lstat of a removed file: %v; want ENOENT", err)
	}
	sh(t, "/", "cat "+q(e+"/sub/h")+" "+q(e+"/keep")+" >/dev/null")

	// rm -r of the batch removes it from the listing at once.
	sh(t, "/", "rm -r "+q(batch))
	if ids := d.batchIDs("default"); slices.Contains(ids, id) {
		t.Errorf("batch %s still listed right after rm -r: %v", id, ids)
	}
	out := sh(t, "/", "ls "+q(d.ws("default")))
	if slices.Contains(strings.Fields(out), id) {
		t.Errorf("ls of the workspace after rm -r of batch %s: %q", id, out)
	}
	if _, err := os.Lstat(batch); !os.IsNotExist(err) {
		t.Errorf("lstat of a removed batch: %v; want ENOENT", err)
	}
}

// TestWritesOutsidePutFail checks that the mount root and the workspace
// directory take no writes (EROFS, or EACCES for permission).
func TestWritesOutsidePutFail(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, fastFlags()...)
	ws := d.ws("default")
	rootBefore, wsBefore := listNames(d.mnt), listNames(ws)
	if !slices.Equal(rootBefore, []string{"default"}) || !slices.Equal(wsBefore, []string{"put"}) {
		t.Fatalf("a new home shows %q at the root and %q in default/; want [default] and [put]", rootBefore, wsBefore)
	}
	denied := []string{"Read-only file system", "Permission denied"}
	expectFail(t, "/", denied,
		"touch "+q(d.mnt+"/newfile"),
		"echo x > "+q(d.mnt+"/newfile2"),
		"mkdir "+q(d.mnt+"/newws"),
		"ln -s default "+q(d.mnt+"/link"),
		"touch "+q(ws+"/newfile"),
		"echo x > "+q(ws+"/newfile2"),
		"mkdir "+q(ws+"/newdir"),
		"mkdir "+q(ws+"/12345"),
		"ln -s put "+q(ws+"/link"),
		"mkfifo "+q(ws+"/fifo"),
		"setfattr -n user.other -v 1 "+q(ws),
		"chmod 700 "+q(ws),
		"touch "+q(ws),
		"mv "+q(ws+"/put")+" "+q(ws+"/put2"),
		"mv "+q(ws)+" "+q(d.mnt+"/renamed"),
		"rmdir "+q(ws+"/put"),
	)
	if got := listNames(d.mnt); !slices.Equal(got, rootBefore) {
		t.Errorf("the root holds %q after the refused writes; want %q", got, rootBefore)
	}
	if got := listNames(ws); !slices.Equal(got, wsBefore) {
		t.Errorf("default/ holds %q after the refused writes; want %q", got, wsBefore)
	}
	// put/ itself still takes writes.
	sh(t, "/", "echo ok > "+q(d.put("default")+"/still-writable"))
}

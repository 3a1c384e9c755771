package test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// orphanBinEnv, set, makes the test binary a child run of
// TestInterruptedRunLeavesNoMount using that tapefs binary, and
// orphanRootEnv tells its TestOrphanDaemon where to mount.
const (
	orphanBinEnv  = "TAPEFS_E2E_ORPHAN_BIN"
	orphanRootEnv = "TAPEFS_E2E_ORPHAN_ROOT"
)

// TestInterruptedRunLeavesNoMount: a test run that dies without running
// its cleanups (a -timeout panic, go test or a user killing it) leaves no
// FUSE mount behind: its daemons are told to stop and unmount. Before,
// they were SIGKILLed with the run and every interrupted run left dead
// mounts such as /tmp/TestRecallFairAcrossWorkspaces*/001/mnt.
//
// It runs this test binary again as a child whose TestOrphanDaemon starts
// a daemon through the harness, kills the child with SIGKILL once the
// mount is up, and waits for the mount to go.
func TestInterruptedRunLeavesNoMount(t *testing.T) {
	t.Parallel()
	needMount(t)
	root := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run", "^TestOrphanDaemon$", "-test.v", "-test.count=1")
	// The child runs on the default catalog whatever this run's mode: what
	// is tested is the mount, and the child starts no PostgreSQL server.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAPEFS_E2E_CATALOG=") {
			env = append(env, kv)
		}
	}
	child.Env = append(env, orphanBinEnv+"="+tapefsBin, orphanRootEnv+"="+root)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = child.Stdout
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(root, "mnt")
	t.Cleanup(func() {
		if child.ProcessState == nil {
			_ = child.Process.Kill()
			_ = child.Wait()
		}
		if isMounted(mnt) {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	var lines []string
	up := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "ORPHAN MOUNTED "+mnt {
			up = true
			break
		}
	}
	if !up {
		_ = child.Wait()
		t.Fatalf("the child run did not mount %s:\n%s", mnt, strings.Join(lines, "\n"))
	}
	go func() { // keep draining: the daemon's output goes through the child
		for sc.Scan() {
		}
	}()
	if !isMounted(mnt) {
		t.Fatalf("the child said it mounted %s, but it is not mounted", mnt)
	}
	// The run dies as a -timeout panic or a kill leaves it: no cleanup.
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	t0 := time.Now()
	waitFor(t, 30*time.Second, "the orphaned daemon to unmount "+mnt, func() (bool, string) {
		return !isMounted(mnt), "still mounted"
	})
	t.Logf("mount gone %v after the run was killed", time.Since(t0).Round(time.Millisecond))
}

// TestOrphanDaemon is the child run of TestInterruptedRunLeavesNoMount
// (it does nothing in an ordinary run): it mounts a daemon under the
// parent's directory, says so, and waits to be killed.
func TestOrphanDaemon(t *testing.T) {
	root := os.Getenv(orphanRootEnv)
	if root == "" || os.Getenv(orphanBinEnv) == "" {
		return // not a child run
	}
	d := newDaemonAt(t, root, fastFlags()...)
	d.start()
	os.Stdout.WriteString("ORPHAN MOUNTED " + d.mnt + "\n")
	time.Sleep(10 * time.Minute) // killed by the parent long before
}

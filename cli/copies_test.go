package cli

import (
	"strings"
	"testing"

	"github.com/tapefs/tapefs/api"
)

// TestLibrarySetAndCopies: library set and workspace set-copies say what
// changed and what is being re-created, and refuse bad values as usage
// errors (exit 4) before asking the daemon.
func TestLibrarySetAndCopies(t *testing.T) {
	fakeDaemon(t, map[string]any{
		"POST /v1/library/cartridges/TF0003": api.CartridgeResponse{VOLSER: "TF0003", Pool: "pool-b", State: "lost", Batches: 4},
		"POST /v1/workspaces/ws/copies":      api.Workspace{Name: "ws", Copies: 2, CopiesMissing: 5},
	})
	out, errs, code := runCmd(t, libraryCommand, "set", "TF0003", "--state", "lost")
	if code != ExitOK || !strings.Contains(out, "cartridge TF0003: pool pool-b, state lost; the copies it held are being re-created for 4 batches") {
		t.Errorf("library set: exit %d\n%s%s", code, out, errs)
	}
	for _, args := range [][]string{{"set", "TF0003", "--state", "broken"}, {"set", "TF0003"}, {"set", "--state", "lost"}} {
		if _, errs, code := runCmd(t, libraryCommand, args...); code != ExitUsage || errs == "" {
			t.Errorf("library %v: exit %d, want %d\n%s", args, code, ExitUsage, errs)
		}
	}
	out, errs, code = runCmd(t, workspaceCommand, "set-copies", "ws", "2")
	if code != ExitOK || !strings.Contains(out, "copies of ws set to 2; the missing copies of 5 batches are being written") {
		t.Errorf("workspace set-copies: exit %d\n%s%s", code, out, errs)
	}
	for _, args := range [][]string{{"set-copies", "ws", "4"}, {"set-copies", "ws", "two"}, {"set-copies", "ws"}} {
		if _, errs, code := runCmd(t, workspaceCommand, args...); code != ExitUsage || errs == "" {
			t.Errorf("workspace %v: exit %d, want %d\n%s", args, code, ExitUsage, errs)
		}
	}
}

package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCLILinksOnlyTheAPI: the command line talks to the daemon through
// the control API only; it links none of the engine, the catalog, the
// cache or the tape library (their records are not the wire format).
func TestCLILinksOnlyTheAPI(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	allowed := map[string]bool{
		"github.com/tapefs/tapefs/cli":               true,
		"github.com/tapefs/tapefs/api":               true,
		"github.com/tapefs/tapefs/config":            true,
		"github.com/tapefs/tapefs/archive/errkind":   true, // the error table, through api
		"github.com/tapefs/tapefs/internal/human":    true, // sizes as the page prints them
		"github.com/tapefs/tapefs/internal/filetype": true, // the words for files that cannot be archived, as the daemon says them
		"github.com/tapefs/tapefs/internal/ident":    true, // user and group names, as the page and the daemon's messages give them
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/tapefs/tapefs/") && !allowed[pkg] {
			t.Errorf("cli links %s", pkg)
		}
	}
}

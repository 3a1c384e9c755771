package archive

import (
	"os"
	"time"

	"github.com/rs/zerolog"
)

// Test hooks. Set in the environment to a duration, the daemon waits that
// long at one point of its work, so that an end-to-end test can kill it
// (kill -9) or freeze it (SIGSTOP) exactly there and check what a crash or
// a pause at that point leaves. Never set in production.
const (
	// Between writing a tape file and recording it
	// (test/multihost_takeover_test.go: a late commit is refused).
	hookBeforeCommit = "TAPEFS_TEST_PAUSE_BEFORE_COMMIT"
	// Between registering a sealed batch and moving its files into the
	// cache (test/seal_test.go: a batch is readable as soon as it shows).
	hookAfterRegister = "TAPEFS_TEST_PAUSE_AFTER_REGISTER"
)

var testPauses = map[string]time.Duration{}

func init() {
	for _, h := range []string{hookBeforeCommit, hookAfterRegister} {
		if d, err := time.ParseDuration(os.Getenv(h)); err == nil && d > 0 {
			testPauses[h] = d
		}
	}
}

// testPause waits at hook if the environment asks to, saying so in log.
func (e *Engine) testPause(hook string, log zerolog.Logger) {
	d := testPauses[hook]
	if d <= 0 {
		return
	}
	log.Warn().Dur("for", d).Msg("test hook " + hook + ": pausing here")
	time.Sleep(d)
}

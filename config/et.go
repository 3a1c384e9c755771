package config

import (
	"os"
	"path/filepath"
)

// ETFiles are Elastic Tape's own configuration files, /etc/et_config and
// ~/.et_config, in precedence order (lowest first). The et_*.py names of
// the binary read them after Files, so that an Elastic Tape user's
// "[Batch] Workspace" keeps choosing the workspace of their scripts.
// TAPEFS_ET_SYSTEM_CONFIG and TAPEFS_ET_USER_CONFIG replace them (for tests
// and unusual installs).
func ETFiles() []string {
	sys := "/etc/et_config"
	if v := os.Getenv("TAPEFS_ET_SYSTEM_CONFIG"); v != "" {
		sys = v
	}
	user := os.Getenv("TAPEFS_ET_USER_CONFIG")
	if user == "" {
		if home, err := os.UserHomeDir(); err == nil {
			user = filepath.Join(home, ".et_config")
		}
	}
	return []string{sys, user}
}

// isETFile says whether name is one of ETFiles: sections tapefs does not
// know in those files are Elastic Tape's business (its server's settings),
// not a typo to warn about on every command.
func isETFile(name string) bool {
	for _, f := range ETFiles() {
		if f != "" && f == name {
			return true
		}
	}
	return false
}

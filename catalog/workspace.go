package catalog

import (
	"fmt"
	"strings"
)

// Workspace returns the named workspace.
func (tx *Tx) Workspace(name string) (Workspace, error) {
	var w Workspace
	found, err := tx.get(workspaceKey(name), &w)
	if err == nil && !found {
		err = fmt.Errorf("workspace %s: %w", name, ErrNotFound)
	}
	return w, err
}

// PutWorkspace creates or replaces a workspace. Used is stored as given:
// callers change it inside the transaction that read it.
func (tx *Tx) PutWorkspace(w Workspace) error {
	if err := checkWorkspaceName(w.Name); err != nil {
		return err
	}
	return tx.put(workspaceKey(w.Name), &w)
}

// Workspaces returns every workspace, sorted by name.
func (tx *Tx) Workspaces() ([]Workspace, error) {
	var out []Workspace
	err := tx.kv.Scan([]byte{tableWorkspace}, nil, false, func(k, v []byte) (bool, error) {
		var w Workspace
		if err := unmarshal(k, v, &w); err != nil {
			return false, err
		}
		out = append(out, w)
		return true, nil
	})
	return out, err
}

// checkWorkspaceName refuses names that cannot be a directory of the mount
// or would break the NUL-separated index keys.
func checkWorkspaceName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("workspace name %q is not valid: use a plain directory name (no /, not . or ..)", name)
	}
	return nil
}

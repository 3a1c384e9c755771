package cli

import (
	"io/fs"

	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/internal/ident"
)

// Names of users and groups where a person reads them: the daemon speaks
// numbers (uids and gids are what the catalog holds), the command line
// turns them into names from this machine's user database. A number that
// has no name stays a number.

// userName is the login name of uid, or the number.
func userName(uid uint32) string { return ident.User(uid) }

// groupName is the name of gid, or the number.
func groupName(gid uint32) string { return ident.Group(gid) }

// modeText is the permission bits as ls -l writes them, with setuid,
// setgid and sticky: rwxr-xr-x, rwsr-xr-x, rwxrwxrwt. The archive keeps
// Unix mode bits (07777) in its mode field.
func modeText(mode uint32) string {
	m := fs.FileMode(mode & 0o777)
	b := []byte(m.String()[1:])
	if mode&0o4000 != 0 {
		b[2] = sx(b[2], 's', 'S')
	}
	if mode&0o2000 != 0 {
		b[5] = sx(b[5], 's', 'S')
	}
	if mode&0o1000 != 0 {
		b[8] = sx(b[8], 't', 'T')
	}
	return string(b)
}

func sx(c byte, exec, noexec byte) byte {
	if c == 'x' {
		return exec
	}
	return noexec
}

// withNames fills a file's words for people: mode, user and group.
func withNames(f api.FileInfo) api.FileInfo {
	f.ModeText = modeText(f.Mode)
	f.User = userName(f.UID)
	f.GroupName = groupName(f.GID)
	return f
}

// workspaceJSON is a workspace in -F json: the API's fields and the names
// of its manager and group.
type workspaceJSON struct {
	api.Workspace
	ManagerName string `json:"manager_name"`
	GroupName   string `json:"group_name"`
}

func workspacesJSON(wss []api.Workspace) []workspaceJSON {
	out := make([]workspaceJSON, 0, len(wss))
	for _, w := range wss {
		out = append(out, workspaceJSON{Workspace: w, ManagerName: userName(w.Manager), GroupName: groupName(w.Group)})
	}
	return out
}

// batchJSON is a batch in status -F json: the API's fields and the name
// of its owner.
type batchJSON struct {
	api.Batch
	OwnerName string `json:"owner_name"`
}

func batchesJSON(bs []api.Batch) []batchJSON {
	out := make([]batchJSON, 0, len(bs))
	for _, b := range bs {
		out = append(out, batchJSON{Batch: b, OwnerName: userName(b.Owner)})
	}
	return out
}

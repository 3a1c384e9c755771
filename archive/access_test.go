package archive

import "testing"

// TestAccessRule: the one rule, case by case.
func TestAccessRule(t *testing.T) {
	w := Workspace{Name: "ws", Manager: 1000, Group: 500}
	b := Batch{ID: 1, Workspace: "ws", Owner: 2000}
	var (
		root     = Root()
		manager  = Caller{UID: 1000, GID: 1000}
		owner    = Caller{UID: 2000, GID: 2000, Groups: []uint32{500}}
		member   = Caller{UID: 3000, GID: 500} // the group as primary group
		outsider = Caller{UID: 4000, GID: 4000}
		outOwner = Caller{UID: 2000, GID: 2000} // owns the batch, no longer in the group
		page     = Anonymous()
		nobody   = Nobody()
	)
	for _, tc := range []struct {
		name                 string
		c                    Caller
		see, manage, removes bool
	}{
		{"root", root, true, true, true},
		{"manager", manager, true, true, true},
		{"owner", owner, true, false, true},
		{"member", member, true, false, false},
		{"outsider", outsider, false, false, false},
		{"owner out of the group", outOwner, false, false, false},
		{"page", page, true, false, false},
		{"nobody", nobody, false, false, false},
	} {
		a := AccessTo(tc.c, w, b)
		if a.See != tc.see || a.Manage != tc.manage || a.Remove != tc.removes {
			t.Errorf("%s: %+v, want see %v manage %v remove %v", tc.name, a, tc.see, tc.manage, tc.removes)
		}
	}

	dir := File{Type: TypeDir, Mode: 0o750, UID: 2000, GID: 500}
	closed := File{Type: TypeDir, Mode: 0o700, UID: 2000, GID: 500}
	secret := File{Type: TypeFile, Mode: 0o600, UID: 1000, GID: 500}
	shared := File{Type: TypeFile, Mode: 0o640, UID: 2000, GID: 500}
	ownerDenied := File{Type: TypeFile, Mode: 0o044, UID: 2000, GID: 500} // owner bits decide for the owner
	world := File{Type: TypeFile, Mode: 0o604, UID: 2000, GID: 500}
	for _, tc := range []struct {
		name string
		c    Caller
		dirs []File
		f    File
		want bool
	}{
		{"root reads anything", root, []File{closed}, secret, true},
		{"the manager's own 0600 file", manager, nil, secret, true},
		{"a member and the manager's 0600 file", member, nil, secret, false},
		{"the owner and the manager's 0600 file", owner, nil, secret, false},
		{"a member and a 0640 file", member, []File{dir}, shared, true},
		{"a member below a 0700 directory", member, []File{closed}, shared, false},
		{"the owner below its own 0700 directory", owner, []File{closed}, shared, true},
		{"owner bits decide for the owner", owner, nil, ownerDenied, false},
		{"other bits do not open the workspace to an outsider", outsider, nil, world, false},
		{"the page reads no file", page, nil, world, false},
	} {
		if got := MayRead(tc.c, w, tc.dirs, tc.f); got != tc.want {
			t.Errorf("%s: MayRead %v, want %v", tc.name, got, tc.want)
		}
	}
}

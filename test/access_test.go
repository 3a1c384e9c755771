package test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/api"
)

// One access rule (archive/access.go) for the mount, the command line and
// the status page: the same caller × operation matrix is run through all
// three and must give the same answer from each, and the answer the rule
// says.

// accessUser is one caller of the matrix.
type accessUser struct {
	name     string
	uid, gid uint32
	groups   []uint32
}

const (
	accessGroup = 62000 // the workspace's group
	ownerUID    = 61002 // the batches' owner: whoever put them
)

var accessUsers = []accessUser{
	{"root", 0, 0, nil},
	{"manager", 61001, 61001, []uint32{accessGroup}},
	{"owner", ownerUID, ownerUID, []uint32{accessGroup}},
	{"member", 61003, 61003, []uint32{accessGroup}},
	{"outsider", 61004, 61004, nil},
}

// accessWant is what the rule says, by operation and then by user, in
// the order of accessUsers. "get" restores all, part or none of a batch
// holding a 0644 and a 0600 file of the owner.
var accessWant = map[string][]string{
	"read":     {"yes", "no", "yes", "no", "no"}, // the owner's 0600 file
	"list":     {"yes", "yes", "yes", "yes", "no"},
	"get":      {"all", "part", "all", "part", "none"},
	"put":      {"yes", "yes", "no", "no", "no"},
	"rm":       {"yes", "yes", "yes", "no", "no"},
	"undelete": {"yes", "yes", "yes", "no", "no"},
	"evict":    {"yes", "yes", "no", "no", "no"},
}

// command runs as the user: root directly, the others through setpriv
// with their groups.
func (u accessUser) command(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	if u.uid == 0 {
		return exec.Command(name, args...)
	}
	pre := []string{"--reuid=" + strconv.Itoa(int(u.uid)), "--regid=" + strconv.Itoa(int(u.gid))}
	if len(u.groups) == 0 {
		pre = append(pre, "--clear-groups")
	} else {
		var gs []string
		for _, g := range u.groups {
			gs = append(gs, strconv.Itoa(int(g)))
		}
		pre = append(pre, "--groups="+strings.Join(gs, ","))
	}
	return exec.Command(needSetpriv(t), append(append(pre, "--", name), args...)...)
}

// run runs a command as the user and returns its exit code and output.
func (u accessUser) run(t *testing.T, name string, args ...string) (int, string) {
	t.Helper()
	cmd := u.command(t, name, args...)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("run %s %v as %s: %v", name, args, u.name, err)
	}
	return 0, string(out)
}

// tapefs runs a command of the CLI as the user against the daemon.
func (u accessUser) tapefs(t *testing.T, home string, args ...string) (int, string) {
	t.Helper()
	cmd := u.command(t, tapefsBin, args...)
	cmd.Env = cleanEnv("TAPEFS_HOME=" + home)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("run tapefs %v as %s: %v", args, u.name, err)
	}
	return 0, string(out)
}

// pageGet fetches path from the status page as the user, over a plain
// TCP connection of the user's own (bash's /dev/tcp: no HTTP client
// needed), and returns the HTTP status and the body.
func (u accessUser) pageGet(t *testing.T, base, path string) (int, string) {
	t.Helper()
	hostport := strings.TrimPrefix(base, "http://")
	host, port, ok := strings.Cut(hostport, ":")
	if !ok {
		t.Fatalf("status page address %q", base)
	}
	script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%s && printf 'GET %%s HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" >&3 && cat <&3`, host, port, hostport)
	code, out := u.run(t, "bash", "-c", script, "pageGet", path)
	if code != 0 {
		t.Fatalf("GET %s as %s: exit %d\n%s", path, u.name, code, out)
	}
	status, body, _ := strings.Cut(out, "\r\n\r\n")
	var proto string
	var n int
	if _, err := fmt.Sscanf(status, "%s %d", &proto, &n); err != nil {
		t.Fatalf("GET %s as %s: no status line in %q", path, u.name, clip(out, 300))
	}
	return n, body
}

// TestAccessMatrix: root, the workspace's manager, the batch's owner, a
// member of the workspace's group and an outsider × read, list, get, put,
// rm, undelete, evict, through the mount, the CLI and the page. The page
// knows who is asking on loopback (the owner of the connection's other
// end): what it lists is fetched as each user; what it cannot do (read
// bytes, change anything) it answers through the API's access endpoint,
// which applies the same rule.
func TestAccessMatrix(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, append(fastFlags(), "--allow-other")...)
	// The mount point and home must be reachable by the other users.
	for _, p := range []string{filepath.Dir(filepath.Dir(d.mnt)), filepath.Dir(d.mnt)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.start()
	root := accessUsers[0]
	if code, out := root.tapefs(t, d.home, "workspace", "create", "ws1", "--owner", "61001", "--group", strconv.Itoa(accessGroup)); code != 0 {
		t.Fatalf("workspace create: exit %d\n%s", code, out)
	}
	base := sharedTempDir(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// The template of every batch: a group-shared directory of the owner
	// (setgid, group-writable, as a group's project tree is) with a 0644
	// and a 0600 file.
	tmpl := filepath.Join(base, "tmpl")
	must(os.Mkdir(tmpl, 0o755))
	must(os.WriteFile(filepath.Join(tmpl, "pub.txt"), []byte("public\n"), 0o644))
	must(os.WriteFile(filepath.Join(tmpl, "secret.txt"), []byte("secret\n"), 0o600))
	for _, p := range []string{tmpl, filepath.Join(tmpl, "pub.txt"), filepath.Join(tmpl, "secret.txt")} {
		must(os.Lchown(p, ownerUID, accessGroup))
	}
	must(os.Chmod(tmpl, 0o775|fs.ModeSetgid))

	// makeBatch puts a copy of the template through the mount, as root
	// would for the owner (cp -a keeps the owner), and returns its ID.
	n := 0
	makeBatch := func() string {
		t.Helper()
		entry := fmt.Sprintf("e-%d", n)
		n++
		before := d.batchIDs("ws1")
		if out, err := exec.Command("cp", "-a", tmpl, filepath.Join(d.put("ws1"), entry)).CombinedOutput(); err != nil {
			t.Fatalf("cp -a into put/: %v\n%s", err, out)
		}
		if out, err := exec.Command("setfattr", "-n", "user.tapefs.seal", filepath.Join(d.put("ws1"), entry)).CombinedOutput(); err != nil {
			t.Fatalf("seal %s: %v\n%s", entry, err, out)
		}
		return d.waitNewBatch("ws1", before, 30*time.Second)
	}
	shared := makeBatch() // entry e-0: read, list, get, evict
	if code, out := root.tapefs(t, d.home, "status", "-b", shared, "--wait"); code != 0 {
		t.Fatalf("status --wait: exit %d\n%s", code, out)
	}
	// One batch per user to remove through each face, and one to
	// undelete (removed by root first).
	rmMount, rmCLI, undel := map[string]string{}, map[string]string{}, map[string]string{}
	for _, u := range accessUsers {
		rmMount[u.name], rmCLI[u.name], undel[u.name] = makeBatch(), makeBatch(), makeBatch()
		if code, out := root.tapefs(t, d.home, "rm", "-b", undel[u.name]); code != 0 {
			t.Fatalf("rm of batch %s to undelete: exit %d\n%s", undel[u.name], code, out)
		}
	}
	// A directory each user may put from through the CLI (one each: a
	// path already archived is not put again).
	putSrc := func(u accessUser) string {
		p := filepath.Join(base, "putsrc-"+u.name)
		writeFiles(t, p, map[string]int{"p.dat": 100})
		return p
	}

	// batchState is the state of a batch as root sees it.
	batchState := func(id string) string {
		t.Helper()
		code, out := root.tapefs(t, d.home, "ls", "-b", id, "-L", "batch", "-F", "json")
		var bs []api.Batch
		if code != 0 || json.Unmarshal([]byte(out), &bs) != nil || len(bs) != 1 {
			t.Fatalf("ls -b %s: exit %d\n%s", id, code, out)
		}
		return string(bs[0].State)
	}
	// removed says what an rm did: the batch is deleted (yes), or live
	// with both files (no); anything else is a half removal.
	removed := func(id string) string {
		t.Helper()
		if batchState(id) == "DELETED" {
			return "yes"
		}
		code, out := root.tapefs(t, d.home, "ls", "-b", id, "-L", "file", "-F", "json")
		var fs []api.FileInfo
		if code != 0 || json.Unmarshal([]byte(out), &fs) != nil {
			t.Fatalf("ls -b %s -L file: exit %d\n%s", id, code, out)
		}
		live := 0
		for _, f := range fs {
			if f.Type == api.TypeFile && !f.Removed {
				live++
			}
		}
		if live == 2 {
			return "no"
		}
		return fmt.Sprintf("half (%d of 2 files left)", live)
	}
	// restored counts the regular files under dir: all, part or none of
	// the batch's two.
	restored := func(dir string) string {
		k := 0
		filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				k++
			}
			return nil
		})
		switch k {
		case 0:
			return "none"
		case 2:
			return "all"
		case 1:
			return "part"
		}
		return fmt.Sprintf("%d files", k)
	}
	// dest is a fresh directory the user may write into.
	dests := 0
	dest := func(u accessUser) string {
		dests++
		p := filepath.Join(base, fmt.Sprintf("dest%d", dests))
		must(os.Mkdir(p, 0o755))
		must(os.Chown(p, int(u.uid), int(u.gid)))
		return p
	}
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "no"
	}
	wsDir := d.ws("ws1")
	secretPath := "/e-0/secret.txt"

	got := map[string]map[string][]string{"mount": {}, "cli": {}, "page": {}} // face -> op -> by user
	for _, u := range accessUsers {
		// ---- the mount ----
		m := got["mount"]
		code, out := u.run(t, "cat", filepath.Join(wsDir, shared, secretPath))
		m["read"] = append(m["read"], yes(code == 0 && out == "secret\n"))
		code, _ = u.run(t, "ls", wsDir)
		m["list"] = append(m["list"], yes(code == 0))
		dst := dest(u)
		u.run(t, "cp", "-r", filepath.Join(wsDir, shared), dst)
		m["get"] = append(m["get"], restored(dst))
		probe := filepath.Join(d.put("ws1"), "probe-"+u.name)
		code, _ = u.run(t, "mkdir", probe)
		if code == 0 {
			must(os.Remove(probe))
		}
		m["put"] = append(m["put"], yes(code == 0))
		u.run(t, "rm", "-rf", filepath.Join(wsDir, rmMount[u.name]))
		m["rm"] = append(m["rm"], removed(rmMount[u.name]))

		// ---- the command line ----
		c := got["cli"]
		list := filepath.Join(base, "read-"+u.name+".list")
		must(os.WriteFile(list, []byte(secretPath+"\n"), 0o644))
		dst = dest(u)
		code, _ = u.tapefs(t, d.home, "get", "-w", "ws1", "-f", list, "-r", dst)
		_, statErr := os.Stat(filepath.Join(dst, secretPath))
		c["read"] = append(c["read"], yes(code == 0 && statErr == nil))
		code, _ = u.tapefs(t, d.home, "ls", "-w", "ws1")
		c["list"] = append(c["list"], yes(code == 0))
		dst = dest(u)
		code, out = u.tapefs(t, d.home, "get", "-b", shared, "-r", dst)
		switch r := restored(dst); {
		case code == api.ExitOK && r == "all", code == api.ExitPartial && r == "part", code == api.ExitFailed && r == "none":
			c["get"] = append(c["get"], r)
		default:
			c["get"] = append(c["get"], fmt.Sprintf("exit %d with %s restored", code, r))
			t.Logf("get -b %s as %s: exit %d\n%s", shared, u.name, code, out)
		}
		if u.name == "member" {
			if _, err := os.Stat(filepath.Join(dst, "e-0", "secret.txt")); err == nil {
				t.Errorf("tapefs get restored the owner's 0600 file to a group member")
			}
			if !strings.Contains(out, "secret.txt") {
				t.Errorf("tapefs get as a member does not name secret.txt as not restored\n%s", out)
			}
		}
		code, _ = u.tapefs(t, d.home, "put", "-w", "ws1", putSrc(u))
		c["put"] = append(c["put"], yes(code == 0))
		u.tapefs(t, d.home, "rm", "-b", rmCLI[u.name])
		c["rm"] = append(c["rm"], removed(rmCLI[u.name]))
		code, _ = u.tapefs(t, d.home, "undelete", "-b", undel[u.name])
		c["undelete"] = append(c["undelete"], yes(code == 0 && batchState(undel[u.name]) != "DELETED"))
		code, _ = u.tapefs(t, d.home, "cache", "evict", "-b", shared)
		c["evict"] = append(c["evict"], yes(code == 0))
	}

	// ---- the page: the access endpoint of its read-only API ----
	page := statusURL(d)
	var files []api.FileInfo
	if err := json.Unmarshal(httpGetOK(t, page+"/api/v1/batches/"+shared+"/files").body, &files); err != nil {
		t.Fatal(err)
	}
	access := func(u accessUser, batch string, file uint64) api.Access {
		t.Helper()
		var gs []string
		for _, g := range u.groups {
			gs = append(gs, strconv.Itoa(int(g)))
		}
		url := fmt.Sprintf("%s/api/v1/batches/%s/access?uid=%d&gid=%d&groups=%s&file=%d", page, batch, u.uid, u.gid, strings.Join(gs, ","), file)
		var a api.Access
		if err := json.Unmarshal(httpGetOK(t, url).body, &a); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		return a
	}
	p := got["page"]
	for _, u := range accessUsers {
		readable, regular := 0, 0
		var secretRead bool
		for _, f := range files {
			if f.Type != api.TypeFile {
				continue
			}
			regular++
			a := access(u, shared, f.ID)
			if a.Read {
				readable++
			}
			if "/"+f.Path == secretPath {
				secretRead = a.Read
			}
		}
		a := access(u, shared, 0)
		p["read"] = append(p["read"], yes(secretRead))
		// What the page shows this user, fetched as this user: the
		// batch in the workspace's list, and its files in the JSON.
		htmlCode, html := u.pageGet(t, page, "/batches?workspace=ws1")
		listed := htmlCode == 200 && strings.Contains(html, "/batches/"+shared+`"`)
		jsonCode, _ := u.pageGet(t, page, "/api/v1/batches/"+shared+"/files")
		if listed != (jsonCode == 200) || listed != a.See {
			t.Errorf("the page as %s: batch listed %v (HTTP %d), its files HTTP %d, the access endpoint says see=%v", u.name, listed, htmlCode, jsonCode, a.See)
		}
		p["list"] = append(p["list"], yes(listed))
		if code, _ := u.pageGet(t, page, "/metrics"); (code == 200) != (u.uid == 0) {
			t.Errorf("/metrics as %s: HTTP %d (it names every workspace: root only)", u.name, code)
		}
		switch readable {
		case 0:
			p["get"] = append(p["get"], "none")
		case regular:
			p["get"] = append(p["get"], "all")
		default:
			p["get"] = append(p["get"], "part")
		}
		p["put"] = append(p["put"], yes(a.Manage))
		p["rm"] = append(p["rm"], yes(access(u, rmCLI[u.name], 0).Remove))
		p["undelete"] = append(p["undelete"], yes(access(u, undel[u.name], 0).Remove))
		p["evict"] = append(p["evict"], yes(a.Manage))
	}

	// Every face that has the operation gives the rule's answer.
	ops := make([]string, 0, len(accessWant))
	for op := range accessWant {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var table strings.Builder
	fmt.Fprintf(&table, "%-9s %-6s", "op", "face")
	for _, u := range accessUsers {
		fmt.Fprintf(&table, " %-9s", u.name)
	}
	table.WriteString("\n")
	for _, op := range ops {
		for _, face := range []string{"mount", "cli", "page"} {
			answers, ok := got[face][op]
			if !ok {
				continue // the mount has no undelete or evict
			}
			fmt.Fprintf(&table, "%-9s %-6s", op, face)
			for i, a := range answers {
				mark := ""
				if a != accessWant[op][i] {
					mark = "!"
					t.Errorf("%s by %s through the %s: %s, want %s", op, accessUsers[i].name, face, a, accessWant[op][i])
				}
				fmt.Fprintf(&table, " %-9s", a+mark)
			}
			table.WriteString("\n")
		}
	}
	t.Logf("caller × operation (! = not what the rule says):\n%s", table.String())
}

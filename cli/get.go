package cli

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/pflag"
	"github.com/tapefs/tapefs/api"
	"golang.org/x/sys/unix"
)

var getCommand = Command{
	Name:    "get",
	Summary: "restore a batch, or a list of archived files, into a directory",
	Usage:   "[-v] [-l LOGFILE] (-b ID | [-0] -f FILELIST) [-w WS] -r DIR [-t MAXPROC] [--force]",
	Help: `Restores files with their mode, mtime and symlinks at DIR/<path as shown in
the batch>, written as you. Recalls are issued together so the library serves
them in tape order. An existing file is not overwritten unless --force.
Nothing is ever written outside DIR, whatever a path in the catalog says.
Every file's md5 is checked as it is written. Files that could not be
restored are listed on stderr and in a file that -f accepts for a retry
(exit code 2). Entries of a batch hidden in the mount by a removal in
progress (rm, mv or rsync --delete inside it) are archived and restored too.

FILELIST holds paths as shown by 'tapefs ls -L file', one per line (with -0,
each ended by a NUL byte, for names holding a newline); each is taken from
the newest live batch of the workspace that holds it. Names are taken byte
for byte: only a DOS line's CR is dropped.

Examples:
  tapefs get -b 507 -r /scratch/restore
  tapefs get -w gws_run3 -f wanted.list -r /scratch/restore -t 8
  tapefs get -w gws_run3 -0 -f wanted.list0 -r /scratch/restore
`,
	setup: func(fs *pflag.FlagSet) func(env *Env, args []string) int {
		batch := fs.Uint64P("batch", "b", 0, "batch `ID` to restore")
		list := fs.StringP("file", "f", "", "`FILELIST` of archived paths to restore")
		null := fs.BoolP("null", "0", false, "FILELIST entries end with NUL, not newline (for names holding a newline); so does the retry list")
		ws := fs.StringP("workspace", "w", "", "workspace of the paths in FILELIST")
		dir := fs.StringP("restore", "r", "", "`DIR` to restore into (created if missing)")
		procs := fs.IntP("threads", "t", 4, "at most `MAXPROC` files streamed at once")
		force := fs.Bool("force", false, "overwrite existing files")
		verbose, logfile := logFlags(fs)
		return func(env *Env, args []string) int {
			if *ws != "" {
				env.Settings.Workspace = *ws
			}
			if len(args) > 0 {
				return env.usage("get", "unexpected argument %q", args[0])
			}
			if (*batch == 0) == (*list == "") {
				return env.usage("get", "give either -b ID or -f FILELIST")
			}
			if *dir == "" {
				return env.usage("get", "-r DIR is required")
			}
			if *procs < 1 {
				return env.usage("get", "-t must be at least 1")
			}
			closeLog, err := env.openLog(*verbose, *logfile)
			if err != nil {
				return env.fail("get", err)
			}
			defer closeLog()
			return env.get(*batch, listFile{*list, *null}, *dir, *procs, *force)
		}
	},
}

// failure is a file that was not restored.
type failure struct {
	path string
	why  error
}

func (env *Env) get(batch uint64, list listFile, dir string, procs int, force bool) int {
	ctx, cancel := interruptible()
	defer cancel()
	files, failures, err := env.selectFiles(ctx, batch, list)
	if err != nil {
		return env.fail("get", err)
	}
	root, err := filepath.Abs(dir)
	if err == nil {
		err = os.MkdirAll(root, 0o755)
	}
	if err != nil {
		return env.fail("get", err)
	}
	// Queue every recall at once: the daemon serves them in tape order.
	var ids []uint64
	var total int64
	for _, f := range files {
		if f.Type == api.TypeFile && f.Link == 0 && f.State != "online" {
			ids = append(ids, f.ID)
		}
		if f.Type == api.TypeFile {
			total += f.Size
		}
	}
	if len(ids) > 0 {
		if err := env.Client.Recall(ctx, api.RecallRequest{Files: ids}); err != nil {
			return env.fail("get", err)
		}
	}
	bar := env.newProgress("get", total)
	r := &restorer{env: env, root: root, force: force, bar: bar, byID: map[uint64]api.FileInfo{}}
	for _, f := range files {
		r.byID[f.ID] = f
	}
	failures = append(failures, r.run(ctx, files, procs)...)
	bar.done()
	if len(failures) == 0 {
		return ExitOK
	}
	sort.Slice(failures, func(i, j int) bool { return failures[i].path < failures[j].path })
	retry := fmt.Sprintf("tapefs-get-failed-%d.list", os.Getpid())
	var again []string
	for _, f := range failures {
		fmt.Fprintf(env.Stderr, "tapefs get: not restored: %s: %v\n", shellQuote(f.path), f.why)
		env.logf("failed %s: %v", f.path, f.why)
		if !strings.HasPrefix(f.path, "(") {
			again = append(again, "/"+strings.TrimPrefix(f.path, "/"))
		}
	}
	// A name holding a newline needs a NUL-separated list.
	null := list.null || slices.ContainsFunc(again, func(p string) bool { return strings.Contains(p, "\n") })
	var b strings.Builder
	writeList(&b, again, null)
	retryFlag := ""
	if null {
		retryFlag = " -0"
	}
	if err := os.WriteFile(retry, []byte(b.String()), 0o644); err != nil {
		retry = filepath.Join(os.TempDir(), retry)
		if err := os.WriteFile(retry, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintf(env.Stderr, "tapefs get: cannot write the retry list: %v\n", err)
		}
	}
	fmt.Fprintf(env.Stderr, "tapefs get: %d file(s) not restored; retry them with: tapefs get -w %s%s -f %s -r %s\n", len(failures), env.Settings.Workspace, retryFlag, retry, dir)
	return ExitPartial
}

// selectFiles lists what to restore: a whole batch, or the paths of a list
// looked up in the workspace's live batches.
func (env *Env) selectFiles(ctx context.Context, batch uint64, list listFile) ([]api.FileInfo, []failure, error) {
	if batch != 0 {
		return env.batchFiles(ctx, batch)
	}
	f, err := os.Open(list.name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var wanted []string
	var failures []failure
	// Names are taken byte for byte: blanks at either end belong to the
	// name (only a DOS line's CR is dropped).
	if err := scanList(f, list.name, list.null, func(line int, p string) error {
		if strings.TrimSpace(p) == "" {
			failures = append(failures, failure{fmt.Sprintf("(%s:%d)", list.name, line), errors.New("blank line")})
			return nil
		}
		wanted = append(wanted, strings.TrimPrefix(p, "/"))
		return nil
	}); err != nil {
		return nil, nil, err
	}
	where, err := env.Client.CheckPaths(ctx, env.Settings.Workspace, wanted)
	if err != nil {
		return nil, nil, err
	}
	byBatch := map[uint64][]string{}
	for _, p := range wanted {
		b, ok := where[p]
		if !ok {
			failures = append(failures, failure{p, fmt.Errorf("not archived in a live batch of workspace %s", env.Settings.Workspace)})
			continue
		}
		byBatch[b] = append(byBatch[b], p)
	}
	var out []api.FileInfo
	for b, paths := range byBatch {
		all, err := env.Client.AllFiles(ctx, b)
		if err != nil {
			return nil, nil, err
		}
		want := map[string]bool{}
		for _, p := range paths {
			want[p] = true
		}
		byID := map[uint64]api.FileInfo{}
		for _, f := range all {
			byID[f.ID] = f
		}
		added := map[uint64]bool{}
		for _, f := range all {
			// A file hidden by a removal in progress is still archived.
			if !want[f.Path] {
				continue
			}
			out = append(out, f)
			added[f.ID] = true
			// A hard link needs the file that holds its data.
			if f.Link != 0 && !added[f.Link] {
				if o, ok := byID[f.Link]; ok && !want[o.Path] {
					out = append(out, o)
					added[o.ID] = true
				}
			}
		}
	}
	return out, failures, nil
}

// batchFiles lists every entry of a batch, those hidden in the mount by a
// removal in progress too: they are archived, and a restore of the batch
// that left them out would be a partial one reported as complete. A
// listing shorter than the batch's count is a failure (exit 2), never a
// smaller success.
func (env *Env) batchFiles(ctx context.Context, batch uint64) ([]api.FileInfo, []failure, error) {
	st, err := env.Client.Batch(ctx, batch)
	if err != nil {
		return nil, nil, err
	}
	files, err := env.Client.AllFiles(ctx, batch)
	if err != nil {
		return nil, nil, err
	}
	if st.Removing != "" {
		fmt.Fprintf(env.Stderr, "tapefs get: batch %d: %s in the mount; they are archived and restored too\n", batch, st.Removing)
	}
	var failures []failure
	if n := int64(len(files)); n != st.Files {
		failures = append(failures, failure{fmt.Sprintf("(batch %d)", batch), fmt.Errorf("the catalog listed %d of its %d entries", n, st.Files)})
	}
	return files, failures, nil
}

// safeJoin places a catalog path under root, refusing any path that would
// leave it. Symlinks inside root are checked when files are created.
func safeJoin(root, p string) (string, error) {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return "", errors.New("empty path")
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("refused: path %q has an empty, '.' or '..' component and could land outside the restore directory", p)
		}
	}
	return filepath.Join(root, filepath.FromSlash(p)), nil
}

type restorer struct {
	env   *Env
	root  string
	force bool
	bar   *progress
	byID  map[uint64]api.FileInfo
	mu    sync.Mutex
	fails []failure
}

func (r *restorer) failed(path string, err error) {
	r.mu.Lock()
	r.fails = append(r.fails, failure{path, err})
	r.mu.Unlock()
}

func (r *restorer) run(ctx context.Context, files []api.FileInfo, procs int) []failure {
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	var dirs, regular, links, symlinks []api.FileInfo
	for _, f := range files {
		switch {
		case f.Type == api.TypeDir:
			dirs = append(dirs, f)
		case f.Type == api.TypeSymlink:
			symlinks = append(symlinks, f)
		case f.Link != 0:
			links = append(links, f)
		default:
			regular = append(regular, f)
		}
	}
	for _, d := range dirs {
		dst, err := safeJoin(r.root, d.Path)
		if err == nil {
			err = r.mkdirs(dst, true)
		}
		if err != nil {
			r.failed(d.Path, err)
		}
	}
	work := make(chan api.FileInfo)
	var wg sync.WaitGroup
	for i := 0; i < procs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := r.file(ctx, f); err != nil {
					r.failed(f.Path, err)
				} else {
					r.env.logf("restored %s", f.Path)
				}
			}
		}()
	}
	// Tape order: files that share a cartridge come in position order.
	sort.SliceStable(regular, func(i, j int) bool { return tapeKey(regular[i]) < tapeKey(regular[j]) })
	for _, f := range regular {
		work <- f
	}
	close(work)
	wg.Wait()
	for _, f := range links {
		if err := r.link(f); err != nil {
			r.failed(f.Path, err)
		}
	}
	for _, f := range symlinks {
		if err := r.symlink(f); err != nil {
			r.failed(f.Path, err)
		}
	}
	// Directory modes and times last, deepest first.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if dst, err := safeJoin(r.root, d.Path); err == nil {
			os.Chmod(dst, fs.FileMode(d.Mode&0o7777))
			os.Chtimes(dst, d.Mtime, d.Mtime)
		}
	}
	return r.fails
}

func tapeKey(f api.FileInfo) string {
	if len(f.Copies) == 0 {
		return ""
	}
	c := f.Copies[0]
	return fmt.Sprintf("%s/%08d/%016d", c.VOLSER, c.TapeFile, c.Offset)
}

// mkdirs creates dst and its parents under root, refusing to go through a
// symlink (a restored link must not redirect later files).
func (r *restorer) mkdirs(dst string, last bool) error {
	rel, err := filepath.Rel(r.root, dst)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("refused: %s is outside %s", dst, r.root)
	}
	p := r.root
	parts := strings.Split(rel, string(filepath.Separator))
	if !last {
		parts = parts[:len(parts)-1]
	}
	for _, c := range parts {
		if c == "." {
			continue
		}
		p = filepath.Join(p, c)
		st, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		case err != nil:
			return err
		case !st.IsDir():
			return fmt.Errorf("refused: %s exists and is not a directory", p)
		}
	}
	return nil
}

// file restores one regular file through a temporary name, checking its
// md5, so a failed restore never leaves a half file under the real name.
func (r *restorer) file(ctx context.Context, f api.FileInfo) error {
	dst, err := safeJoin(r.root, f.Path)
	if err != nil {
		return err
	}
	if err := r.mkdirs(dst, false); err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil && !r.force {
		return errors.New("exists; use --force to overwrite")
	}
	body, _, err := r.env.Client.FileData(ctx, f.ID)
	if err != nil {
		return err
	}
	defer body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tapefs-get-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := md5.New()
	n, err := io.Copy(io.MultiWriter(tmp, h, barWriter{r.bar}), body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n != f.Size {
		return fmt.Errorf("got %d of %d bytes", n, f.Size)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); f.MD5 != "" && sum != f.MD5 {
		return fmt.Errorf("md5 %s, archived %s: not restored", sum, f.MD5)
	}
	if err := os.Chmod(tmp.Name(), fs.FileMode(f.Mode&0o7777)); err != nil {
		return err
	}
	if err := os.Chtimes(tmp.Name(), f.Mtime, f.Mtime); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

type barWriter struct{ p *progress }

func (b barWriter) Write(p []byte) (int, error) { b.p.add(int64(len(p))); return len(p), nil }

// place prepares dst for a link or symlink: its parents exist, and an
// existing entry is removed only with --force.
func (r *restorer) place(p string) (string, error) {
	dst, err := safeJoin(r.root, p)
	if err != nil {
		return "", err
	}
	if err := r.mkdirs(dst, false); err != nil {
		return "", err
	}
	if _, err := os.Lstat(dst); err == nil {
		if !r.force {
			return "", errors.New("exists; use --force to overwrite")
		}
		os.Remove(dst)
	}
	return dst, nil
}

func (r *restorer) link(f api.FileInfo) error {
	owner, ok := r.byID[f.Link]
	if !ok {
		return errors.New("its hard-link partner is not part of this restore")
	}
	src, err := safeJoin(r.root, owner.Path)
	if err != nil {
		return err
	}
	dst, err := r.place(f.Path)
	if err != nil {
		return err
	}
	return os.Link(src, dst)
}

func (r *restorer) symlink(f api.FileInfo) error {
	dst, err := r.place(f.Path)
	if err != nil {
		return err
	}
	if err := os.Symlink(f.Target, dst); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(f.Mtime.UnixNano()), unix.NsecToTimespec(f.Mtime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
}

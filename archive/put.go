package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/human"
	"golang.org/x/sys/unix"
)

// ingestEntry marks, in a sealing directory's metadata, a CLI put rather
// than an entry of put/: recovery fails its batch instead of moving it back.
const ingestEntry = "\x00ingest"

// cliPut stands for the entry of a refused put from the command line,
// which has no entry of put/.
const cliPut = "tapefs put"

// Reserve registers a CACHING batch for a put from the command line, so
// the caller has its ID before the bytes arrive. bytes is what the put
// announces; the quota is checked against it now and again at sealing.
func (e *Engine) Reserve(workspace, tag string, owner uint32, bytes int64) (catalog.Batch, error) {
	var b catalog.Batch
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		ws, err := tx.Workspace(workspace)
		if err != nil {
			return err
		}
		// The size is the caller's word: a negative one would lower the
		// workspace's use (and so its quota check) while the put is
		// pending, a huge one overflow it.
		if bytes < 0 || bytes > math.MaxInt64/2-max(ws.Used, 0) {
			return &RejectError{Workspace: workspace, Entry: cliPut, Cause: ErrUnsupported, Reason: fmt.Sprintf("announced size of %d bytes is not a size", bytes)}
		}
		if ws.Quota > 0 && bytes > ws.Quota-ws.Used {
			return &RejectError{Workspace: workspace, Entry: cliPut, Cause: ErrQuota, Reason: quotaReason(bytes, workspace, ws.Quota-ws.Used, ws.Quota)}
		}
		now := e.now()
		b, err = tx.ReserveBatch(catalog.Batch{Workspace: workspace, Tag: tag, Owner: owner, State: catalog.Caching, Created: now, Bytes: bytes, Host: e.cfg.Host})
		if err != nil {
			return err
		}
		return pl.record(tx, catalog.Event{Time: now, Workspace: workspace, Batch: b.ID, Kind: EvState, State: catalog.Caching,
			Message: fmt.Sprintf("batch %d registered for tapefs put (%s announced)", b.ID, human.Size(bytes))})
	})
	return b, err
}

// CheckFileSize refuses a file larger than the maximum file size, so that
// a put from the command line that cannot succeed is refused before a
// batch is reserved for it (name is the file's path, for the message).
func (e *Engine) CheckFileSize(workspace, name string, size int64) error {
	if size <= e.cfg.MaxFileSize {
		return nil
	}
	return &RejectError{Workspace: workspace, Entry: cliPut, Cause: ErrFileTooBig, Reason: tooBigReason(name, size, e.cfg.MaxFileSize) + "; nothing was archived"}
}

// Ingest reads a tar stream of the files of a reserved batch into the
// cache and seals the batch. The stream is trusted for nothing: names
// that leave the batch, links that point into it from outside, special
// files and sizes over the limit are refused. Ownership comes from the
// tar headers when the daemon may set it.
func (e *Engine) Ingest(ctx context.Context, id uint64, r io.Reader) (catalog.Batch, error) {
	var b catalog.Batch
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		b, err = tx.Batch(id)
		return err
	}); err != nil {
		return b, err
	}
	if b.State != catalog.Caching {
		return b, fmt.Errorf("batch %d is %s: only a CACHING batch takes data", id, b.State)
	}
	dir, err := e.cache.NewSealingDir()
	if err != nil {
		return b, err
	}
	if err := writeSealMeta(dir, b.Workspace, ingestEntry+fmt.Sprint(id)); err != nil {
		return b, err
	}
	fail := func(err error) (catalog.Batch, error) {
		os.RemoveAll(dir)
		e.failBatch(b, EvFailed, fmt.Sprintf("tapefs put into batch %d did not complete: %v; nothing was archived, run tapefs put again", id, err))
		return b, err
	}
	if err := extractTar(r, dir, e.cfg.MaxFileSize); err != nil {
		return fail(err)
	}
	files, err := walkAll(dir)
	if err != nil {
		return fail(err)
	}
	if len(files) == 0 {
		return fail(errors.New("the put stream holds no file"))
	}
	b, err = e.registerSealed(ctx, b, dir, files)
	if err != nil {
		if b.ID == 0 {
			b.ID = id
			return fail(err)
		}
		return b, err
	}
	return b, nil
}

// walkAll lists every entry under root (not root itself), parents first.
func walkAll(root string) ([]stagedFile, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []stagedFile
	for _, d := range ents {
		if d.Name() == sealMeta {
			continue
		}
		fs, err := walkEntry(root, d.Name())
		if err != nil {
			return nil, err
		}
		// Hard-link owners are indexes into this entry's slice: shift them.
		for i := range fs {
			if fs[i].owner >= 0 {
				fs[i].owner += len(out)
			}
		}
		out = append(out, fs...)
	}
	// walkEntry works per top-level entry, so a hard link across two
	// entries is seen as two owners; that only costs a second copy.
	return out, nil
}

// cleanMemberName checks a tar member name and returns it relative and
// clean: no absolute path, no "..", no empty component.
func cleanMemberName(name string) (string, error) {
	name = strings.TrimPrefix(name, "/")
	name = strings.TrimSuffix(name, "/")
	if name == "" {
		return "", errors.New("empty member name")
	}
	for _, c := range strings.Split(name, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("member name %q: a path component is empty, '.' or '..'", name)
		}
	}
	if name == sealMeta {
		return "", fmt.Errorf("member name %q is reserved", name)
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("member name %q contains NUL", name)
	}
	return name, nil
}

// extractTar writes a tar stream under root, refusing anything that could
// write outside it.
func extractTar(r io.Reader, root string, maxFile int64) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		path  string
		mtime time.Time
	}
	var dirs []dirTime
	asRoot := os.Geteuid() == 0
	// Directories known to be real (not symlinks) under root. Nothing
	// replaces one later: every create below fails on an existing name.
	// Checking each parent once instead of per member saves most of the
	// lstat calls of a put of many small files.
	real := map[string]bool{}
	buf := make([]byte, 256<<10)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read put stream: %w", err)
		}
		rel, err := cleanMemberName(h.Name)
		if err != nil {
			return err
		}
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := ensureRealDirs(root, path.Dir(rel), real); err != nil {
			return err
		}
		mode := os.FileMode(h.Mode & 0o7777)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if err := ensureRealDirs(root, rel, real); err != nil {
				return err
			}
			dirs = append(dirs, dirTime{p, h.ModTime})
		case tar.TypeReg:
			if h.Size > maxFile {
				return fmt.Errorf("%s is %d bytes, more than the maximum file size of %d bytes: %w", rel, h.Size, maxFile, ErrFileTooBig)
			}
			n, err := createFile(p, tr, buf)
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			if n != h.Size {
				return fmt.Errorf("%s: stream ended after %d of %d bytes", rel, n, h.Size)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		case tar.TypeLink:
			target, err := cleanMemberName(h.Linkname)
			if err != nil {
				return err
			}
			if err := ensureRealDirs(root, path.Dir(target), real); err != nil {
				return err
			}
			tp := filepath.Join(root, filepath.FromSlash(target))
			if st, err := os.Lstat(tp); err != nil || !st.Mode().IsRegular() {
				return fmt.Errorf("%s: hard link to %s, which is not a regular file of this put", rel, target)
			}
			if err := os.Link(tp, p); err != nil {
				return err
			}
			continue
		default:
			return fmt.Errorf("%s: tar member type %q cannot be archived", rel, h.Typeflag)
		}
		if asRoot {
			if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
				return err
			}
		}
		if h.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(p, mode); err != nil {
				return err
			}
		}
		if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeSymlink {
			ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
		}
	}
	// Directory times last, deepest first: creating entries changed them.
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i].path) > len(dirs[j].path) })
	for _, d := range dirs {
		os.Chtimes(d.path, d.mtime, d.mtime)
	}
	return nil
}

// createFile creates p (it must not exist) with the bytes of r. It opens
// with unix.Open: os.OpenFile tries to register every file with the
// poller (five more system calls, each failing for a regular file), which
// for a put of 100,000 small files was a fifth of the daemon's time.
func createFile(p string, r io.Reader, buf []byte) (int64, error) {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, &fs.PathError{Op: "create", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, r, buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// ensureRealDirs creates the directories of rel under root and refuses a
// component that exists as anything but a real directory (a symlink there
// would lead the next member outside root). real holds the directories
// checked already.
func ensureRealDirs(root, rel string, real map[string]bool) error {
	if rel == "." || rel == "" || real[rel] {
		return nil
	}
	p := root
	parts := strings.Split(rel, "/")
	for i, c := range parts {
		p = filepath.Join(p, c)
		if real[path.Join(parts[:i+1]...)] {
			continue
		}
		st, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case !st.IsDir():
			return fmt.Errorf("%s: a parent in the put stream is not a directory", rel)
		}
	}
	for d := rel; d != "." && !real[d]; d = path.Dir(d) {
		real[d] = true
	}
	return nil
}

package cli

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/pflag"
	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/internal/filetype"
	"golang.org/x/sys/unix"
)

var putCommand = Command{
	Name:    "put",
	Summary: "archive a directory or a list of files as one batch",
	Usage:   "[-v] [-l LOGFILE] [-w WS] [-c] [-t TAG] [--wait] ([-0] -f LISTFILE | DIR)",
	Help: `Reads the files as you (a file you cannot read cannot be archived), sends
them to the daemon, and prints the new batch ID alone on stdout as soon as the
batch is registered. Files are stored under their absolute paths; symlinks
are stored as symlinks. When put returns, the bytes are in the archive's disk
cache and the sources may be deleted; with --wait it returns once the batch is
on tape (CACHED_SYNCED), or fails if the batch FAILED.

LISTFILE holds absolute paths, one per line (with -0, each ended by a NUL
byte, as find -print0 writes them: for names holding a newline). A blank line, a relative path, a
missing or unreadable file, or a file already archived in a live batch of the
workspace is an error naming the line; with -c it is reported and skipped
(exit code 2).

Examples:
  tapefs put -w gws_run3 /data/run1234
  tapefs put -w gws_run3 -t run1234 -f run1234.list --wait
  find /data/run1234 -name '*.raw' > list && tapefs put -c -f list -l put.log
  find /data/run1234 -type f -print0 > list0 && tapefs put -0 -f list0
`,
	setup: func(fs *pflag.FlagSet) func(env *Env, args []string) int {
		ws := fs.StringP("workspace", "w", "", "workspace to put into (default: [Batch] Workspace, TAPEFS_WORKSPACE, or \"default\")")
		list := fs.StringP("file", "f", "", "`LISTFILE` of absolute paths, one per line")
		null := fs.BoolP("null", "0", false, "LISTFILE entries end with NUL, not newline (as find -print0 writes; for names holding a newline)")
		cont := fs.BoolP("continue", "c", false, "report and skip bad list entries instead of failing")
		tag := fs.StringP("tag", "t", "", "one-word `TAG` for the batch")
		wait := fs.Bool("wait", false, "return when the batch is on tape (or FAILED)")
		verbose, logfile := logFlags(fs)
		return func(env *Env, args []string) int {
			if *ws != "" {
				env.Settings.Workspace = *ws
			}
			if (*list == "") == (len(args) != 1) || len(args) > 1 {
				return env.usage("put", "give either -f LISTFILE or one DIR")
			}
			if strings.ContainsFunc(*tag, func(r rune) bool { return r <= ' ' }) || !utf8.ValidString(*tag) {
				return env.usage("put", "-t %q: a tag is one word of UTF-8 text", *tag)
			}
			closeLog, err := env.openLog(*verbose, *logfile)
			if err != nil {
				return env.fail("put", err)
			}
			defer closeLog()
			return env.put(listFile{*list, *null}, args, *cont, *tag, *wait)
		}
	},
}

// source is one path to archive, with where it was named.
type source struct {
	path  string // absolute, clean
	info  fs.FileInfo
	where string // "LISTFILE:LINE", or "" for a walk
}

// problem is a bad source: where, which, why. One problem may stand for
// several lines of a list (lines > 1): repeats summed up.
type problem struct {
	where, path, why string
	lines            int
	line             int // of a list file, to report in line order
}

func (p problem) String() string {
	switch {
	case p.path == "":
		return fmt.Sprintf("%s: %s", p.where, p.why)
	case p.where != "":
		return fmt.Sprintf("%s: %s: %s", p.where, p.path, p.why)
	}
	return fmt.Sprintf("%s: %s", p.path, p.why)
}

// count is the number of list lines or files the problems stand for.
func count(problems []problem) int {
	n := 0
	for _, p := range problems {
		n += max(p.lines, 1)
	}
	return n
}

func (env *Env) put(list listFile, args []string, cont bool, tag string, wait bool) int {
	ctx, cancel := interruptible()
	defer cancel()
	var (
		srcs     []source
		problems []problem
	)
	if list.name != "" {
		var err error
		srcs, problems, err = readList(list)
		if err != nil {
			return env.fail("put", err)
		}
	} else {
		dir, err := filepath.Abs(args[0])
		if err != nil {
			return env.fail("put", err)
		}
		st, err := os.Lstat(dir)
		if err != nil {
			return env.fail("put", err)
		}
		if !st.IsDir() {
			return env.usage("put", "%s is not a directory (use -f LISTFILE for single files)", args[0])
		}
		srcs, problems = expand([]source{{path: dir, info: st}})
	}
	// Files already archived in a live batch of the workspace.
	var paths []string
	for _, s := range srcs {
		if s.info.Mode().IsRegular() {
			paths = append(paths, batchPath(s.path))
		}
	}
	archived, err := env.Client.CheckPaths(ctx, env.Settings.Workspace, paths)
	if err != nil {
		return env.fail("put", err)
	}
	kept := srcs[:0]
	for _, s := range srcs {
		if b, ok := archived[batchPath(s.path)]; ok && s.info.Mode().IsRegular() {
			problems = append(problems, problem{where: s.where, path: s.path, why: fmt.Sprintf("already archived in batch %d of workspace %s; remove that batch first or leave the file out", b, env.Settings.Workspace)})
			continue
		}
		kept = append(kept, s)
	}
	srcs = kept
	for _, p := range problems {
		if cont {
			fmt.Fprintf(env.Stderr, "tapefs put: skipped %s\n", p)
			env.logf("skipped %s", p)
		} else {
			fmt.Fprintf(env.Stderr, "tapefs put: %s\n", p)
		}
	}
	if len(problems) > 0 && !cont {
		fmt.Fprintf(env.Stderr, "tapefs put: nothing was archived: fix the %d problem(s) above, or use -c to skip them\n", count(problems))
		return ExitFailed
	}
	if len(srcs) == 0 {
		fmt.Fprintln(env.Stderr, "tapefs put: nothing to archive")
		return ExitFailed
	}
	members := withParents(srcs)
	req := api.PutRequest{Workspace: env.Settings.Workspace, Tag: tag, Files: int64(len(members))}
	for _, m := range members {
		if m.info.Mode().IsRegular() {
			req.Bytes += m.info.Size()
			if m.info.Size() > req.Largest {
				req.Largest, req.LargestPath = m.info.Size(), api.Name(m.path)
			}
		}
	}
	total := req.Bytes
	// The daemon refuses a file over its size limit here, before a batch
	// is reserved: a put that cannot succeed leaves no FAILED batch.
	st, err := env.Client.Reserve(ctx, req)
	if err != nil {
		return env.fail("put", err)
	}
	id := st.ID
	fmt.Fprintln(env.Stdout, id)
	if f, ok := env.Stdout.(*os.File); ok {
		f.Sync()
	}
	bar := env.newProgress(fmt.Sprintf("put batch %d", id), total)
	pr, pw := io.Pipe()
	go func() {
		// Buffered: many small files would otherwise go as many small
		// chunks, a system call on each side for each.
		bw := bufio.NewWriterSize(pw, 1<<20)
		err := env.writeTar(bw, members, bar)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	st, err = env.Client.Upload(ctx, id, pr)
	pr.CloseWithError(errors.New("upload ended"))
	bar.done()
	if err != nil {
		return env.fail("put", fmt.Errorf("batch %d: %w", id, err))
	}
	env.logf("batch %d sealed: %d entries, %d bytes", id, st.Files, st.Bytes)
	if wait {
		if code := env.waitBatch(ctx, id); code != ExitOK {
			return code
		}
	}
	if len(problems) > 0 {
		return ExitPartial
	}
	return ExitOK
}

// batchPath is where an absolute source path is stored in a batch.
func batchPath(abs string) string { return strings.TrimPrefix(filepath.ToSlash(abs), "/") }

// readList reads a list file: absolute paths, one per line (or NUL
// terminated).
func readList(list listFile) ([]source, []problem, error) {
	f, err := os.Open(list.name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	entries, problems, err := parseList(f, list.name, list.null)
	if err != nil {
		return nil, nil, err
	}
	var top []source
	for _, e := range entries {
		st, err := os.Lstat(e.path)
		if err != nil {
			problems = append(problems, problem{where: e.where, path: e.path, why: describe(err), line: e.line})
			continue
		}
		top = append(top, source{path: e.path, info: st, where: e.where})
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].line < problems[j].line })
	srcs, more := expand(top)
	return srcs, append(problems, more...), nil
}

// listEntry is a path named by a list file, clean and absolute.
type listEntry struct {
	path, where string
	line        int
}

// maxRepeatsShown is how many lines naming a path listed before are
// reported one by one; the rest are counted in one line, so that a list
// holding one path 100,000 times does not print 99,999 lines.
const maxRepeatsShown = 10

// parseList reads the lines of a list file (name is for messages): each
// must be an absolute path, and a path may be listed once. Bad lines are
// problems naming file and line; the error is for a list that cannot be
// read at all.
func parseList(r io.Reader, name string, null bool) ([]listEntry, []problem, error) {
	var entries []listEntry
	var problems []problem
	seen := map[string]int{} // clean path -> its line
	repeats, firstHidden := 0, 0
	err := scanList(r, name, null, func(line int, p string) error {
		where := fmt.Sprintf("%s:%d", name, line)
		switch {
		case strings.TrimSpace(p) == "":
			problems = append(problems, problem{where: where, path: `""`, why: "blank line", line: line})
			return nil
		case strings.IndexByte(p, 0) >= 0:
			problems = append(problems, problem{where: where, path: strconv.Quote(p), why: "a path cannot hold a NUL byte", line: line})
			return nil
		case !filepath.IsAbs(p):
			problems = append(problems, problem{where: where, path: p, why: "relative path; the list must hold absolute paths", line: line})
			return nil
		}
		clean := filepath.Clean(p)
		if first, ok := seen[clean]; ok {
			repeats++
			if repeats <= maxRepeatsShown {
				problems = append(problems, problem{where: where, path: p, why: fmt.Sprintf("listed twice (first at %s:%d)", name, first), line: line})
			} else if firstHidden == 0 {
				firstHidden = line
			}
			return nil
		}
		seen[clean] = line
		entries = append(entries, listEntry{path: clean, where: where, line: line})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if hidden := repeats - maxRepeatsShown; hidden > 0 {
		problems = append(problems, problem{where: fmt.Sprintf("%s:%d", name, firstHidden), lines: hidden, line: firstHidden,
			why: fmt.Sprintf("%d more lines, from this one on, name a path listed before (not shown one by one)", hidden)})
	}
	return entries, problems, nil
}

// expand checks that every source can be read by the caller and walks
// directories.
func expand(top []source) ([]source, []problem) {
	var out []source
	var problems []problem
	seen := map[string]bool{}
	add := func(s source) {
		if !seen[s.path] {
			seen[s.path] = true
			out = append(out, s)
		}
	}
	for _, t := range top {
		if !t.info.IsDir() {
			if err := readable(t.path, t.info); err != nil {
				problems = append(problems, problem{where: t.where, path: t.path, why: describe(err)})
				continue
			}
			add(t)
			continue
		}
		filepath.WalkDir(t.path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				problems = append(problems, problem{where: t.where, path: p, why: describe(err)})
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			info, err := d.Info()
			if err == nil {
				err = readable(p, info)
			}
			if err != nil {
				problems = append(problems, problem{where: t.where, path: p, why: describe(err)})
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			add(source{path: p, info: info, where: t.where})
			return nil
		})
	}
	return out, problems
}

// readable checks, as the caller, that a source can be archived.
func readable(p string, info fs.FileInfo) error {
	switch {
	case info.Mode().IsRegular():
		f, err := openRead(p)
		if err != nil {
			return err
		}
		return f.Close()
	case info.IsDir():
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = f.Readdirnames(1)
		f.Close()
		if err == io.EOF {
			err = nil
		}
		return err
	case info.Mode()&fs.ModeSymlink != 0:
		return nil
	}
	return fmt.Errorf("%s files cannot be archived", filetype.Unarchivable(info.Mode()))
}

// describe turns a file error into words for a list report.
func describe(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or directory"
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("permission denied: you (uid %d) cannot read it", os.Getuid())
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// withParents adds the ancestors of every source (as directories, with
// their metadata where it can be read) and sorts parents first.
func withParents(srcs []source) []source {
	byPath := map[string]source{}
	for _, s := range srcs {
		byPath[s.path] = s
	}
	for _, s := range srcs {
		for d := filepath.Dir(s.path); d != "/" && d != "."; d = filepath.Dir(d) {
			if _, ok := byPath[d]; ok {
				break
			}
			st, err := os.Stat(d)
			if err != nil || !st.IsDir() {
				st = dirInfo{name: filepath.Base(d)}
			}
			byPath[d] = source{path: d, info: st}
		}
	}
	out := make([]source, 0, len(byPath))
	for _, s := range byPath {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// dirInfo stands for a parent directory that cannot be stat'ed.
type dirInfo struct{ name string }

func (d dirInfo) Name() string       { return d.name }
func (d dirInfo) Size() int64        { return 0 }
func (d dirInfo) Mode() fs.FileMode  { return fs.ModeDir | 0o755 }
func (d dirInfo) ModTime() time.Time { return time.Time{} }
func (d dirInfo) IsDir() bool        { return true }
func (d dirInfo) Sys() any           { return nil }

// writeTar streams the members as a tar archive, reading every file as
// the caller. A file that changes size while it is read fails the put.
func (env *Env) writeTar(w io.Writer, members []source, bar *progress) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	buf := make([]byte, 1<<20)
	for _, m := range members {
		name := batchPath(m.path)
		target := ""
		if m.info.Mode()&fs.ModeSymlink != 0 {
			t, err := os.Readlink(m.path)
			if err != nil {
				return fmt.Errorf("%s: %w", m.path, err)
			}
			target = t
		}
		h, err := tar.FileInfoHeader(m.info, target)
		if err != nil {
			return fmt.Errorf("%s: %w", m.path, err)
		}
		h.Name, h.Format = name, tar.FormatPAX
		h.Uname, h.Gname = "", ""
		if st, ok := m.info.Sys().(*syscall.Stat_t); ok && m.info.Mode().IsRegular() && st.Nlink > 1 {
			k := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := links[k]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			} else {
				links[k] = name
			}
		}
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", m.path, err)
		}
		if h.Typeflag == tar.TypeReg {
			if err := copyFile(tw, m.path, h.Size, buf, bar); err != nil {
				return err
			}
			env.logf("put %s (%d bytes)", m.path, h.Size)
		}
	}
	return tw.Close()
}

// openRead opens a file to read with unix.Open: os.Open also tries to
// register every file with the poller (five more system calls, each in
// vain for a regular file), which for a list of 100,000 small files,
// each opened twice, was most of put's own system time.
func openRead(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func copyFile(w io.Writer, path string, size int64, buf []byte, bar *progress) error {
	f, err := openRead(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	var n int64
	for {
		k, err := f.Read(buf)
		if k > 0 {
			if n+int64(k) > size {
				return fmt.Errorf("%s grew while it was being read; put it again when it is complete", path)
			}
			if _, werr := w.Write(buf[:k]); werr != nil {
				return werr
			}
			n += int64(k)
			bar.add(int64(k))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if n != size {
		return fmt.Errorf("%s shrank while it was being read (%d of %d bytes); put it again when it is complete", path, n, size)
	}
	return nil
}

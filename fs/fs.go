package fs

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/archive"
)

// Engine is what the mount needs of the archive: its surface, the only
// door below. *archive.Engine provides it through FromArchive; tests
// provide fakes.
type Engine = archive.Surface

// Reader reads one file of a batch.
type Reader = archive.FileReader

// cachedReader is a Reader that can hand out the complete cached object,
// for kernel passthrough.
type cachedReader interface {
	Cached() *os.File
}

// FromArchive is the archive engine's surface.
func FromArchive(e *archive.Engine) Engine { return e.Surface() }

// Options configure the mount.
type Options struct {
	Log zerolog.Logger
	// AllowOther lets users other than the one running the daemon use the
	// mount; files they create in put/ belong to them.
	AllowOther bool
	// CacheDir is the cache directory: statfs reports its disk when
	// CacheSpace is not set.
	CacheDir string
	// CacheSpace, when set, reports the cache's size limit and the bytes
	// it holds: statfs of the root and of put/ reports them (node_statfs.go).
	CacheSpace func() (limit, used int64)
	// Debug logs every FUSE request (very verbose).
	Debug bool
	// DirTimeout is how long the kernel may cache the names and attributes
	// of workspace and batch directories (0: DefaultDirTimeout). Changes
	// made behind the mount's back are notified to the kernel at once, so
	// this only bounds how stale a missed notification could leave them.
	DirTimeout time.Duration
	// TreeIdle is how long a batch tree may go unused before the mount
	// asks the kernel to drop its entries, so that the daemon can free
	// its nodes of them (trim.go; 0: treeEntryTimeout, after which the
	// kernel would ask again anyway).
	TreeIdle time.Duration
	// TreeNodeBudget bounds the batch tree nodes kept for the kernel:
	// above it the least recently used trees are dropped even when busy
	// (0: DefaultTreeNodeBudget; negative: no bound).
	TreeNodeBudget int
}

// DefaultDirTimeout is Options.DirTimeout's default.
const DefaultDirTimeout = 10 * time.Minute

// handleKillpriv is FUSE_HANDLE_KILLPRIV_V2: the file system, not the
// kernel, clears setuid/setgid bits and security.capability when a file
// is written, truncated or chowned. tapefs takes it for the side effect:
// the kernel then caches that a file has no privileges to drop, instead
// of a GETXATTR round trip before every write. put/ clears the bits itself
// on a write or truncation by an unprivileged user (put_writefail.go);
// batch files cannot be written, and the archive keeps no
// security.capability.
const handleKillpriv = fuse.CAP_HANDLE_KILLPRIV_V2

// Kernel cache timeouts. Batch trees change only by rm through this mount
// (the kernel drops the entry itself) or by undelete (negative entries are
// never cached), so their entries may be cached long; their attributes
// change only in st_blocks when a file is recalled or evicted. Workspace
// and batch directories gain and lose batches behind the kernel's back (CLI
// put and rm, sealing), which the engine notifies (notify.go): they are
// cached for Options.DirTimeout. put/ is a loopback of the staging
// directory and the mount root lists workspaces: short.
const (
	treeEntryTimeout = 30 * time.Second
	treeAttrTimeout  = 5 * time.Second
	shortTimeout     = time.Second
)

// dirTimeout is how long the kernel may cache a workspace or batch
// directory now: Options.DirTimeout while the engine hears of every change
// at once, short while it may not (the catalog is shared and its change
// notifications are down) — a change by another host must not stay hidden
// behind a long cache.
func (f *FS) dirTimeout() time.Duration {
	if f.eng.ChangesFollowed() {
		return f.opts.DirTimeout
	}
	return shortTimeout
}

// FS is one mount of the archive.
type FS struct {
	eng    Engine
	log    zerolog.Logger
	opts   Options
	open   *openFiles
	start  time.Time
	ops    *opCounter  // set by Mount
	root   *gofs.Inode // set by Mount, for notifications
	trees  *trees
	attrs  *attrCallers // who gets attributes with batch tree listings
	own    ownRemovals  // batch removals this mount's rmdir is making (notify.go)
	wsRecs wsCache      // the last workspace records read (wscache.go)
}

// New returns the file system over the engine.
func New(eng Engine, opts Options) *FS {
	if opts.DirTimeout <= 0 {
		opts.DirTimeout = DefaultDirTimeout
	}
	if opts.TreeIdle <= 0 {
		opts.TreeIdle = treeEntryTimeout
	}
	if opts.TreeNodeBudget == 0 {
		opts.TreeNodeBudget = DefaultTreeNodeBudget
	}
	return &FS{
		trees: newTrees(),
		attrs: newAttrCallers(),
		eng:   eng,
		log:   opts.Log,
		opts:  opts,
		open:  newOpenFiles(eng),
		start: time.Now(),
	}
}

// Root returns the root node of the mount.
func (f *FS) Root() gofs.InodeEmbedder {
	r := &rootDir{}
	r.readOnly = readOnly{fsys: f, node: &r.Inode}
	return r
}

// MountOptions are the go-fuse options of the mount.
func (f *FS) MountOptions() *gofs.Options {
	short := shortTimeout
	opts := &gofs.Options{
		EntryTimeout: &short,
		AttrTimeout:  &short,
		// A file or directory made with mode 0 in put/ is mode 0 (as on
		// a local disk), not the 0644/0755 go-fuse would show instead.
		NullPermissions: true,
		Logger:          log.New(logWriter{f.log, zerolog.WarnLevel}, "", 0),
		MountOptions: fuse.MountOptions{
			AllowOther: f.opts.AllowOther,
			FsName:     "tapefs",
			Name:       "tapefs",
			// The kernel checks permissions against the attributes we
			// report: the daemon runs as root and would otherwise let
			// anyone write anything.
			Options: []string{"default_permissions"},
			// Root mounts without fusermount; others need fusermount3.
			DirectMount: os.Geteuid() == 0,
			MaxWrite:    1 << 20,
			// Not IgnoreSecurityLabels: it answers security.capability
			// and the POSIX ACL names with ENODATA before the nodes,
			// and the read-only tree must answer "not supported"
			// instead (foreignXattr, node_xattr.go). put/ answers the
			// same names itself as before (put_xattr.go).
			// With this capability the kernel marks inodes it has checked
			// S_NOSEC and stops asking security.capability before every
			// write (passthrough writes too). See handleKillpriv.
			// put/ handles are direct I/O (putOpenFlags); with
			// DIRECT_IO_ALLOW_MMAP the kernel still maps them shared,
			// through its page cache, as it did before.
			ExtraCapabilities: handleKillpriv | fuse.CAP_DIRECT_IO_ALLOW_MMAP,
			Debug:             f.opts.Debug,
		},
	}
	opts.MountOptions.Logger = log.New(logWriter{f.log, zerolog.DebugLevel}, "", 0)
	return opts
}

// Mount mounts the file system on mountpoint and serves it until
// unmounted. It returns once the kernel has answered the first request.
func (f *FS) Mount(mountpoint string) (*fuse.Server, error) {
	opts := f.MountOptions()
	root := f.Root()
	f.root = root.EmbeddedInode()
	f.ops = &opCounter{RawFileSystem: gofs.NewNodeFS(root, opts)}
	srv, err := fuse.NewServer(f.ops, mountpoint, &opts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		srv.Unmount()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	unsubscribe := f.eng.Subscribe(f.onChange)
	unmounted := make(chan struct{})
	go f.sweepLoop(unmounted)
	go func() {
		srv.Wait()
		unsubscribe()
		close(unmounted)
	}()
	if srv.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 || os.Geteuid() != 0 {
		f.log.Info().Msg("kernel passthrough unavailable (it needs Linux 6.9 and root): cached reads go through the daemon")
	}
	return srv, nil
}

// logWriter turns go-fuse's log lines into zerolog events.
type logWriter struct {
	l     zerolog.Logger
	level zerolog.Level
}

func (w logWriter) Write(p []byte) (int, error) {
	w.l.WithLevel(w.level).Str("component", "go-fuse").Msg(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// caller is the uid and gid of the process that made the request.
func caller(ctx context.Context) (uid, gid uint32, ok bool) {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return 0, 0, false
	}
	return c.Uid, c.Gid, true
}

// whoCalls is the archive caller of a FUSE request, with the process's
// supplementary groups. A request without a caller is the daemon's own
// (tests that call nodes directly): root.
func whoCalls(ctx context.Context) archive.Caller {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return archive.Root()
	}
	if c.Uid == 0 {
		return archive.Caller{UID: 0, GID: c.Gid}
	}
	return archive.ProcessCaller(c.Uid, c.Gid, int32(c.Pid))
}

// view runs fn in one read of the archive and maps its error. The mount
// reads as root: the kernel caches entries for every user, and checks each
// user's permission itself from the attributes reported (the access rule
// of archive/access.go, spelled in mode bits). Opening a file's bytes and
// removal ask the surface as the caller.
func (f *FS) view(what string, fn func(tx archive.Snapshot) error) syscall.Errno {
	err := f.eng.Read(archive.Root(), fn)
	if err == nil {
		return 0
	}
	errno := errnoOf(err)
	if errno == syscall.EIO {
		f.log.Error().Err(err).Str("op", what).Msg("catalog read failed")
	}
	return errno
}

// OpCounts returns the FUSE requests served since Mount, by operation
// (for the metrics); nil before Mount.
func (f *FS) OpCounts() map[string]uint64 {
	if f.ops == nil {
		return nil
	}
	return f.ops.snapshot()
}

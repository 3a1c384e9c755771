package cli

import (
	"cmp"
	"fmt"
	"github.com/tapefs/tapefs/internal/human"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/config"
)

var rmCommand = Command{
	Name:    "rm",
	Summary: "remove a batch (soft delete: undo with undelete)",
	Usage:   "[-v] -b ID [-w WS]",
	Help: `Removes a batch from the holdings. It stays restorable with 'tapefs undelete'
until its retention period ends (7 days by default); then its tape space
becomes reclaimable. Only the workspace's manager (or root) may remove.

Examples:
  tapefs rm -b 507
`,
	setup: func(fs *pflag.FlagSet) func(env *Env, args []string) int {
		batch := fs.Uint64P("batch", "b", 0, "batch `ID` to remove")
		fs.StringP("workspace", "w", "", "workspace (checked against the batch's)")
		verbose, _ := logFlags(fs)
		return func(env *Env, args []string) int {
			if *batch == 0 || len(args) > 0 {
				return env.usage("rm", "give -b ID")
			}
			env.verbose = *verbose
			ctx, cancel := interruptible()
			defer cancel()
			if ws, _ := fs.GetString("workspace"); ws != "" {
				st, err := env.Client.Batch(ctx, *batch)
				if err != nil {
					return env.fail("rm", err)
				}
				if st.Workspace != ws {
					return env.fail("rm", fmt.Errorf("batch %d belongs to workspace %s, not %s", *batch, st.Workspace, ws))
				}
			}
			r, err := env.Client.Remove(ctx, *batch)
			if err != nil {
				return env.fail("rm", err)
			}
			fmt.Fprintf(env.Stdout, "batch %d removed; undo with 'tapefs undelete -b %d' until %s\n", *batch, *batch, r.PurgeAfter.Local().Format(time.RFC1123))
			return ExitOK
		}
	},
}

var undeleteCommand = Command{
	Name:    "undelete",
	Summary: "bring back a removed batch, or the entries an unfinished rm inside it hid",
	Usage:   "-b ID",
	Help: `Brings back a batch removed with 'tapefs rm' or 'rm -r MOUNT/WS/ID' within its
retention period, with every entry. Of a batch that is not removed but shows
"removal in progress" (an rm, mv or rsync --delete inside it that did not
end with the removal of the batch directory), it brings back the hidden
entries now instead of at the end of the grace period.

Examples:
  tapefs undelete -b 507
`,
	setup: func(fs *pflag.FlagSet) func(env *Env, args []string) int {
		batch := fs.Uint64P("batch", "b", 0, "batch `ID` to bring back")
		return func(env *Env, args []string) int {
			if *batch == 0 || len(args) > 0 {
				return env.usage("undelete", "give -b ID")
			}
			ctx, cancel := interruptible()
			defer cancel()
			// A batch with a removal in progress is not deleted: say what
			// came back.
			before, _ := env.Client.Batch(ctx, *batch)
			st, err := env.Client.Undelete(ctx, *batch)
			if err != nil {
				return env.fail("undelete", err)
			}
			if before.State != api.Deleted && before.Removal != nil {
				what := fmt.Sprintf("the %d hidden entries are", before.Removal.Hidden)
				if before.Removal.Hidden == 1 {
					what = "the hidden entry is"
				}
				fmt.Fprintf(env.Stdout, "batch %d: %s back (%s)\n", st.ID, what, st.State)
				return ExitOK
			}
			fmt.Fprintf(env.Stdout, "batch %d is back (%s)\n", st.ID, st.State)
			return ExitOK
		}
	},
}

var sealCommand = Command{
	Name:    "seal",
	Summary: "seal an entry of MOUNT/<workspace>/put/ now instead of after the settle time",
	Usage:   "PATH",
	Help: `Prints the new batch ID. The same as 'setfattr -n user.tapefs.seal PATH'.

Examples:
  cp -a run1234 /tape/gws_run3/put/ && tapefs seal /tape/gws_run3/put/run1234
`,
	setup: func(fs *pflag.FlagSet) func(env *Env, args []string) int {
		tag := fs.StringP("tag", "t", "", "one-word `TAG` for the batch")
		return func(env *Env, args []string) int {
			if len(args) != 1 {
				return env.usage("seal", "give one PATH inside MOUNT/<workspace>/put/")
			}
			p, err := filepath.Abs(args[0])
			if err != nil {
				return env.fail("seal", err)
			}
			ctx, cancel := interruptible()
			defer cancel()
			st, err := env.Client.Seal(ctx, api.SealRequest{Path: api.Name(p), Tag: *tag})
			if err != nil {
				return env.fail("seal", err)
			}
			fmt.Fprintln(env.Stdout, st.ID)
			return ExitOK
		}
	},
}

var workspaceCommand = Command{
	Name:    "workspace",
	Summary: "create and list workspaces, set quotas and copies",
	Usage:   "create NAME [--quota SIZE] [--owner USER] [--group GROUP] [--copies N] | list [-F text|json] | set-quota NAME SIZE | set-copies NAME N",
	Help: `Creating a workspace, setting quotas and copies is for root. The owner
(manager) may put, rm and undelete; members of the group may list and get.

Copies (1 to 3) is how many tape copies each file of the workspace gets,
each on another cartridge and, where the library has pools, in another
pool; 0 means the daemon's default (--copies, 1 unless configured).
Raising it writes the missing copies of the batches already on tape
(tapefs status shows the workspace until they are written); lowering it
applies to batches written from then on.

Examples:
  tapefs workspace create gws_run3 --quota 50T --owner alice --group run3 --copies 2
  tapefs workspace set-quota gws_run3 80T
  tapefs workspace set-copies gws_run3 2
  tapefs workspace list
  tapefs workspace list -F json
`,
	Words: []string{"create", "list", "set-quota", "set-copies"},
	setup: func(fs *pflag.FlagSet) func(env *Env, args []string) int {
		quota := fs.String("quota", "0", "quota `SIZE` (0 = unlimited; K, M, G, T, P)")
		owner := fs.String("owner", "", "manager `USER` (name or uid; default: you)")
		group := fs.String("group", "", "`GROUP` whose members may list and get (name or gid; default: the owner's group)")
		copies := fs.Int("copies", 0, "tape copies of each file, `N` 1 to 3 (0: the daemon's default)")
		format := formatFlag(fs)
		return func(env *Env, args []string) int {
			if len(args) == 0 {
				return env.usage("workspace", "give create, list, set-quota or set-copies")
			}
			if !validFormat(*format) {
				return env.usage("workspace", "-F %q: use text or json", *format)
			}
			ctx, cancel := interruptible()
			defer cancel()
			switch args[0] {
			case "list":
				return env.lsAs("workspace", "workspace", 0, *format, true)
			case "create":
				if len(args) != 2 {
					return env.usage("workspace", "create NAME")
				}
				q, err := config.ParseSize(*quota)
				if err != nil {
					return env.usage("workspace", "--quota %q: %v", *quota, err)
				}
				uid, gid, err := lookupOwner(*owner, *group)
				if err != nil {
					return env.usage("workspace", "%v", err)
				}
				if *copies < 0 || *copies > 3 {
					return env.usage("workspace", "--copies %d: use 1 to 3 (0: the daemon's default)", *copies)
				}
				if err := env.Client.CreateWorkspace(ctx, api.WorkspaceRequest{Name: args[1], Quota: q, Manager: uid, Group: gid}); err != nil {
					return env.fail("workspace", err)
				}
				if *copies > 0 {
					if _, err := env.Client.SetCopies(ctx, args[1], *copies); err != nil {
						return env.fail("workspace", fmt.Errorf("workspace %s created, but its copies were not set: %w", args[1], err))
					}
				}
				fmt.Fprintf(env.Stdout, "workspace %s created (manager %s, group %s, quota %s)\n", args[1], idName(userName(uid), uid), idName(groupName(gid), gid), quotaText(q))
				return ExitOK
			case "set-copies":
				if len(args) != 3 {
					return env.usage("workspace", "set-copies NAME N")
				}
				n, err := strconv.Atoi(args[2])
				if err != nil || n < 0 || n > 3 {
					return env.usage("workspace", "copies %q: use 1 to 3 (0: the daemon's default)", args[2])
				}
				w, err := env.Client.SetCopies(ctx, args[1], n)
				if err != nil {
					return env.fail("workspace", err)
				}
				fmt.Fprintf(env.Stdout, "copies of %s set to %d", w.Name, w.Copies)
				if w.CopiesMissing > 0 {
					fmt.Fprintf(env.Stdout, "; the missing copies of %d batches are being written", w.CopiesMissing)
				}
				fmt.Fprintln(env.Stdout)
				return ExitOK
			case "set-quota":
				if len(args) != 3 {
					return env.usage("workspace", "set-quota NAME SIZE")
				}
				q, err := config.ParseSize(args[2])
				if err != nil {
					return env.usage("workspace", "quota %q: %v", args[2], err)
				}
				if err := env.Client.SetQuota(ctx, args[1], q); err != nil {
					return env.fail("workspace", err)
				}
				fmt.Fprintf(env.Stdout, "quota of %s set to %s\n", args[1], quotaText(q))
				return ExitOK
			}
			return env.unknownWord("workspace", args[0], []string{"create", "list", "set-quota", "set-copies"}, "workspace create, list, set-quota or set-copies")
		}
	},
}

func quotaText(q int64) string {
	if q == 0 {
		return "unlimited"
	}
	return human.Size(q)
}

// lookupOwner resolves --owner and --group (names or numbers).
func lookupOwner(owner, group string) (uint32, uint32, error) {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if owner != "" {
		if n, err := strconv.ParseUint(owner, 10, 32); err == nil {
			uid = uint32(n)
			if u, err := user.LookupId(owner); err == nil {
				g, _ := strconv.ParseUint(u.Gid, 10, 32)
				gid = uint32(g)
			}
		} else {
			u, err := user.Lookup(owner)
			if err != nil {
				return 0, 0, fmt.Errorf("--owner %q: no such user", owner)
			}
			n, _ := strconv.ParseUint(u.Uid, 10, 32)
			g, _ := strconv.ParseUint(u.Gid, 10, 32)
			uid, gid = uint32(n), uint32(g)
		}
	}
	if group != "" {
		if n, err := strconv.ParseUint(group, 10, 32); err == nil {
			gid = uint32(n)
		} else {
			g, err := user.LookupGroup(group)
			if err != nil {
				return 0, 0, fmt.Errorf("--group %q: no such group", group)
			}
			n, _ := strconv.ParseUint(g.Gid, 10, 32)
			gid = uint32(n)
		}
	}
	return uid, gid, nil
}

var libraryCommand = Command{
	Name:    "library",
	Summary: "drives and cartridges of the tape library; cartridge pools and states; repack",
	Usage:   "status [-F text|json] | set VOLSER [--state STATE] [--pool POOL] | repack VOLSER [--wait]",
	Help: `status lists drives and cartridges: each cartridge's pool and state. The
library says scratch, filling or full; root may set read-only (read, never
written again), disabled (neither read nor written) or lost (gone), and
ok to go back to the library's state. Marking a cartridge disabled or lost
re-creates the copies it held from the other copies (or the cache), as
tapefs status shows until done; a file whose only copy was there cannot
come back from tape.

The copies of a file go to different pools. A new home splits its
cartridges into pool-a and pool-b; 'set --pool' moves a cartridge (root).

LIVE is the share of a cartridge's written bytes that files still refer
to: batches purged after their retention leave dead bytes behind. repack
VOLSER (root) copies the live files of a cartridge to other cartridges of
its pool, in tape order, and then erases it: it becomes scratch again.
Every file stays readable all along, from its old copy until the catalog
has switched to the new one; a repack that is interrupted (even by
kill -9) goes on where it was when the daemon starts again. It needs two
drives, and gives them to recalls and migration whenever those wait. The
daemon also repacks by itself every cartridge whose LIVE falls below
--repack-below (0, the default: never). With --wait the command returns
once the cartridge is scratch.

Examples:
  tapefs library status
  tapefs library status -F json
  tapefs library set TF0003 --state lost
  tapefs library set TF0003 --state ok
  tapefs library set TF0021 --pool pool-b
  tapefs library repack TF0003
  tapefs library repack TF0003 --wait && tapefs library status
`,
	Words: []string{"status", "set", "repack"},
	setup: func(fs *pflag.FlagSet) func(env *Env, args []string) int {
		format := formatFlag(fs)
		state := fs.String("state", "", "with set: `STATE` read-only, disabled, lost, or ok (the library's own)")
		pool := fs.String("pool", "", "with set: the `POOL` the cartridge belongs to")
		wait := fs.Bool("wait", false, "with repack: return once the cartridge is scratch")
		return func(env *Env, args []string) int {
			if len(args) >= 1 && args[0] == "set" {
				return env.librarySet(args[1:], fs, *state, *pool)
			}
			if len(args) == 2 && args[0] == "repack" {
				return repackCartridge(env, args[1], *wait)
			}
			if len(args) != 1 || args[0] != "status" {
				const use = "library status, library set VOLSER --state STATE | --pool POOL, or library repack VOLSER [--wait]"
				if len(args) > 0 {
					return env.unknownWord("library", args[0], []string{"status", "set", "repack"}, use)
				}
				return env.usage("library", use)
			}
			if !validFormat(*format) {
				return env.usage("library", "-F %q: use text or json", *format)
			}
			ctx, cancel := interruptible()
			defer cancel()
			st, err := env.Client.Library(ctx)
			if err != nil {
				return env.fail("library", err)
			}
			if *format == "json" {
				return writeJSONOut(env.Stdout, libraryJSON(st))
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			if len(st.Hosts) > 0 {
				writeHosts(tw, st.Hosts)
			}
			fmt.Fprintln(tw, "DRIVE\tSTATE\tCARTRIDGE\tIN USE\tMOUNTS\tREAD\tWRITTEN\tTAPE TIME")
			for _, d := range st.Drives {
				vol := d.VOLSER
				if vol == "" {
					vol = "-"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%d\t%s\t%s\t%s\n", d.Index, d.State, vol, d.InUse, d.Counters.Mounts,
					human.Size(d.Counters.BytesRead), human.Size(d.Counters.BytesWritten), time.Duration(d.Counters.SimSeconds*float64(time.Second)).Round(time.Second))
			}
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "CARTRIDGE\tPOOL\tSTATE\tFILL\tUSED\tLIVE\tCAPACITY\tTAPE FILES\tDRIVE\tVERIFIED")
			for _, c := range st.Cartridges {
				drive := "-"
				if c.Drive >= 0 {
					drive = strconv.Itoa(c.Drive)
				}
				state := c.State
				if c.Repacking {
					state += " (repacking)"
					if c.RepackWaits != "" {
						state += " (waits: " + c.RepackWaits + ")"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%s\t%.0f%%\t%s\t%d\t%s\t%s\n", c.VOLSER, cmp.Or(c.Pool, "-"), state, 100*float64(c.Used)/float64(max(c.Capacity, 1)),
					human.Size(c.Used), 100*liveShare(c), human.Size(c.Capacity), c.TapeFiles, drive, lastVerified(c))
			}
			tw.Flush()
			// The library as a whole: what df of the mount does not say
			// (it shows the cache disk).
			var used, capacity, dead int64
			scratch := 0
			for _, c := range st.Cartridges {
				used, capacity, dead = used+c.Used, capacity+c.Capacity, dead+c.Dead
				if c.State == "scratch" {
					scratch++
				}
			}
			fmt.Fprintf(env.Stdout, "\nlibrary: %d cartridges, %s used of %s (%.1f%%), %s of it no longer referred to (reclaimed by repack); %d scratch\n",
				len(st.Cartridges), human.Size(used), human.Size(capacity), 100*float64(used)/float64(max(capacity, 1)), human.Size(dead), scratch)
			return ExitOK
		}
	},
}

// librarySet changes a cartridge's state or pool (root).
func (env *Env) librarySet(args []string, fs *pflag.FlagSet, state, pool string) int {
	if len(args) != 1 {
		return env.usage("library", "library set VOLSER --state STATE | --pool POOL")
	}
	var req api.CartridgeRequest
	if fs.Changed("state") {
		switch state {
		case "read-only", "disabled", "lost", "ok":
		default:
			return env.usage("library", "--state %q: use read-only, disabled, lost or ok", state)
		}
		req.State = &state
	}
	if fs.Changed("pool") {
		req.Pool = &pool
	}
	if req.State == nil && req.Pool == nil {
		return env.usage("library", "library set %s: give --state STATE or --pool POOL", args[0])
	}
	ctx, cancel := interruptible()
	defer cancel()
	out, err := env.Client.SetCartridge(ctx, args[0], req)
	if err != nil {
		return env.fail("library", err)
	}
	fmt.Fprintf(env.Stdout, "cartridge %s: pool %s, state %s", out.VOLSER, cmp.Or(out.Pool, "-"), cmp.Or(out.State, "as the library says"))
	if out.Batches > 0 {
		fmt.Fprintf(env.Stdout, "; the copies it held are being re-created for %d batches", out.Batches)
	}
	fmt.Fprintln(env.Stdout)
	return ExitOK
}

var cacheCommand = Command{
	Name:    "cache",
	Summary: "evict batches that are on tape from the disk cache",
	Usage:   "evict [-b ID]",
	Help: `Drops the cached copies of a batch that is on tape (all such batches without
-b, root only). Files being read stay. Reading an evicted file recalls it.

Examples:
  tapefs cache evict -b 507
`,
	Words: []string{"evict"},
	setup: func(fs *pflag.FlagSet) func(env *Env, args []string) int {
		batch := fs.Uint64P("batch", "b", 0, "batch `ID` (default: every batch on tape)")
		return func(env *Env, args []string) int {
			if len(args) != 1 || args[0] != "evict" {
				if len(args) == 1 {
					return env.unknownWord("cache", args[0], []string{"evict"}, "cache evict [-b ID]")
				}
				return env.usage("cache", "cache evict [-b ID]")
			}
			ctx, cancel := interruptible()
			defer cancel()
			freed, err := env.Client.Evict(ctx, *batch)
			if err != nil {
				return env.fail("cache", err)
			}
			fmt.Fprintf(env.Stdout, "%s freed\n", human.Size(freed))
			return ExitOK
		}
	},
}

// idName is "alice (uid 1000)": the name people know, and the number the
// archive keeps.
func idName(name string, id uint32) string {
	n := strconv.FormatUint(uint64(id), 10)
	if name == n {
		return name
	}
	return name + " (" + n + ")"
}

// The library in -F json: the API's library types carry no JSON names of
// their own (they are the dashboard's), so the command line fixes the
// names scripts rely on here.
type libraryOut struct {
	Hosts      []api.Host     `json:"hosts,omitempty"` // several hosts on one catalog
	Drives     []driveOut     `json:"drives"`
	Cartridges []cartridgeOut `json:"cartridges"`
	// The library as a whole.
	Used     int64 `json:"used"`
	Capacity int64 `json:"capacity"`
	Dead     int64 `json:"dead"`
}

// writeHosts is the table of the hosts sharing the catalog: each one's
// state, last heartbeat and drives, and what waits for a host that is
// down. The drives below it are this host's.
func writeHosts(tw *tabwriter.Writer, hosts []api.Host) {
	fmt.Fprintln(tw, "HOST\tSTATE\tHEARTBEAT\tCHANGES\tDRIVES\tWAITING\tROLES\tNOTE")
	for _, h := range hosts {
		id := h.ID
		if h.Self {
			id += " (this)"
		}
		var drives []string
		for _, d := range h.Drives {
			s := fmt.Sprintf("%d:%s", d.Index, d.State)
			if d.VOLSER != "" {
				s += ":" + d.VOLSER
			}
			drives = append(drives, s)
		}
		dl := strings.Join(drives, " ")
		if dl == "" {
			dl = "-"
		}
		note := h.Note
		if note == "" {
			note = "-"
		}
		// Whether the host hears of the others' changes at once (LISTEN
		// up), or polls the catalog meanwhile.
		changes := "listening"
		if !h.Listening {
			changes = "polling"
		}
		if h.State != "up" {
			changes = "-"
		}
		roles := strings.Join(h.Roles, ",")
		if roles == "" {
			roles = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s ago\t%s\t%s\t%d\t%s\t%s\n", id, h.State, time.Duration(h.AgeSeconds*float64(time.Second)).Round(100*time.Millisecond), changes, dl, h.Waiting, roles, note)
	}
	fmt.Fprintln(tw)
}

type driveOut struct {
	Index        int     `json:"index"`
	State        string  `json:"state"`
	VOLSER       string  `json:"volser,omitempty"`
	InUse        bool    `json:"in_use"`
	Mounts       int64   `json:"mounts"`
	BytesRead    int64   `json:"bytes_read"`
	BytesWritten int64   `json:"bytes_written"`
	TapeSeconds  float64 `json:"tape_seconds"`
}

type cartridgeOut struct {
	VOLSER    string  `json:"volser"`
	Pool      string  `json:"pool"`
	State     string  `json:"state"`
	Used      int64   `json:"used"`
	Capacity  int64   `json:"capacity"`
	TapeFiles int     `json:"tape_files"`
	Drive     *int    `json:"drive"` // null: in its slot
	Dead      int64   `json:"dead"`  // bytes no file refers to any more
	Live      float64 `json:"live"`  // share of the written bytes still referred to
	Repacking bool    `json:"repacking"`
	// RepackProgress: the first tape file a repack has not copied yet.
	RepackProgress int `json:"repack_progress,omitempty"`
	Generation     int `json:"generation"` // labels the cartridge had: one more after each repack
}

// liveShare is the share of a cartridge's written bytes that files still
// refer to (1 for an empty one).
func liveShare(c api.Cartridge) float64 {
	if c.Used <= 0 || c.Dead <= 0 {
		return 1
	}
	return max(0, float64(c.Used-c.Dead)/float64(c.Used))
}

// repackCartridge asks for the repack of a cartridge and, with wait,
// follows it until the cartridge is scratch.
func repackCartridge(env *Env, volser string, wait bool) int {
	ctx, cancel := interruptible()
	defer cancel()
	rp, err := env.Client.Repack(ctx, volser)
	if err != nil {
		return env.fail("library", err)
	}
	fmt.Fprintf(env.Stderr, "repack of %s queued (job %d)\n", rp.VOLSER, rp.Job)
	if !wait {
		return ExitOK
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last := -1
	drawn := false
	for {
		st, err := env.Client.Library(ctx)
		if err != nil {
			return env.fail("library", err)
		}
		for _, c := range st.Cartridges {
			if c.VOLSER != volser {
				continue
			}
			if !c.Repacking {
				if drawn {
					fmt.Fprintf(env.Stderr, "\r\x1b[K%s\n", barLine(env.termWidth(), "repack "+volser, 1, "done"))
				}
				fmt.Fprintf(env.Stdout, "%s repacked: %s, label generation %d\n", c.VOLSER, c.State, c.Generation)
				return ExitOK
			}
			// Progress: the tape files of the cartridge copied so far.
			if c.RepackProgress != last {
				last = c.RepackProgress
				rest := fmt.Sprintf("at tape file %d of %d", max(c.RepackProgress, 1), c.TapeFiles)
				if env.TTY {
					frac := 0.0
					if c.TapeFiles > 0 {
						frac = float64(max(c.RepackProgress-1, 0)) / float64(c.TapeFiles)
					}
					fmt.Fprintf(env.Stderr, "\r\x1b[K%s", barLine(env.termWidth(), "repack "+volser, frac, rest))
					drawn = true
				} else {
					fmt.Fprintf(env.Stderr, "repack %s: %s\n", volser, rest)
				}
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(env.Stderr, "tapefs library: stopped waiting; the repack of %s goes on in the daemon\n", volser)
			return ExitFailed
		case <-tick.C:
		}
	}
}

func libraryJSON(st api.LibraryStatus) libraryOut {
	out := libraryOut{Hosts: st.Hosts, Drives: []driveOut{}, Cartridges: []cartridgeOut{}}
	for _, c := range st.Cartridges {
		out.Used, out.Capacity, out.Dead = out.Used+c.Used, out.Capacity+c.Capacity, out.Dead+c.Dead
	}
	for _, d := range st.Drives {
		out.Drives = append(out.Drives, driveOut{Index: d.Index, State: d.State, VOLSER: d.VOLSER, InUse: d.InUse, Mounts: d.Counters.Mounts,
			BytesRead: d.Counters.BytesRead, BytesWritten: d.Counters.BytesWritten, TapeSeconds: d.Counters.SimSeconds})
	}
	for _, c := range st.Cartridges {
		co := cartridgeOut{VOLSER: c.VOLSER, Pool: c.Pool, State: c.State, Used: c.Used, Capacity: c.Capacity, TapeFiles: c.TapeFiles,
			Dead: c.Dead, Live: liveShare(c), Repacking: c.Repacking, RepackProgress: c.RepackProgress, Generation: c.Generation}
		if c.Drive >= 0 {
			d := c.Drive
			co.Drive = &d
		}
		out.Cartridges = append(out.Cartridges, co)
	}
	return out
}

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/tapefs/tapefs/internal/human"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"github.com/tapefs/tapefs/api"
)

var lsCommand = Command{
	Name:    "ls",
	Summary: "list workspaces, batches or files",
	Usage:   "[-H] [-b ID] [-w WS] [-L workspace|batch|file] [-F text|json|md5sum]",
	Help: `Lists holdings without touching tape. The workspace level shows quota and use;
the batch level ID, tag, state, files, bytes, created and synced; the file
level path, size, md5, state and cartridges. -F md5sum prints lines that
'md5sum -c' accepts when run from a restore root (get -r DIR), or from / for
the files in their original place.

Examples:
  tapefs ls -H -L workspace
  tapefs ls -w gws_run3                 # batches
  tapefs ls -b 507 -L file -H
  cd /scratch/restore && tapefs ls -b 507 -F md5sum | md5sum -c
`,
	setup: func(fs *pflag.FlagSet) func(env *Env, args []string) int {
		human := fs.BoolP("human", "H", false, "header line and sizes in KiB, MiB, GiB")
		batch := fs.Uint64P("batch", "b", 0, "only batch `ID` (file level unless -L says otherwise)")
		ws := fs.StringP("workspace", "w", "", "workspace (default from configuration)")
		level := fs.StringP("level", "L", "", "what to list: workspace, batch or file (default [Directory] outputLevel)")
		format := fs.StringP("format", "F", "text", "output format: text, json or md5sum")
		return func(env *Env, args []string) int {
			if len(args) > 0 {
				return env.usage("ls", "unexpected argument %q", args[0])
			}
			if *ws != "" {
				env.Settings.Workspace = *ws
			}
			lv := strings.ToLower(*level)
			if lv == "" {
				lv = env.Settings.OutputLevel
				if *batch != 0 || *format == "md5sum" {
					lv = "file"
				}
			}
			if !validLevel(lv) {
				return env.usage("ls", "-L %q: use workspace, batch or file", *level)
			}
			switch *format {
			case "text", "json", "md5sum":
			default:
				return env.usage("ls", "-F %q: use text, json or md5sum", *format)
			}
			if *format == "md5sum" && lv != "file" {
				return env.usage("ls", "-F md5sum lists files: use -L file")
			}
			return env.ls(lv, *batch, *format, *human)
		}
	},
}

func (env *Env) ls(level string, batch uint64, format string, human bool) int {
	return env.lsAs("ls", level, batch, format, human)
}

// lsAs is ls for a command named cmd in its messages.
func (env *Env) lsAs(cmd, level string, batch uint64, format string, readable bool) int {
	ctx, cancel := interruptible()
	defer cancel()
	size := func(n int64) string {
		if readable {
			return human.Size(n)
		}
		return fmt.Sprint(n)
	}
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch level {
	case "workspace":
		wss, err := env.Client.Workspaces(ctx)
		if err != nil {
			return env.fail(cmd, err)
		}
		if format == "json" {
			return writeJSONOut(env.Stdout, workspacesJSON(wss))
		}
		if readable {
			fmt.Fprintln(tw, "WORKSPACE\tQUOTA\tUSED\tUSE%\tMANAGER\tGROUP\tCOPIES")
		}
		for _, w := range wss {
			quota, pct := "unlimited", "-"
			if w.Quota > 0 {
				quota, pct = size(w.Quota), fmt.Sprintf("%.0f%%", 100*float64(w.Used)/float64(w.Quota))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", w.Name, quota, size(w.Used), pct, userName(w.Manager), groupName(w.Group), copiesNote(w))
		}
	case "batch":
		var bs []api.Batch
		var err error
		if batch != 0 {
			var st api.Batch
			st, err = env.Client.Batch(ctx, batch)
			bs = []api.Batch{st}
		} else {
			bs, err = env.Client.Batches(ctx, api.BatchQuery{Workspace: env.Settings.Workspace})
		}
		if err != nil {
			return env.fail(cmd, err)
		}
		bs = liveOnly(bs, batch != 0)
		if format == "json" {
			return writeJSONOut(env.Stdout, batchesJSON(bs))
		}
		if readable {
			fmt.Fprintln(tw, "BATCH\tTAG\tSTATE\tFILES\tBYTES\tCREATED\tSYNCED\tNOTE")
		}
		for _, b := range bs {
			// A removal in progress is a last column, present only then,
			// so the columns before it keep their places for scripts.
			note := ""
			if b.Removing != "" {
				note = "\t" + removalNote(b)
			}
			// FILES: regular files and symbolic links, directories left
			// out where the daemon counted them apart (else entries).
			files := b.Files
			if b.Kinds != nil {
				files = b.Kinds.Files + b.Kinds.Symlinks
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s%s\n", b.ID, batchLabel(b), b.State, files, size(b.Bytes), when(b.Created), when(b.Synced), note)
		}
		if batch == 0 {
			// Entries of put/ the daemon refused are not batches, but
			// whoever lists the batches is who must hear of them: with
			// -H after the table, otherwise on stderr, so the columns
			// stay what scripts (et_ls.py's among them) read.
			tw.Flush()
			if ents, err := env.Client.PutEntries(ctx, env.Settings.Workspace); err == nil {
				if readable {
					printRefused(env.Stdout, ents)
				} else {
					noteRefused(env.Stderr, ents)
				}
			}
		}
	case "file":
		var ids []uint64
		if batch != 0 {
			ids = []uint64{batch}
		} else {
			bs, err := env.Client.Batches(ctx, api.BatchQuery{Workspace: env.Settings.Workspace})
			if err != nil {
				return env.fail(cmd, err)
			}
			for _, b := range liveOnly(bs, false) {
				ids = append(ids, b.ID)
			}
		}
		var all []api.FileInfo
		for _, id := range ids {
			fs, err := env.Client.AllFiles(ctx, id)
			if err != nil {
				return env.fail(cmd, err)
			}
			// Entries hidden by a removal in progress are still archived
			// (and restored by get): listed, as "hidden".
			all = append(all, fs...)
		}
		sort.SliceStable(all, func(i, j int) bool { return all[i].Path < all[j].Path })
		switch format {
		case "json":
			for i := range all {
				all[i] = withNames(all[i])
			}
			return writeJSONOut(env.Stdout, all)
		case "md5sum":
			for _, f := range all {
				if f.Type == api.TypeFile {
					fmt.Fprintln(env.Stdout, md5sumLine(f.MD5, f.Path))
				}
			}
			return ExitOK
		}
		if readable {
			fmt.Fprintln(tw, "PATH\tSIZE\tMD5\tSTATE\tBATCH\tTAPES")
		}
		for _, f := range all {
			md5, st := f.MD5, string(f.State)
			if f.Type != api.TypeFile {
				md5, st = "-", f.Type.String()
			}
			if f.Removed {
				st = "hidden"
			}
			var tapes []string
			for _, c := range f.Copies {
				tapes = append(tapes, c.VOLSER)
			}
			if len(tapes) == 0 {
				tapes = []string{"-"}
			}
			// Quoted as ls quotes names: a tab or newline in a name would
			// break the columns, other bytes the terminal.
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", shellQuote("/"+f.Path), size(f.Size), md5, st, f.Batch, strings.Join(tapes, ","))
		}
	}
	return ExitOK
}

// batchLabel is what the TAG column shows: the tag, else the name of the
// put/ entry the batch was sealed from (as the status page shows it), else
// "-" (a tapefs put without -t); quoted as ls quotes names.
func batchLabel(b api.Batch) string {
	switch {
	case b.Tag != "":
		return shellQuote(b.Tag)
	case b.Entry != "":
		return shellQuote(string(b.Entry))
	}
	return "-"
}

// md5sumLine writes one line of md5sum's format, with the path relative
// and, as GNU md5sum (coreutils 9) does, a leading backslash when the name
// has a backslash, a newline or a carriage return escaped in it. Every
// other byte is written as it is: md5sum -c reads the name back exact.
func md5sumLine(sum, p string) string {
	if strings.ContainsAny(p, "\\\n\r") {
		return "\\" + sum + "  " + md5sumEscaper.Replace(p)
	}
	return sum + "  " + p
}

var md5sumEscaper = strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r")

// removalNote says that a removal inside the batch is in progress and
// what becomes of it.
func removalNote(b api.Batch) string {
	return fmt.Sprintf("%s: back at %s unless the batch directory is removed (tapefs undelete -b %d: back now)",
		b.Removing, b.RemovalUndo.Local().Format("15:04:05"), b.ID)
}

// liveOnly hides deleted batches unless one was asked for by ID.
func liveOnly(bs []api.Batch, keep bool) []api.Batch {
	if keep {
		return bs
	}
	out := bs[:0]
	for _, b := range bs {
		if b.State != api.Deleted {
			out = append(out, b)
		}
	}
	return out
}

func writeJSONOut(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return ExitFailed
	}
	return ExitOK
}

var statusCommand = Command{
	Name:    "status",
	Summary: "state and progress of a batch, or of the workspace's recent batches",
	Usage:   "[-b ID] [-w WS] [--wait] [-F text|json]",
	Help: `Shows state and progress (bytes on tape / bytes), and "removal in progress
(N entries hidden)" for a batch whose entries an rm inside it hid (undo:
'tapefs undelete -b ID'). For a batch not on tape yet, REASON says what it
waits for (its workspace's flush, a drive) or how fast a drive writes it.
Without -b, entries of put/ refused at sealing (quota, file too big) are
listed after the batches. With --wait, waits until the batch is on tape,
showing its progress on stderr (a bar on a terminal, plain lines
otherwise): exit 0 on CACHED_SYNCED or SYNCED, 1 on FAILED.

Examples:
  tapefs status -b 507
  tapefs status -b 507 --wait && rm -r /data/run1234
  tapefs status -w gws_run3
  tapefs status -b 507 -F json | jq -r '.[0].state'
`,
	setup: func(fs *pflag.FlagSet) func(env *Env, args []string) int {
		batch := fs.Uint64P("batch", "b", 0, "batch `ID`")
		ws := fs.StringP("workspace", "w", "", "workspace (without -b)")
		wait := fs.Bool("wait", false, "wait until the batch is on tape or FAILED")
		format := formatFlag(fs)
		return func(env *Env, args []string) int {
			if len(args) > 0 {
				return env.usage("status", "unexpected argument %q", args[0])
			}
			if !validFormat(*format) {
				return env.usage("status", "-F %q: use text or json", *format)
			}
			if *ws != "" {
				env.Settings.Workspace = *ws
			}
			if *wait && *batch == 0 {
				return env.usage("status", "--wait needs -b ID")
			}
			ctx, cancel := interruptible()
			defer cancel()
			if *wait {
				code := env.waitBatch(ctx, *batch)
				if st, err := env.Client.Batch(ctx, *batch); err == nil {
					printStatus(env.Stdout, *format, []api.Batch{st}, env.kinds(ctx, []api.Batch{st}))
				}
				return code
			}
			var bs []api.Batch
			var err error
			if *batch != 0 {
				var st api.Batch
				st, err = env.Client.Batch(ctx, *batch)
				bs = []api.Batch{st}
			} else {
				bs, err = env.Client.Batches(ctx, api.BatchQuery{Workspace: env.Settings.Workspace, Newest: true, Limit: 20})
			}
			if err != nil {
				return env.fail("status", err)
			}
			code := printStatus(env.Stdout, *format, bs, env.kinds(ctx, bs))
			if *format == "text" && *batch == 0 {
				env.printShortCopies(ctx)
				if ents, err := env.Client.PutEntries(ctx, env.Settings.Workspace); err == nil {
					printRefused(env.Stdout, ents)
				}
			}
			return code
		}
	},
}

// printShortCopies names the workspaces with batches that have fewer
// copies than their policy (a raised policy, or a cartridge lost), until
// the copies are written.
func (env *Env) printShortCopies(ctx context.Context) {
	wss, err := env.Client.Workspaces(ctx)
	if err != nil {
		return
	}
	for _, w := range wss {
		if w.CopiesMissing > 0 && (env.Settings.Workspace == "" || env.Settings.Workspace == w.Name) {
			fmt.Fprintf(env.Stdout, "workspace %s: %d batches have fewer than %d copies; the missing copies are being written\n", w.Name, w.CopiesMissing, w.Copies)
		}
	}
}

// printRefused lists the entries of put/ the daemon will not seal as
// they stand (rejected, write-failed), each with its reason, size, since
// when and what to do; nothing when there are none.
func printRefused(w io.Writer, ents []api.PutEntry) {
	first := true
	for _, p := range ents {
		if !p.Refused() {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nNot archived: entries of put/ refused at sealing (they stay in put/):")
			first = false
		}
		fmt.Fprintf(w, "  %s  %s/put/%s  %s  since %s\n    %s\n    %s\n", strings.ToUpper(p.State), p.Workspace, shellQuote(string(p.Name)),
			human.Size(p.Bytes), p.Since.Local().Format("2006-01-02 15:04:05"), p.Reason, p.Hint)
	}
}

// noteRefused says the same in one line per entry, for stderr.
func noteRefused(w io.Writer, ents []api.PutEntry) {
	for _, p := range ents {
		if p.Refused() {
			fmt.Fprintf(w, "tapefs: %s/put/%s (%s) is %s, not archived: %s\n", p.Workspace, shellQuote(string(p.Name)), human.Size(p.Bytes), p.State, p.Reason)
		}
	}
}

// copiesNote is a workspace's copies policy, and how many of its batches
// are still short of it.
func copiesNote(w api.Workspace) string {
	if w.CopiesMissing > 0 {
		return fmt.Sprintf("%d (%d batches short)", w.Copies, w.CopiesMissing)
	}
	return fmt.Sprint(w.Copies)
}

// formatFlag adds -F text|json to a command.
func formatFlag(fs *pflag.FlagSet) *string {
	return fs.StringP("format", "F", "text", "output `FORMAT`: text, or json for scripts")
}

func validFormat(f string) bool { return f == "text" || f == "json" }

// maxCounted is the most entries a batch may have for status to list it
// to count its files and directories apart: beyond, the listing would
// cost more than the answer is worth, and FILES shows entries.
const maxCounted = 200_000

// kinds counts the files and directories of each batch apart: as the
// daemon counted them at registration, or, for a batch registered before
// it did, by listing it (nil for such a batch that is too large, or that
// cannot be listed now).
func (env *Env) kinds(ctx context.Context, bs []api.Batch) []*api.Kinds {
	out := make([]*api.Kinds, len(bs))
	for i, b := range bs {
		if b.Kinds != nil {
			out[i] = b.Kinds
			continue
		}
		if b.Files > maxCounted || b.Files == 0 {
			continue
		}
		fs, err := env.Client.AllFiles(ctx, b.ID)
		if err != nil {
			continue
		}
		k := &api.Kinds{}
		for _, f := range fs {
			switch f.Type {
			case api.TypeFile:
				k.Files++
			case api.TypeDir:
				k.Dirs++
			case api.TypeSymlink:
				k.Symlinks++
			}
		}
		out[i] = k
	}
	return out
}

func printStatus(w io.Writer, format string, bs []api.Batch, kinds []*api.Kinds) int {
	if format == "json" {
		out := batchesJSON(bs)
		for i := range out {
			if i < len(kinds) {
				out[i].Batch.Kinds = kinds[i]
			}
		}
		return writeJSONOut(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BATCH\tWORKSPACE\tSTATE\tPROGRESS\tFILES\tDIRS\tBYTES\tREASON")
	for idx, b := range bs {
		reason := b.Reason
		if b.State != api.Failed {
			reason = ""
		}
		if b.State == api.Deleted {
			reason = "deleted " + b.Deleted.Local().Format("2006-01-02 15:04")
		}
		if b.Migration != nil {
			// What a batch not on tape yet waits for, or how fast it is
			// being written (the daemon's words, as on the page).
			reason = strings.TrimPrefix(reason+"; "+b.Migration.Note, "; ")
		}
		if b.Removing != "" {
			reason = strings.TrimPrefix(reason+"; "+removalNote(b), "; ")
		}
		if b.CopiesMissing {
			reason = strings.TrimPrefix(reason+fmt.Sprintf("; fewer than %d copies: the missing ones are being written", b.Copies), "; ")
		}
		// Regular files and symbolic links under FILES, directories
		// apart; "-" when they were not counted (FILES is then entries).
		files, dirs := fmt.Sprint(b.Files), "-"
		if idx < len(kinds) && kinds[idx] != nil {
			k := kinds[idx]
			files, dirs = fmt.Sprint(k.Files+k.Symlinks), fmt.Sprint(k.Dirs)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.0f%%\t%s\t%s\t%s\t%s\n", b.ID, b.Workspace, b.State, math.Floor(100*b.Progress+1e-9), files, dirs, human.Size(b.Bytes), reason)
	}
	tw.Flush()
	for _, b := range bs {
		if r := b.Recall; r != nil {
			fmt.Fprintln(w, recallLine(b.ID, r))
		}
	}
	return ExitOK
}

// recallLine tells what of a batch is queued for recall and when it is
// expected: "batch 7: 12 files (24.0 MiB) queued for recall; the first
// expected in 37s, all in 1m43s".
func recallLine(id uint64, r *api.BatchRecall) string {
	s := fmt.Sprintf("batch %d: %d file(s) (%s) queued for recall", id, r.Files, human.Size(r.Bytes))
	if r.Files > r.Held {
		s += fmt.Sprintf("; the first expected in %s, all in %s", etaText(r.FirstSeconds), etaText(r.ETASeconds))
	}
	if r.Held > 0 {
		s += fmt.Sprintf("; %d held until files recalled earlier are read (--recall-workspace-bytes)", r.Held)
	}
	return s
}

// etaText is an estimate in whole seconds, as a duration.
func etaText(secs float64) string {
	return (time.Duration(math.Ceil(secs)) * time.Second).String()
}

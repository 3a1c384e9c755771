package server

import (
	"math"
	"time"

	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/archive"
)

// Conversions from the engine's views to the API's wire types.

func wireWorkspace(w archive.Workspace) api.Workspace {
	return api.Workspace{Name: w.Name, Quota: w.Quota, Manager: w.Manager, Group: w.Group, Used: w.Used, Created: w.Created,
		Copies: w.Copies, CopiesMissing: w.CopiesMissing}
}

func wireBatch(b archive.Batch) api.Batch {
	out := api.Batch{ID: b.ID, Workspace: b.Workspace, Tag: b.Tag, Entry: api.Name(b.Entry), Owner: b.Owner, State: api.State(b.State),
		Created: b.Created, Sealed: b.Sealed, Synced: b.Synced, Deleted: b.Deleted, PurgeAfter: b.PurgeAfter,
		Prior: api.State(b.Prior), Files: b.Files, Bytes: b.Bytes, OnTape: b.OnTape, Reason: b.Reason,
		Attempts: b.Attempts, Progress: b.Progress, Copies: b.Copies, CopiesMissing: b.CopiesMissing}
	if b.Kinds {
		out.Kinds = &api.Kinds{Files: b.Files - b.Dirs - b.Symlinks, Dirs: b.Dirs, Symlinks: b.Symlinks}
	}
	if m := b.Migration; m != nil {
		out.Migration = &api.Migration{Phase: m.Phase, Note: m.Note, StartsAt: m.StartsAt, Ahead: m.Ahead, Drive: m.Drive, VOLSER: m.VOLSER,
			Written: m.Written, Files: m.Files, FilesAll: m.FilesAll, Rate: m.Rate, ETA: m.ETA}
	}
	if b.Removing != "" {
		out.Removing, out.RemovalUndo = b.Removing, b.RemovalUndo
		out.Removal = &api.Removal{Hidden: b.Removal.Hidden, Started: b.Removal.Started, Last: b.Removal.Last}
	}
	if r := b.Recall; r != nil {
		out.Recall = &api.BatchRecall{Files: r.Files, Bytes: r.Bytes, Held: r.Held,
			FirstSeconds: secondsLeft(r.First, r.At), ETASeconds: secondsLeft(r.ETA, r.At)}
	}
	return out
}

func wireFile(f archive.File) api.FileInfo {
	out := api.FileInfo{ID: f.ID, Batch: f.Batch, Parent: f.Parent, Name: f.Name, Path: f.Path, Type: api.FileType(f.Type),
		Mode: f.Mode, UID: f.UID, GID: f.GID, Mtime: f.Mtime, Size: f.Size, MD5: f.MD5, CRC32C: f.CRC32C, Target: f.Target,
		Link: f.Link, Nlink: f.Nlink, Removed: f.Removed, State: string(f.State)}
	for _, c := range f.Copies {
		out.Copies = append(out.Copies, api.Copy{VOLSER: c.VOLSER, TapeFile: c.TapeFile, Offset: c.Offset, Length: c.Length})
	}
	if out.State == "" {
		out.State = string(archive.Online)
	}
	if r := f.Recall; r != nil {
		out.Recall = &api.FileRecall{Position: r.Position, Of: r.Of, Held: r.Held}
		if !r.Held {
			s := secondsLeft(r.ETA, r.At)
			out.Recall.ETASeconds = &s
		}
	}
	return out
}

func wireEvent(ev archive.Event) api.Event {
	return api.Event{Seq: ev.Seq, Time: ev.Time, Workspace: ev.Workspace, Batch: ev.Batch, VOLSER: ev.VOLSER,
		Kind: ev.Kind, State: api.State(ev.State), Message: ev.Message}
}

func wireCounters(c archive.TapeCounters) api.Counters {
	return api.Counters{Mounts: c.Mounts, Unmounts: c.Unmounts, Locates: c.Locates, BytesRead: c.BytesRead,
		BytesWritten: c.BytesWritten, Filemarks: c.Filemarks, SimSeconds: c.SimSeconds}
}

// WireLibrary is the library as the API sends it.
func WireLibrary(l archive.Library) api.LibraryStatus {
	out := api.LibraryStatus{Drives: []api.Drive{}, Cartridges: []api.Cartridge{}, Counters: wireCounters(l.Counters)}
	for _, d := range l.Drives {
		out.Drives = append(out.Drives, api.Drive{Index: d.Index, State: string(d.State), VOLSER: d.VOLSER, InUse: d.InUse, Counters: wireCounters(d.Counters)})
	}
	for _, c := range l.Cartridges {
		wc := api.Cartridge{VOLSER: c.VOLSER, Capacity: c.Capacity, Used: c.Used, TapeFiles: c.TapeFiles, State: string(c.State), Drive: c.Drive,
			Dead: l.Dead[c.VOLSER], Generation: c.Generation}
		if a, ok := l.Admin[c.VOLSER]; ok {
			wc.Pool = a.Pool
			if a.Admin != "" {
				wc.State = a.Admin
			}
		}
		if rp, ok := l.Repacking[c.VOLSER]; ok {
			wc.Repacking, wc.RepackProgress, wc.RepackWaits = true, rp.Progress, rp.Waits
		}
		if at, ok := l.Verified[c.VOLSER]; ok {
			wc.LastVerified, wc.VerifyDamaged = &at, l.VerifyDamaged[c.VOLSER]
		}
		out.Cartridges = append(out.Cartridges, wc)
	}
	for _, h := range l.Hosts {
		wh := api.Host{ID: h.ID, Self: h.Self, State: h.State, Heartbeat: h.Heartbeat, AgeSeconds: h.Age.Seconds(),
			Waiting: h.Waiting, CacheReachable: h.CacheReachable, Listening: h.Listening, Roles: h.Roles, Note: h.Note()}
		for _, d := range h.Drives {
			wh.Drives = append(wh.Drives, api.HostDrive{Index: d.Index, State: d.State, VOLSER: d.VOLSER})
		}
		out.Hosts = append(out.Hosts, wh)
	}
	return out
}

// secondsLeft is what is left of an estimate made at at, in seconds
// (tenths), never negative.
func secondsLeft(eta time.Duration, at time.Time) float64 {
	return math.Ceil(max(0, (eta-time.Since(at)).Seconds())*10) / 10
}

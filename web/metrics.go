package web

import (
	"github.com/tapefs/tapefs/archive"
	"net/http"
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The metrics name every workspace: they are the operator's, served to
// root on loopback and to requests carrying the token (a scraper running
// as another user is given the token).
func (s *Server) metricsHandler() http.Handler {
	h := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		// One scrape at a time: a second waits rather than counting too.
		MaxRequestsInFlight: 1,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := s.caller(r); !c.IsRoot() && !c.Unknown {
			http.Error(w, "the metrics name every workspace: they are served to root, or with --http-token to requests that carry it", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("tapefs_"+name, help, labels, nil)
}

// The metrics, all read at scrape time from the engine, its cache and
// library, and the cached aggregate of batches.
var (
	mBatches        = desc("batches", "Batches by workspace and state.", "workspace", "state")
	mBatchBytes     = desc("batch_bytes", "Bytes of regular files of batches by workspace and state.", "workspace", "state")
	mWSUsed         = desc("workspace_used_bytes", "Bytes charged to the workspace (live and soft-deleted batches).", "workspace")
	mWSQuota        = desc("workspace_quota_bytes", "Quota of the workspace in bytes (0: unlimited).", "workspace")
	mEvents         = desc("events_total", "Events recorded in the catalog's event log.")
	mEntriesPending = desc("put_entries_pending", "Entries of put/ being written or waiting to be sealed.")
	mEntriesRefused = desc("put_entries_refused", "Entries of put/ refused at sealing (rejected, write-failed): they stay in put/ until someone acts.")

	mCacheUsed      = desc("cache_used_bytes", "Bytes used in the disk cache.")
	mCacheLimit     = desc("cache_limit_bytes", "Size limit of the disk cache.")
	mCacheUnsynced  = desc("cache_unsynced_bytes", "Cached bytes not yet on tape (never evicted).")
	mCacheObjects   = desc("cache_objects", "Objects in the disk cache.")
	mCacheEvictions = desc("cache_evictions_total", "Objects evicted from the cache.")
	mCacheEvicted   = desc("cache_evicted_bytes_total", "Bytes evicted from the cache.")

	mRecallQueue   = desc("recall_queue_length", "Recall requests not finished.")
	mRecallLatency = desc("recall_latency_seconds", "Time from a recall request to its file staged in the cache.")
	mRecalledBytes = desc("recalled_bytes_total", "Bytes recalled from tape into the cache.")
	mRecalledFiles = desc("recalled_files_total", "Files recalled from tape into the cache.")
	mStagedAhead   = desc("recall_staged_ahead_files_total", "Files staged ahead of a traversal (cp -r, xargs -P cat) before they were read.")
	mRecallPasses  = desc("recall_passes_total", "Cartridge passes of the recall scheduler (each at most one mount).")
	mBackward      = desc("recall_backward_locates_total", "Recalls that lay behind the head within a cartridge pass.")
	mMigratedBytes = desc("migrated_bytes_total", "Bytes migrated to tape.")
	mMigratedFiles = desc("migrated_files_total", "Files migrated to tape.")

	mDriveBusy     = desc("drive_busy", "1 while the drive is mounting, locating, reading, writing or unloading, or held.", "drive")
	mDriveState    = desc("drive_state", "1 for the drive's current state.", "drive", "state")
	mDriveBusySecs = desc("drive_busy_seconds_total", "Simulated seconds the drive has spent working (robot, load, locate, stream, filemark).", "drive")
	mDriveBytes    = desc("drive_bytes_total", "Bytes the drive has moved.", "drive", "direction")

	mMounts     = desc("tape_mounts_total", "Cartridge mounts.")
	mUnmounts   = desc("tape_unmounts_total", "Cartridge unmounts.")
	mLocates    = desc("tape_locates_total", "Locates (positioning) on tape.")
	mFilemarks  = desc("tape_filemarks_total", "Filemarks written (flushed tape files).")
	mReadBytes  = desc("tape_read_bytes_total", "Bytes read from tape.")
	mWriteBytes = desc("tape_written_bytes_total", "Bytes written to tape.")
	mSimSeconds = desc("tape_simulated_seconds_total", "Simulated seconds of the library's timing model.")

	mCartridges    = desc("cartridges", "Cartridges by state.", "state")
	mLibCapacity   = desc("library_capacity_bytes", "Capacity of all cartridges.")
	mLibUsed       = desc("library_used_bytes", "Bytes written on all cartridges.")
	mFUSEOps       = desc("fuse_operations_total", "FUSE operations served, by operation.", "op")
	mLastVerified  = desc("cartridge_last_verified_seconds", "Seconds since every copy on the cartridge was last read back (absent: never).", "volser")
	mVerifyFailed  = desc("tape_verify_failures_total", "Copies on tape found damaged by verification since start.")
	mDeadBytes     = desc("cartridge_dead_bytes", "Bytes on the cartridge no file refers to any more (purged batches, replaced copies): what a repack gets back.", "volser")
	mRepacking     = desc("cartridges_repacking", "Cartridges with a repack queued or running.")
	allDriveStates = []archive.DriveState{archive.DriveEmpty, archive.DriveMounting, archive.DriveIdle, archive.DriveReading, archive.DriveWriting, archive.DriveLocating, archive.DriveUnloading}
	allCartStates  = []archive.CartridgeState{archive.CartridgeScratch, archive.CartridgeFilling, archive.CartridgeFull, archive.CartridgeError}
)

// collector produces the tapefs_* metrics at each scrape.
type collector struct{ s *Server }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		mBatches, mBatchBytes, mWSUsed, mWSQuota, mEvents, mEntriesPending, mEntriesRefused,
		mCacheUsed, mCacheLimit, mCacheUnsynced, mCacheObjects, mCacheEvictions, mCacheEvicted,
		mRecallQueue, mRecallLatency, mRecalledBytes, mRecalledFiles, mStagedAhead, mRecallPasses, mBackward, mMigratedBytes, mMigratedFiles,
		mDriveBusy, mDriveState, mDriveBusySecs, mDriveBytes,
		mMounts, mUnmounts, mLocates, mFilemarks, mReadBytes, mWriteBytes, mSimSeconds,
		mCartridges, mLibCapacity, mLibUsed, mFUSEOps, mLastVerified, mVerifyFailed, mDeadBytes, mRepacking,
	} {
		ch <- d
	}
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	e := s.e

	// Batches: every workspace × every state, zeros included, so that a
	// series does not vanish (an alert on FAILED > 0 needs FAILED = 0).
	if agg, err := s.agg.get(); err != nil {
		ch <- prometheus.NewInvalidMetric(mBatches, err)
	} else {
		for _, ws := range agg.workspaces() {
			for _, st := range states {
				t := agg.byWS[ws][st]
				ch <- gauge(mBatches, float64(t.Batches), ws, string(st))
				ch <- gauge(mBatchBytes, float64(t.Bytes), ws, string(st))
			}
		}
	}
	var wss []archive.Workspace
	var last uint64
	if err := e.Read(archive.Anonymous(), func(tx archive.Snapshot) error {
		var err error
		if wss, err = tx.Workspaces(); err != nil {
			return err
		}
		last, err = tx.LastEvent()
		return err
	}); err != nil {
		ch <- prometheus.NewInvalidMetric(mWSUsed, err)
	} else {
		for _, w := range wss {
			ch <- gauge(mWSUsed, float64(w.Used), w.Name)
			ch <- gauge(mWSQuota, float64(w.Quota), w.Name)
		}
		ch <- counter(mEvents, float64(last))
	}

	st := e.Stats()
	ch <- gauge(mEntriesPending, float64(st.EntriesPending))
	ch <- gauge(mEntriesRefused, float64(st.EntriesRefused))
	ch <- gauge(mRecallQueue, float64(st.RecallQueue))
	h := st.RecallLatency
	buckets := make(map[float64]uint64, len(h.Buckets))
	for i, b := range h.Buckets {
		buckets[b] = h.Counts[i] // cumulative already
	}
	ch <- prometheus.MustNewConstHistogram(mRecallLatency, h.Count, h.Sum, buckets)
	ch <- counter(mRecalledBytes, float64(st.RecalledBytes))
	ch <- counter(mRecalledFiles, float64(st.RecalledFiles))
	ch <- counter(mStagedAhead, float64(st.StagedAheadFiles))
	ch <- counter(mRecallPasses, float64(st.RecallPasses))
	ch <- counter(mBackward, float64(st.BackwardLocates))
	ch <- counter(mMigratedBytes, float64(st.MigratedBytes))
	ch <- counter(mMigratedFiles, float64(st.MigratedFiles))

	cs := e.CacheStats()
	ch <- gauge(mCacheUsed, float64(cs.Used))
	ch <- gauge(mCacheLimit, float64(cs.Limit))
	ch <- gauge(mCacheUnsynced, float64(cs.Unsynced))
	ch <- gauge(mCacheObjects, float64(cs.Objects))
	ch <- counter(mCacheEvictions, float64(cs.Evictions))
	ch <- counter(mCacheEvicted, float64(cs.EvictedBytes))

	lib := e.Library()
	for _, d := range lib.Drives {
		idx := strconv.Itoa(d.Index)
		busy := 0.0
		if driveBusy(d) {
			busy = 1
		}
		ch <- gauge(mDriveBusy, busy, idx)
		for _, ds := range allDriveStates {
			v := 0.0
			if d.State == ds {
				v = 1
			}
			ch <- gauge(mDriveState, v, idx, string(ds))
		}
		ch <- counter(mDriveBusySecs, d.Counters.SimSeconds, idx)
		ch <- counter(mDriveBytes, float64(d.Counters.BytesRead), idx, "read")
		ch <- counter(mDriveBytes, float64(d.Counters.BytesWritten), idx, "write")
	}
	lc := lib.Counters
	ch <- counter(mMounts, float64(lc.Mounts))
	ch <- counter(mUnmounts, float64(lc.Unmounts))
	ch <- counter(mLocates, float64(lc.Locates))
	ch <- counter(mFilemarks, float64(lc.Filemarks))
	ch <- counter(mReadBytes, float64(lc.BytesRead))
	ch <- counter(mWriteBytes, float64(lc.BytesWritten))
	ch <- counter(mSimSeconds, lc.SimSeconds)

	byState := map[archive.CartridgeState]int{}
	var capacity, used int64
	for _, ct := range lib.Cartridges {
		byState[ct.State]++
		capacity += ct.Capacity
		used += ct.Used
	}
	for _, cst := range allCartStates {
		ch <- gauge(mCartridges, float64(byState[cst]), string(cst))
		delete(byState, cst)
	}
	for cst, n := range byState { // a state this code does not know yet
		ch <- gauge(mCartridges, float64(n), string(cst))
	}
	ch <- gauge(mLibCapacity, float64(capacity))
	ch <- gauge(mLibUsed, float64(used))
	for _, ct := range lib.Cartridges {
		if at, ok := lib.Verified[ct.VOLSER]; ok {
			ch <- gauge(mLastVerified, s.now().Sub(at).Seconds(), ct.VOLSER)
		}
	}
	ch <- counter(mVerifyFailed, float64(lib.VerifyFailures))
	for _, ct := range lib.Cartridges {
		if dead := lib.Dead[ct.VOLSER]; dead > 0 {
			ch <- gauge(mDeadBytes, float64(dead), ct.VOLSER)
		}
	}
	ch <- gauge(mRepacking, float64(len(lib.Repacking)))

	if s.opts.FUSEOps != nil {
		ops := s.opts.FUSEOps()
		names := make([]string, 0, len(ops))
		for op := range ops {
			names = append(names, op)
		}
		sort.Strings(names)
		for _, op := range names {
			ch <- counter(mFUSEOps, float64(ops[op]), op)
		}
	}
}

package web

import (
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

func TestMetrics(t *testing.T) {
	te := newTestEnv(t, Options{FUSEOps: func() map[string]uint64 { return map[string]uint64{"lookup": 7, "read": 3} }})
	b := te.put("gws", "run1", "", map[string]string{"a": "hello", "b": "world"})
	te.wait(b.ID)
	if _, err := te.e.EvictBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	// A recall, so the latency histogram has an observation.
	files, err := te.fileIDs(b.ID)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := te.e.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if _, err := rd.ReadAt(t.Context(), buf, 0); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Fatal(err)
	}
	rd.Close()
	// The read returns once its bytes are in; the recall is counted when
	// the whole file is staged and checked.
	deadline := time.Now().Add(10 * time.Second)
	for te.e.Stats().RecalledFiles == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the recall is not counted")
		}
		time.Sleep(5 * time.Millisecond)
	}

	body := te.mustGet("/metrics")
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, body)
	}
	want := map[string]dto.MetricType{
		"tapefs_batches":                         dto.MetricType_GAUGE,
		"tapefs_batch_bytes":                     dto.MetricType_GAUGE,
		"tapefs_workspace_used_bytes":            dto.MetricType_GAUGE,
		"tapefs_workspace_quota_bytes":           dto.MetricType_GAUGE,
		"tapefs_cache_used_bytes":                dto.MetricType_GAUGE,
		"tapefs_cache_limit_bytes":               dto.MetricType_GAUGE,
		"tapefs_cache_unsynced_bytes":            dto.MetricType_GAUGE,
		"tapefs_recall_queue_length":             dto.MetricType_GAUGE,
		"tapefs_recall_latency_seconds":          dto.MetricType_HISTOGRAM,
		"tapefs_migrated_bytes_total":            dto.MetricType_COUNTER,
		"tapefs_migrated_files_total":            dto.MetricType_COUNTER,
		"tapefs_recalled_bytes_total":            dto.MetricType_COUNTER,
		"tapefs_recall_staged_ahead_files_total": dto.MetricType_COUNTER,
		"tapefs_recall_passes_total":             dto.MetricType_COUNTER,
		"tapefs_recall_backward_locates_total":   dto.MetricType_COUNTER,
		"tapefs_drive_busy":                      dto.MetricType_GAUGE,
		"tapefs_drive_state":                     dto.MetricType_GAUGE,
		"tapefs_drive_busy_seconds_total":        dto.MetricType_COUNTER,
		"tapefs_tape_mounts_total":               dto.MetricType_COUNTER,
		"tapefs_tape_unmounts_total":             dto.MetricType_COUNTER,
		"tapefs_tape_locates_total":              dto.MetricType_COUNTER,
		"tapefs_tape_read_bytes_total":           dto.MetricType_COUNTER,
		"tapefs_tape_written_bytes_total":        dto.MetricType_COUNTER,
		"tapefs_tape_simulated_seconds_total":    dto.MetricType_COUNTER,
		"tapefs_cartridges":                      dto.MetricType_GAUGE,
		"tapefs_fuse_operations_total":           dto.MetricType_COUNTER,
		"tapefs_put_entries_pending":             dto.MetricType_GAUGE,
		"tapefs_events_total":                    dto.MetricType_COUNTER,
	}
	for name, typ := range want {
		f := fams[name]
		if f == nil {
			t.Errorf("no metric %s", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		}
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			return -1
		}
	next:
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		return -1
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tapefs_batches", map[string]string{"workspace": "gws", "state": "SYNCED"}, 0}, // recalled: CACHED_SYNCED again or still SYNCED
		{"tapefs_batch_bytes", map[string]string{"workspace": "gws", "state": "FAILED"}, 0},
		{"tapefs_batches", map[string]string{"workspace": "gws", "state": "FAILED"}, 0},
		{"tapefs_tape_mounts_total", nil, 1},
		{"tapefs_recall_latency_seconds", nil, 1},
		{"tapefs_fuse_operations_total", map[string]string{"op": "lookup"}, 7},
		{"tapefs_workspace_quota_bytes", map[string]string{"workspace": "gws"}, 1 << 30},
		{"tapefs_cache_limit_bytes", nil, 10 << 30},
	}
	for _, c := range checks {
		got := value(c.name, c.labels)
		if c.name == "tapefs_batches" && c.labels["state"] == "SYNCED" {
			// Either SYNCED (evicted) or CACHED_SYNCED (recalled back):
			// one batch of gws in those two states together.
			both := value(c.name, c.labels) + value(c.name, map[string]string{"workspace": "gws", "state": "CACHED_SYNCED"})
			if both != 1 {
				t.Errorf("gws batches SYNCED + CACHED_SYNCED = %v, want 1", both)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if value("tapefs_batch_bytes", map[string]string{"workspace": "gws", "state": "SYNCED"})+
		value("tapefs_batch_bytes", map[string]string{"workspace": "gws", "state": "CACHED_SYNCED"}) != 10 {
		t.Error("tapefs_batch_bytes of gws is not its 10 bytes")
	}
	if value("tapefs_migrated_bytes_total", nil) < 10 || value("tapefs_migrated_files_total", nil) < 2 {
		t.Error("the migration of 2 files of 10 bytes is not counted")
	}
	if value("tapefs_tape_simulated_seconds_total", nil) <= 0 {
		t.Error("no simulated seconds")
	}
}

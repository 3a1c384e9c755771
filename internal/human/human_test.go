package human

import (
	"math"
	"testing"
	"time"
)

func TestSize(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{12 << 20, "12.0 MiB"},
		{300 << 20, "300.0 MiB"},
		{3 << 20, "3.0 MiB"},
		{10<<20 - 1, "10.0 MiB"},
		{1<<20 - 1, "1.0 MiB"}, // not "1024.0 KiB"
		{3 << 30, "3.0 GiB"},
		{50 << 40, "50.0 TiB"},
		{math.MaxInt64, "8.0 EiB"},
		{-2048, "-2.0 KiB"},
	} {
		if got := Size(c.n); got != c.want {
			t.Errorf("Size(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestRate(t *testing.T) {
	for _, c := range []struct {
		bps  float64
		want string
	}{
		{0, "-"},
		{-1, "-"},
		{math.NaN(), "-"},
		{math.Inf(1), "-"},
		{18.7 * (1 << 20), "18.7 MiB/s"},
		{500, "500 B/s"},
	} {
		if got := Rate(c.bps); got != c.want {
			t.Errorf("Rate(%v) = %q, want %q", c.bps, got, c.want)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "<1 s"},
		{300 * time.Millisecond, "<1 s"},
		{40 * time.Second, "40 s"},
		{59400 * time.Millisecond, "59 s"},
		{200 * time.Second, "3 min 20 s"},
		{3 * time.Minute, "3 min"},
		{12*time.Minute + 40*time.Second, "13 min"},
		{2*time.Hour + 5*time.Minute, "2 h 5 min"},
		{2*time.Hour + 59*time.Minute + 50*time.Second, "3 h"},
		{76 * time.Hour, "3 d 4 h"},
		{72 * time.Hour, "3 d"},
	} {
		if got := Duration(c.d); got != c.want {
			t.Errorf("Duration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

// Package human formats sizes, rates and durations for people, the same
// way everywhere a person reads them: the command line, the status page,
// the feed and the reasons the engine gives. One convention, IEC units
// with one decimal ("12.0 MiB"), so that a number read on the page and the
// same number printed by `tapefs status` are the same string.
//
// It is a few lines of own code rather than a library (go-humanize's
// IBytes prints "12 MiB" but "1.2 MiB", changing precision with the
// magnitude, and its SI default is not what tape and quota people use).
package human

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Size prints a number of bytes: "512 B" below a KiB, else one decimal in
// the largest binary unit that keeps the number at least 1 ("12.0 MiB").
func Size(n int64) string {
	if n < 0 {
		return "-" + Size(-n)
	}
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v := float64(n)
	const units = "KMGTPE"
	i := -1
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	// 1023.96 KiB would print as "1024.0 KiB": say 1.0 MiB instead.
	if math.Round(v*10) >= unit*10 && i < len(units)-1 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}

// Rate prints bytes per second as Size does, "18.7 MiB/s"; "-" when there
// is no rate to tell (nothing moved yet, or not a number).
func Rate(bps float64) string {
	if bps <= 0 || math.IsNaN(bps) || math.IsInf(bps, 0) {
		return "-"
	}
	return Size(int64(bps)) + "/s"
}

// Duration prints a wait or an ETA roughly, as a person says it: "40 s",
// "3 min 20 s", "2 h 5 min", "3 d 4 h". Below a second it is "<1 s".
func Duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(math.Round(d.Seconds()))
	switch {
	case d < time.Second:
		return "<1 s"
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		if s%60 == 0 || s >= 600 {
			return fmt.Sprintf("%d min", (s+30)/60)
		}
		return fmt.Sprintf("%d min %d s", s/60, s%60)
	case s < 48*3600:
		h, m := s/3600, (s%3600+30)/60
		if m == 60 {
			h, m = h+1, 0
		}
		if m == 0 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	}
	dd, h := s/86400, (s%86400+1800)/3600
	if h == 24 {
		dd, h = dd+1, 0
	}
	if h == 0 {
		return fmt.Sprintf("%d d", dd)
	}
	return fmt.Sprintf("%d d %d h", dd, h)
}

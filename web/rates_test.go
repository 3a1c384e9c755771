package web

import (
	"sync"
	"testing"
	"time"

	"github.com/tapefs/tapefs/archive"
)

// fakeLibrary reports drives whose counters the test sets.
type fakeLibrary struct {
	mu     sync.Mutex
	drives []archive.DriveInfo
}

func (f *fakeLibrary) Drives() []archive.DriveInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]archive.DriveInfo(nil), f.drives...)
}

func (f *fakeLibrary) set(i int, read, written int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drives[i].Counters.BytesRead, f.drives[i].Counters.BytesWritten = read, written
}

func TestDriveRates(t *testing.T) {
	lib := &fakeLibrary{drives: []archive.DriveInfo{{Index: 0}, {Index: 1}}}
	now := time.Unix(1000, 0)
	r := newRateSampler(lib.Drives, func() time.Time { return now })
	if got := r.rates(lib.Drives()); got != nil {
		t.Errorf("rates before a sample: %v", got)
	}
	r.sample()
	for i := 1; i <= 10; i++ { // 400 MB/s written on drive 0, 100 MB/s read on 1
		now = now.Add(time.Second)
		lib.set(0, 0, int64(i)*400e6)
		lib.set(1, int64(i)*100e6, 0)
		r.sample()
	}
	got := r.rates(lib.Drives())
	if got[0] != 400e6 || got[1] != 100e6 {
		t.Errorf("rates %v", got)
	}
	if len(r.samples) > 7 {
		t.Errorf("%d samples kept for a 5 s window", len(r.samples))
	}
	// The drive stops: within the window the rate falls to 0.
	for range 6 {
		now = now.Add(time.Second)
		r.sample()
	}
	if got := r.rates(lib.Drives()); got[0] != 0 {
		t.Errorf("rate of a stopped drive: %v", got[0])
	}
}

package tape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Errors a caller must be able to tell apart.
var (
	// ErrEndOfTape is returned by Drive.Write when the cartridge is full. The
	// tape file being written is not committed; the caller continues the
	// aggregate on another cartridge.
	ErrEndOfTape = errors.New("end of tape")
	// ErrNoSuchFile is returned by Locate for a tape file that is not on the
	// cartridge.
	ErrNoSuchFile = errors.New("no such tape file")
	// ErrNoCartridge is returned for an unknown VOLSER.
	ErrNoCartridge = errors.New("no such cartridge")
	// ErrMedium is what a MediumError is: the cartridge cannot give back a
	// tape file its index says it holds (missing or unreadable), as a real
	// drive reports a medium error (EIO from st).
	ErrMedium = errors.New("medium error")
	// ErrFenced is returned for a write to a cartridge of a shared library
	// that another host has taken over under a newer lease epoch.
	ErrFenced = errors.New("cartridge taken over by another host")
)

// MediumError names the cartridge and tape file that could not be read.
// It unwraps to ErrMedium only: the operating system's error underneath
// (a missing file in the virtual library is ENOENT) is the library's
// business, and must not reach a reader as "no such file".
type MediumError struct {
	VOLSER   string
	TapeFile int
	Err      error // what the library saw, for the message
}

func (e *MediumError) Error() string {
	return fmt.Sprintf("medium error on cartridge %s, tape file %d: %v", e.VOLSER, e.TapeFile, e.Err)
}

// Unwrap gives ErrMedium, and io.ErrUnexpectedEOF for a tape file shorter
// than its index says; never an errno.
func (e *MediumError) Unwrap() []error {
	if errors.Is(e.Err, io.ErrUnexpectedEOF) {
		return []error{ErrMedium, io.ErrUnexpectedEOF}
	}
	return []error{ErrMedium}
}

// Timing is the simulated cost of each step of the library.
type Timing struct {
	RobotMove  time.Duration // move a cartridge between slot and drive
	Load       time.Duration // thread and position at BOT
	Unload     time.Duration // rewind and unthread
	LocateBase time.Duration // fixed cost of any locate
	LocateFull time.Duration // extra cost of a locate over the whole tape length
	StreamRate int64         // bytes per second, read and write
	Filemark   time.Duration // flush and write one filemark
}

// LTO9 is the default timing model.
func LTO9() Timing {
	return Timing{
		RobotMove:  10 * time.Second,
		Load:       16 * time.Second,
		Unload:     20 * time.Second,
		LocateBase: 10 * time.Second,
		LocateFull: 50 * time.Second,
		StreamRate: 400_000_000,
		Filemark:   2 * time.Second,
	}
}

// Config describes a virtual library. A new library is created (cartridges
// labelled) when Dir holds none; an existing one is opened as it is and
// Drives/Cartridges only grow it.
type Config struct {
	Dir        string        // HOME/library
	Drives     int           // default 2
	Cartridges int           // default 20
	Capacity   int64         // bytes per cartridge, default 18 TB (LTO-9 native)
	Prefix     string        // VOLSER prefix, default "TF"; VOLSERs are Prefix + 4 digits ("TF0001")
	Timing     Timing        // zero value means LTO9()
	TimeScale  float64       // fraction of simulated time really slept: 0 none, 1 real time
	IdleUnload time.Duration // a released cartridge stays mounted this long (simulated) before it may be unloaded for another; 0 = until its drive is needed
	// Shared: several hosts (daemons) use Dir at once, each with Drives
	// drives of its own; cartridges are written under lease epochs
	// (FencedLibrary) and read from disk afresh at every Acquire.
	Shared bool
}

// FencedLibrary is a library several hosts share. AcquireFenced is
// Acquire under a lease epoch from the shared catalog: it reads the
// cartridge afresh, refuses an epoch older than the cartridge's, and under
// a newer one first discards what a host that held an older lease left
// unfinished (a half-written tape file). Every write through the drive is
// then fenced by epoch.
type FencedLibrary interface {
	Library
	AcquireFenced(ctx context.Context, volser string, epoch uint64) (Drive, error)
}

// CartridgeState is the state of a cartridge.
type CartridgeState string

const (
	CartridgeScratch CartridgeState = "scratch" // labelled, no data
	CartridgeFilling CartridgeState = "filling" // has data, room left
	CartridgeFull    CartridgeState = "full"    // end of tape was reached
	CartridgeError   CartridgeState = "error"   // unreadable label or index
)

// CartridgeInfo is what the library reports of one cartridge.
type CartridgeInfo struct {
	VOLSER    string
	Capacity  int64
	Used      int64 // bytes of committed tape files (label included)
	TapeFiles int   // committed tape files, the label (file 0) included
	State     CartridgeState
	Drive     int // index of the drive holding it, -1 in its slot
	// Generation of the label: 1 for a new cartridge, one more after each
	// Erase. Copies recorded on another generation are gone.
	Generation int
}

// DriveState is what a drive is doing.
type DriveState string

const (
	DriveEmpty     DriveState = "empty"
	DriveMounting  DriveState = "mounting"
	DriveIdle      DriveState = "idle" // loaded, not in use
	DriveReading   DriveState = "reading"
	DriveWriting   DriveState = "writing"
	DriveLocating  DriveState = "locating"
	DriveUnloading DriveState = "unloading"
)

// DriveInfo is what the library reports of one drive.
type DriveInfo struct {
	Index    int
	State    DriveState
	VOLSER   string // cartridge loaded, "" when empty
	InUse    bool   // held by a caller through Acquire
	Counters Counters
	// Head is where the head of a loaded drive that nobody holds stands
	// (tape file, offset): where the next holder's first locate starts.
	// Unknown (zero) while the drive is held.
	HeadFile   int
	HeadOffset int64
}

// Model is what a caller needs to predict how long the library takes:
// the timing model and the fraction of it really waited.
type Model struct {
	Timing    Timing
	TimeScale float64
}

// Counters accumulate what a drive (or the whole library) has done.
type Counters struct {
	Mounts       int64
	Unmounts     int64
	Locates      int64
	BytesRead    int64
	BytesWritten int64
	Filemarks    int64
	SimSeconds   float64 // simulated seconds spent (robot, load, locate, stream, filemark)
}

// Add returns the sum of two counters.
func (c Counters) Add(o Counters) Counters {
	return Counters{
		Mounts: c.Mounts + o.Mounts, Unmounts: c.Unmounts + o.Unmounts,
		Locates: c.Locates + o.Locates, BytesRead: c.BytesRead + o.BytesRead,
		BytesWritten: c.BytesWritten + o.BytesWritten, Filemarks: c.Filemarks + o.Filemarks,
		SimSeconds: c.SimSeconds + o.SimSeconds,
	}
}

// Drive is one tape drive, held exclusively by the caller between
// Library.Acquire and Library.Release. Methods follow the st driver: a drive
// has a position (tape file, byte offset inside it); Read and Write move it.
type Drive interface {
	Index() int
	VOLSER() string
	// Locate positions at byte offset off of tape file n (n ≥ 1; file 0 is
	// the label). Charges a locate unless the drive is already there.
	Locate(n int, off int64) error
	// SeekEOD positions at end of data, where the next tape file (returned)
	// will be written.
	SeekEOD() (n int, err error)
	// Read reads from the current tape file; io.EOF at its end (the filemark).
	Read(p []byte) (int, error)
	// Write appends to the tape file being written (started by SeekEOD or by
	// a Locate to the end of a file, which destroys every file after it).
	// A write past capacity returns ErrEndOfTape and the uncommitted tape
	// file is lost.
	Write(p []byte) (int, error)
	// WriteFilemark flushes and commits the tape file being written. Only a
	// committed tape file survives a crash.
	WriteFilemark() error
	// Position reports the current tape file and offset.
	Position() (n int, off int64)
	// Remaining reports how many bytes may still be written.
	Remaining() int64
	// Erase makes the cartridge scratch again: every tape file after the
	// label is destroyed and a new label of the next generation is written
	// at the beginning of tape (a quick erase, as writing a label at BOT
	// is on real tape). A crash leaves the cartridge either as it was or
	// erased, never in between.
	Erase() error
}

// Library is a robot with drives and cartridges.
type Library interface {
	// Acquire returns a drive holding the cartridge, mounting it if needed
	// (prefers a drive that already holds it; otherwise an empty drive, then
	// one whose cartridge is idle). It blocks while every drive is in use or
	// the cartridge is in a drive held by someone else.
	Acquire(ctx context.Context, volser string) (Drive, error)
	// Release gives the drive back; its cartridge stays loaded.
	Release(d Drive)
	Cartridges() []CartridgeInfo
	Cartridge(volser string) (CartridgeInfo, error)
	Drives() []DriveInfo
	// Model is the library's timing model, for estimates (the recall ETA).
	Model() Model
	// Where is the absolute byte position of offset off of tape file n on
	// a cartridge, and the cartridge's capacity: what a locate's cost
	// depends on.
	Where(volser string, n int, off int64) (pos, capacity int64, err error)
	Counters() Counters
	// Timing is the library's timing model, for callers that weigh
	// reading through a gap against locating over it.
	Timing() Timing
	Close() error
}

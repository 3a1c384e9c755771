// Package tape owns the tape library: a robot, drives and cartridges, and the
// on-tape format (aggregates: PAX tar streams with tapefs records).
//
// The embedded implementation is a virtual library on local disk (under
// HOME/library) that follows the semantics of real tape: a robot mounts and
// unmounts cartridges, writes append at end of data, reads locate to a
// position, a write in the middle of the tape destroys what follows, and a
// cartridge has a capacity past which a write reports end of tape. A timing
// model charges simulated seconds for every step (defaults from LTO-9) and
// really sleeps TimeScale × that time.
//
// The drive interface is shaped after the Linux st driver (load, locate, read
// and write records, write filemark, read position) so that a real drive can
// be put behind it.
//
// tape knows nothing of catalogs, caches or FUSE: it stores and returns bytes
// at positions.
package tape

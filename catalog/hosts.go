package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Several tapefs daemons ("hosts") may share one catalog (on PostgreSQL).
// Each keeps a heartbeat record; what a host holds — a cartridge, a job —
// is held under a lease with an epoch, valid while the holder's heartbeat
// is fresh. A takeover bumps the epoch, and every commit of work done
// under a lease checks it (Fence), so a host that lost its lease while
// paused or cut off cannot record anything afterwards.
//
// Leases are renewed by the heartbeat alone (one write per host per
// period, however many cartridges and jobs it holds), as CTA's agents do:
// a job or cartridge is free for the taking when its holder's heartbeat
// has expired.

// ErrFenced is returned by a commit made under a lease another host has
// taken over since (or a job that is no longer the committer's).
var ErrFenced = errors.New("lease lost: another host has taken over")

// Host is the heartbeat record of one daemon sharing the catalog.
type Host struct {
	ID        string      `json:"id"`
	Started   time.Time   `json:"started"`   // this run of the daemon (database clock)
	Heartbeat time.Time   `json:"heartbeat"` // last renewal (database clock)
	Expires   time.Time   `json:"expires"`   // Heartbeat + lease: its leases are void after this
	Stopped   bool        `json:"stopped,omitempty"`
	CacheDir  string      `json:"cache_dir,omitempty"` // where its cache is; another host may adopt it from there
	PID       int         `json:"pid,omitempty"`
	Drives    []HostDrive `json:"drives,omitempty"` // as of the last heartbeat
	// Listening: at its last heartbeat the host was told of every other
	// host's change at once (its LISTEN connection was up and caught up).
	Listening bool `json:"listening,omitempty"`
}

// HostDrive is one drive of a host, as its heartbeat reported it.
type HostDrive struct {
	Index  int    `json:"index"`
	State  string `json:"state"`
	VOLSER string `json:"volser,omitempty"`
}

// Alive reports whether the host's leases are valid at now (database clock).
func (h Host) Alive(now time.Time) bool { return !h.Stopped && now.Before(h.Expires) }

// CartridgeLease says which host may write a cartridge, and under which
// epoch. Holder "" is a free cartridge; Epoch only grows.
type CartridgeLease struct {
	VOLSER string    `json:"volser"`
	Holder string    `json:"holder,omitempty"`
	Epoch  uint64    `json:"epoch"`
	Since  time.Time `json:"since,omitzero"`
}

// Fence is what a commit of leased work must still hold: the cartridge
// lease (VOLSER, at Epoch) and the jobs (ID -> epoch of the claim), all by
// Host. The zero Fence checks nothing (one host, no leases).
type Fence struct {
	Host   string
	VOLSER string
	Epoch  uint64
	Jobs   map[uint64]uint64
}

// clocker is implemented by a KVTxn whose engine has a clock of its own
// that every host shares (the database server's).
type clocker interface {
	clock() (time.Time, error)
}

// Now is the time by the catalog's clock: the database server's on
// PostgreSQL, so that hosts with skewed clocks agree on when a lease
// expired; the local clock on the embedded engines.
func (tx *Tx) Now() (time.Time, error) {
	if c, ok := tx.kv.(clocker); ok {
		return c.clock()
	}
	return time.Now(), nil
}

func hostKey(id string) []byte      { return key(tableHost, id) }
func leaseKey(volser string) []byte { return key(tableLease, volser) }
func decodeMicros(v []byte) (time.Time, error) {
	if len(v) != 8 {
		return time.Time{}, fmt.Errorf("database clock: %d bytes", len(v))
	}
	return time.UnixMicro(int64(binary.BigEndian.Uint64(v))), nil
}

// Host returns a host's record.
func (tx *Tx) Host(id string) (Host, error) {
	var h Host
	found, err := tx.get(hostKey(id), &h)
	if err == nil && !found {
		err = fmt.Errorf("host %q: %w", id, ErrNotFound)
	}
	return h, err
}

// PutHost creates or replaces a host's record.
func (tx *Tx) PutHost(h Host) error {
	if h.ID == "" {
		return errors.New("put host: no host ID")
	}
	return tx.put(hostKey(h.ID), &h)
}

// Hosts returns every host that ever heartbeat, by ID.
func (tx *Tx) Hosts() ([]Host, error) {
	var out []Host
	err := tx.kv.Scan([]byte{tableHost}, nil, false, func(k, v []byte) (bool, error) {
		var h Host
		if err := unmarshal(k, v, &h); err != nil {
			return false, err
		}
		out = append(out, h)
		return true, nil
	})
	return out, err
}

// CartridgeLease returns a cartridge's lease (a free one at epoch 0 when
// none was ever taken).
func (tx *Tx) CartridgeLease(volser string) (CartridgeLease, error) {
	l := CartridgeLease{VOLSER: volser}
	_, err := tx.get(leaseKey(volser), &l)
	return l, err
}

// PutCartridgeLease records a cartridge's lease.
func (tx *Tx) PutCartridgeLease(l CartridgeLease) error {
	if l.VOLSER == "" {
		return errors.New("put cartridge lease: no VOLSER")
	}
	return tx.put(leaseKey(l.VOLSER), &l)
}

// CartridgeLeases returns every cartridge lease, by VOLSER.
func (tx *Tx) CartridgeLeases() ([]CartridgeLease, error) {
	var out []CartridgeLease
	err := tx.kv.Scan([]byte{tableLease}, nil, false, func(k, v []byte) (bool, error) {
		var l CartridgeLease
		if err := unmarshal(k, v, &l); err != nil {
			return false, err
		}
		out = append(out, l)
		return true, nil
	})
	return out, err
}

// HolderAlive reports whether holder ("" is nobody) holds its leases at
// now: its heartbeat has not expired. A holder with no heartbeat record
// holds nothing.
func (tx *Tx) HolderAlive(holder string, now time.Time) (bool, error) {
	if holder == "" {
		return false, nil
	}
	h, err := tx.Host(holder)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return h.Alive(now), nil
}

// CheckFence returns ErrFenced (saying what was lost) unless f.Host still
// holds the cartridge lease at f.Epoch and every job of f at its epoch,
// with its heartbeat unexpired. Called inside the transaction that
// commits the work, so nothing is recorded under a lost lease.
func (tx *Tx) CheckFence(f Fence) error {
	if f.Host == "" {
		return nil
	}
	now, err := tx.Now()
	if err != nil {
		return err
	}
	if alive, err := tx.HolderAlive(f.Host, now); err != nil {
		return err
	} else if !alive {
		return fmt.Errorf("%w: the heartbeat of host %s expired", ErrFenced, f.Host)
	}
	if f.VOLSER != "" {
		l, err := tx.CartridgeLease(f.VOLSER)
		if err != nil {
			return err
		}
		if l.Holder != f.Host || l.Epoch != f.Epoch {
			return fmt.Errorf("%w: cartridge %s is held by %q at epoch %d, not by %s at epoch %d", ErrFenced, f.VOLSER, l.Holder, l.Epoch, f.Host, f.Epoch)
		}
	}
	for id, epoch := range f.Jobs {
		j, err := tx.Job(id)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: job %d is gone", ErrFenced, id)
		}
		if err != nil {
			return err
		}
		if j.Owner != f.Host || j.Epoch != epoch {
			return fmt.Errorf("%w: job %d is owned by %q at epoch %d, not by %s at epoch %d", ErrFenced, id, j.Owner, j.Epoch, f.Host, epoch)
		}
	}
	return nil
}

// Role says which host runs a background loop that must run once per
// archive, not once per host (the catalog snapshot, the journal, purges,
// the tape scrub): held like a job, under an epoch, while the holder's
// heartbeat lasts; a host whose heartbeat lapsed loses it to the next
// host that asks. Last is when the holder last finished the role's work,
// so that a host taking it over keeps the role's cadence.
type Role struct {
	Name   string    `json:"name"`
	Holder string    `json:"holder,omitempty"`
	Epoch  uint64    `json:"epoch"`
	Since  time.Time `json:"since,omitzero"`
	Last   time.Time `json:"last,omitzero"`
}

func roleKey(name string) []byte { return key(tableRole, name) }

// Role returns a role's record (nobody's, at epoch 0, when none was ever
// taken).
func (tx *Tx) Role(name string) (Role, error) {
	r := Role{Name: name}
	_, err := tx.get(roleKey(name), &r)
	return r, err
}

// PutRole records a role.
func (tx *Tx) PutRole(r Role) error {
	if r.Name == "" {
		return errors.New("put role: no name")
	}
	return tx.put(roleKey(r.Name), &r)
}

// Roles returns every role, by name.
func (tx *Tx) Roles() ([]Role, error) {
	var out []Role
	err := tx.kv.Scan([]byte{tableRole}, nil, false, func(k, v []byte) (bool, error) {
		var r Role
		if err := unmarshal(k, v, &r); err != nil {
			return false, err
		}
		out = append(out, r)
		return true, nil
	})
	return out, err
}

package catalog

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Cartridge returns the catalog's record of a cartridge.
func (tx *Tx) Cartridge(volser string) (CartridgeRecord, error) {
	var c CartridgeRecord
	found, err := tx.get(cartridgeKey(volser), &c)
	if err == nil && !found {
		err = fmt.Errorf("cartridge %s: %w", volser, ErrNotFound)
	}
	return c, err
}

// PutCartridge creates or replaces a cartridge record. What the library
// does not know (last verification, pool, root's state) is kept from the
// old record when c leaves it empty.
func (tx *Tx) PutCartridge(c CartridgeRecord) error {
	if c.VOLSER == "" {
		return errors.New("put cartridge: the cartridge has no VOLSER")
	}
	var old CartridgeRecord
	if found, err := tx.get(cartridgeKey(c.VOLSER), &old); err != nil {
		return err
	} else if found {
		if c.Verified.IsZero() {
			c.Verified, c.VerifyDamaged = old.Verified, old.VerifyDamaged
		}
		if c.Pool == "" {
			c.Pool = old.Pool
		}
		if c.Admin == "" {
			c.Admin = old.Admin
		}
		// The library's view does not know the dead bytes; only an erase
		// (a new generation) ends them.
		if c.Generation == 0 {
			c.Generation = old.Generation
		}
		if c.Generation == old.Generation {
			c.Dead = max(c.Dead, old.Dead)
		}
	}
	return tx.put(cartridgeKey(c.VOLSER), &c)
}

// AddDead counts bytes of file data on a cartridge that no copy refers to
// any more.
func (tx *Tx) AddDead(volser string, bytes int64) error {
	var c CartridgeRecord
	if _, err := tx.get(cartridgeKey(volser), &c); err != nil {
		return err
	}
	c.VOLSER = volser
	c.Dead += bytes
	return tx.put(cartridgeKey(volser), &c)
}

// EraseCartridge records that a cartridge was erased to scratch: a new
// generation, no dead bytes, never verified. c is the library's view after
// the erase.
func (tx *Tx) EraseCartridge(c CartridgeRecord) error {
	var old CartridgeRecord
	if _, err := tx.get(cartridgeKey(c.VOLSER), &old); err != nil {
		return err
	}
	// Its pool and root's state stay: the cartridge is the same.
	if c.Pool == "" {
		c.Pool = old.Pool
	}
	if c.Admin == "" {
		c.Admin = old.Admin
	}
	c.Dead, c.Verified, c.VerifyDamaged = 0, time.Time{}, 0
	return tx.put(cartridgeKey(c.VOLSER), &c)
}

// SetCartridgeAdmin sets (or, with "", clears) root's state of a cartridge:
// read-only, disabled or lost. A cartridge the catalog has no record of
// gets one.
func (tx *Tx) SetCartridgeAdmin(volser, state string) (CartridgeRecord, error) {
	if !AdminState(state) {
		return CartridgeRecord{}, fmt.Errorf("cartridge %s: state %q cannot be set: use %s, %s or %s (or clear it)", volser, state, CartridgeReadOnly, CartridgeDisabled, CartridgeLost)
	}
	var c CartridgeRecord
	if _, err := tx.get(cartridgeKey(volser), &c); err != nil {
		return c, err
	}
	c.VOLSER, c.Admin = volser, state
	return c, tx.put(cartridgeKey(volser), &c)
}

// SetCartridgePool moves a cartridge to a pool ("" = none). A cartridge the
// catalog has no record of gets one.
func (tx *Tx) SetCartridgePool(volser, pool string) (CartridgeRecord, error) {
	if strings.ContainsAny(pool, "\x00/ \t\n") {
		return CartridgeRecord{}, fmt.Errorf("cartridge %s: pool name %q is not valid: use letters, digits, - and _", volser, pool)
	}
	var c CartridgeRecord
	if _, err := tx.get(cartridgeKey(volser), &c); err != nil {
		return c, err
	}
	c.VOLSER, c.Pool = volser, pool
	return c, tx.put(cartridgeKey(volser), &c)
}

// CartridgeMap returns every cartridge record by VOLSER.
func (tx *Tx) CartridgeMap() (map[string]CartridgeRecord, error) {
	cs, err := tx.Cartridges()
	if err != nil {
		return nil, err
	}
	m := make(map[string]CartridgeRecord, len(cs))
	for _, c := range cs {
		m[c.VOLSER] = c
	}
	return m, nil
}

// SetCartridgeVerified records that every copy on a cartridge was read
// back at t, damaged of them bad (a cartridge the catalog has no record of gets one).
func (tx *Tx) SetCartridgeVerified(volser string, t time.Time, damaged int) error {
	var c CartridgeRecord
	if _, err := tx.get(cartridgeKey(volser), &c); err != nil {
		return err
	}
	c.VOLSER, c.Verified, c.VerifyDamaged = volser, t, damaged
	return tx.put(cartridgeKey(volser), &c)
}

// Cartridges returns every cartridge record in VOLSER order.
func (tx *Tx) Cartridges() ([]CartridgeRecord, error) {
	var out []CartridgeRecord
	err := tx.kv.Scan([]byte{tableCartridge}, nil, false, func(k, v []byte) (bool, error) {
		var c CartridgeRecord
		if err := unmarshal(k, v, &c); err != nil {
			return false, err
		}
		out = append(out, c)
		return true, nil
	})
	return out, err
}

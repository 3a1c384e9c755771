package catalog

import (
	"errors"
	"fmt"
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

// PutCartridge creates or replaces a cartridge record.
func (tx *Tx) PutCartridge(c CartridgeRecord) error {
	if c.VOLSER == "" {
		return errors.New("put cartridge: the cartridge has no VOLSER")
	}
	if c.Verified.IsZero() {
		var old CartridgeRecord
		if found, err := tx.get(cartridgeKey(c.VOLSER), &old); err != nil {
			return err
		} else if found {
			c.Verified, c.VerifyDamaged = old.Verified, old.VerifyDamaged
		}
	}
	return tx.put(cartridgeKey(c.VOLSER), &c)
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

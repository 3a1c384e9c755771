package catalog

import (
	"errors"
	"fmt"
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
	return tx.put(cartridgeKey(c.VOLSER), &c)
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

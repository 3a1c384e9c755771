// Package checksum owns the two checksums tapefs records of a file's
// bytes, and how they are written down.
//
// The md5 is the file's identity for users: computed at sealing, shown by
// `tapefs ls -F md5sum` and the xattr, compared by `md5sum`. The CRC32C is
// the check of a copy read back: computed from the same bytes in the same
// pass as the md5, written on tape with it, and checked by a recall before
// a reader gets the last bytes and by `tapefs verify --cartridge`. It is
// the checksum LTO drives themselves use for logical block protection, and
// it runs at memory speed (the CPU has an instruction for it) where md5
// runs at well under a gigabyte per second on one core — slower than a
// copy from disk to disk, so a recall or a verification gated on md5 goes
// at md5's speed and not the disk's or the drive's.
package checksum

import (
	"crypto/md5"
	"encoding/hex"
	"hash"
	"hash/crc32"
	"strconv"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C is a running CRC32C (Castagnoli).
type CRC32C uint32

// Update adds b.
func (c *CRC32C) Update(b []byte) { *c = CRC32C(crc32.Update(uint32(*c), castagnoli, b)) }

// String is the CRC as recorded: 8 lower-case hex digits.
func (c CRC32C) String() string { return FormatCRC32C(uint32(c)) }

// FormatCRC32C writes v as recorded: 8 lower-case hex digits.
func FormatCRC32C(v uint32) string {
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// ValidCRC32C reports whether s is a CRC32C as recorded.
func ValidCRC32C(s string) bool {
	if len(s) != 8 {
		return false
	}
	_, err := strconv.ParseUint(s, 16, 32)
	return err == nil && s == lower(s)
}

// ValidMD5 reports whether s is an md5 as recorded: 32 lower-case hex
// digits.
func ValidMD5(s string) bool {
	if len(s) != 2*md5.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && s == lower(s)
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Hash computes the CRC32C of the bytes written to it and, when asked
// for, their md5, in one pass.
type Hash struct {
	md5 hash.Hash // nil: not asked for
	crc CRC32C
}

// New starts a Hash; withMD5 asks for the md5 too.
func New(withMD5 bool) *Hash {
	if withMD5 {
		return &Hash{md5: md5.New()}
	}
	return &Hash{}
}

// Write adds p; it never fails.
func (h *Hash) Write(p []byte) (int, error) {
	h.crc.Update(p)
	if h.md5 != nil {
		h.md5.Write(p)
	}
	return len(p), nil
}

// Sums returns the md5 ("" when not asked for) and the CRC32C as
// recorded.
func (h *Hash) Sums() (md5sum, crc string) {
	if h.md5 != nil {
		md5sum = hex.EncodeToString(h.md5.Sum(nil))
	}
	return md5sum, h.crc.String()
}

// Of returns the md5 and CRC32C of p.
func Of(p []byte) (md5sum, crc string) {
	s := md5.Sum(p)
	var c CRC32C
	c.Update(p)
	return hex.EncodeToString(s[:]), c.String()
}

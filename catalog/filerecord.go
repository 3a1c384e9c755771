package catalog

import (
	"bytes"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// File records are the catalog's most numerous by far, and a listing reads
// one per entry: `find` or `du -s` of a 100,000-entry batch tree decodes
// 100,000 of them. encoding/json spends most of that time validating the
// text and walking the struct by reflection (40 % of the daemon's CPU in a
// cold `find`). decodeFileRecord reads the shape encodeRecord writes for a
// File — one object of known members, strings without escapes, unsigned
// integers — directly, and gives up on anything else (an escape, an
// unknown member, the "raw" member of a name that is not UTF-8, a number
// out of range), which decodeRecord then hands to encoding/json as before.
// So the records, and what they decode to, are exactly what they were; only
// the common case is faster.

// decodeFileRecord decodes data into f as json.Unmarshal would and reports
// true, or reports false and leaves f untouched. (json.Unmarshal decodes
// the elements of a list into the ones f already has; so does this, by
// leaving a File that has copies to it.)
func decodeFileRecord(data []byte, f *File) bool {
	if len(f.Copies) > 0 {
		return false
	}
	d := recordScanner{b: data}
	out := *f
	if !d.record(func(key []byte) bool { return d.fileMember(key, &out) }) {
		return false
	}
	*f = out
	return true
}

// recordScanner reads JSON text written by encoding/json; every method
// reports false for anything outside the subset it knows.
type recordScanner struct {
	b []byte
	i int
}

func (d *recordScanner) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// next consumes c (after white space) if it comes next.
func (d *recordScanner) next(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// record reads a whole record: one object and nothing after it.
func (d *recordScanner) record(member func(key []byte) bool) bool {
	if !d.object(member) {
		return false
	}
	d.space()
	return d.i == len(d.b)
}

// object reads {"key":value,...}, calling member for each key with the
// scanner before the value; member consumes the value.
func (d *recordScanner) object(member func(key []byte) bool) bool {
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return true
	}
	for {
		key, ok := d.text()
		if !ok || !d.next(':') || !member(key) {
			return false
		}
		if d.next(',') {
			continue
		}
		return d.next('}')
	}
}

// text reads a string that has no escapes and is valid UTF-8, and returns
// its bytes (a slice of the record, not a copy).
func (d *recordScanner) text() ([]byte, bool) {
	d.space()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			s := d.b[start:j]
			if !utf8.Valid(s) {
				return nil, false // encoding/json would replace bytes
			}
			d.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// str reads a string member's value.
func (d *recordScanner) str(dst *string) bool {
	s, ok := d.text()
	if ok {
		*dst = string(s)
	}
	return ok
}

// uint reads an unsigned integer of at most bits bits.
func (d *recordScanner) uint(bits int) (uint64, bool) {
	d.space()
	start := d.i
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
	}
	digits := d.b[start:d.i]
	if len(digits) == 0 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	if d.i < len(d.b) {
		switch d.b[d.i] {
		case '.', 'e', 'E':
			return 0, false // a number json would refuse for an integer field
		}
	}
	n, err := strconv.ParseUint(unsafe.String(unsafe.SliceData(digits), len(digits)), 10, bits)
	return n, err == nil
}

func (d *recordScanner) u64(dst *uint64) bool {
	n, ok := d.uint(64)
	*dst = n
	return ok
}

func (d *recordScanner) u32(dst *uint32) bool {
	n, ok := d.uint(32)
	*dst = uint32(n)
	return ok
}

// i64 reads a non-negative int64 (every signed field of a File is a size
// or an offset; a negative one goes to encoding/json).
func (d *recordScanner) i64(dst *int64) bool {
	n, ok := d.uint(63)
	*dst = int64(n)
	return ok
}

func (d *recordScanner) fileType(dst *FileType) bool {
	n, ok := d.uint(8)
	*dst = FileType(n)
	return ok
}

func (d *recordScanner) boolean(dst *bool) bool {
	d.space()
	rest := d.b[d.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		*dst, d.i = true, d.i+4
	case len(rest) >= 5 && string(rest[:5]) == "false":
		*dst, d.i = false, d.i+5
	default:
		return false
	}
	return true
}

// fileMember reads the value of member key of a File record.
func (d *recordScanner) fileMember(key []byte, f *File) bool {
	switch string(key) {
	case "id":
		return d.u64(&f.ID)
	case "batch":
		return d.u64(&f.Batch)
	case "parent":
		return d.u64(&f.Parent)
	case "name":
		return d.str(&f.Name)
	case "path":
		return d.str(&f.Path)
	case "type":
		return d.fileType(&f.Type)
	case "mode":
		return d.u32(&f.Mode)
	case "uid":
		return d.u32(&f.UID)
	case "gid":
		return d.u32(&f.GID)
	case "mtime":
		d.space()
		start := d.i
		if _, ok := d.text(); !ok {
			return false
		}
		return f.Mtime.UnmarshalJSON(d.b[start:d.i]) == nil
	case "size":
		return d.i64(&f.Size)
	case "md5":
		return d.str(&f.MD5)
	case "crc32c":
		return d.str(&f.CRC32C)
	case "target":
		return d.str(&f.Target)
	case "link":
		return d.u64(&f.Link)
	case "nlink":
		return d.u32(&f.Nlink)
	case "removed":
		return d.boolean(&f.Removed)
	case "copies":
		return d.copies(&f.Copies)
	}
	return false // "raw", or a member this version does not know
}

// copies reads a File's list of tape copies.
func (d *recordScanner) copies(dst *[]Copy) bool {
	if !d.next('[') {
		return false
	}
	var out []Copy
	if !d.next(']') {
		for {
			var c Copy
			ok := d.object(func(key []byte) bool {
				switch string(key) {
				case "volser":
					return d.str(&c.VOLSER)
				case "tape_file":
					n, ok := d.uint(strconv.IntSize - 1)
					c.TapeFile = int(n)
					return ok
				case "offset":
					return d.i64(&c.Offset)
				case "length":
					return d.i64(&c.Length)
				}
				return false
			})
			if !ok {
				return false
			}
			out = append(out, c)
			if d.next(',') {
				continue
			}
			if !d.next(']') {
				return false
			}
			break
		}
	} else {
		out = []Copy{}
	}
	*dst = out
	return true
}

// decodeDirName reads the members of a File record a listing of names
// needs (type, link, removed) and skips the rest without decoding it; it
// reports false, as decodeFileRecord does, for what it does not know.
// (A record damaged in a member it skips lists by name, and fails when
// the entry itself is read.)
func decodeDirName(data []byte, dn *DirName) bool {
	d := recordScanner{b: data}
	out := *dn
	ok := d.record(func(key []byte) bool {
		switch string(key) {
		case "type":
			return d.fileType(&out.Type)
		case "link":
			return d.u64(&out.Link)
		case "removed":
			return d.boolean(&out.Removed)
		}
		// encoding/json matches member names regardless of case: a
		// "Type" would be taken for the type.
		if (len(key) == 4 || len(key) == 7) && (bytes.EqualFold(key, memberType) || bytes.EqualFold(key, memberLink) || bytes.EqualFold(key, memberRemoved)) {
			return false
		}
		return d.skip()
	})
	if !ok {
		return false
	}
	*dn = out
	return true
}

var memberType, memberLink, memberRemoved = []byte("type"), []byte("link"), []byte("removed")

// skip passes over one value of any kind.
func (d *recordScanner) skip() bool {
	d.space()
	if d.i >= len(d.b) {
		return false
	}
	switch d.b[d.i] {
	case '"':
		for j := d.i + 1; j < len(d.b); j++ {
			switch d.b[j] {
			case '\\':
				j++
			case '"':
				d.i = j + 1
				return true
			}
		}
		return false
	case '{', '[':
		depth := 0
		for d.i < len(d.b) {
			switch d.b[d.i] {
			case '"':
				if !d.skip() {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					d.i++
					return true
				}
			}
			d.i++
		}
		return false
	}
	start := d.i // a number, true, false or null
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return d.i > start
		}
		d.i++
	}
	return false
}

package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Name is a file name or path on the wire. Linux names are bytes (anything
// but NUL, and '/' inside one name), but JSON strings are Unicode:
// encoding/json writes every byte of a string that is not valid UTF-8 as
// U+FFFD, and a name sent that way names another file, or none.
//
// So a Name that is valid UTF-8 — nearly every one — is a plain JSON
// string, and any other is an object holding its bytes in base64:
//
//	"run1234/a.dat"
//	{"base64":"eP8="}          the two bytes x \xff
//
// A string and an object cannot be confused, so any client can tell the
// two forms apart, and one that only ever sees UTF-8 names sees only
// strings.
type Name string

// nameBytes is the object form of a Name.
type nameBytes struct {
	Base64 *[]byte `json:"base64"`
}

// MarshalJSON writes n as a JSON string when it is valid UTF-8, as
// {"base64": ...} otherwise.
func (n Name) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(n)) {
		return json.Marshal(string(n))
	}
	b := []byte(n)
	return json.Marshal(nameBytes{Base64: &b})
}

// UnmarshalJSON reads either form. A string is taken as it is; an object
// must hold the base64 member and nothing else a reader could mistake for
// the name.
func (n *Name) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0:
		return errors.New("name: empty JSON value")
	case string(data) == "null":
		return nil // as for a string: null leaves the value alone
	case data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("name: %w", err)
		}
		*n = Name(s)
		return nil
	case data[0] == '{':
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		var nb nameBytes
		if err := dec.Decode(&nb); err != nil {
			return fmt.Errorf("name: %w", err)
		}
		if nb.Base64 == nil {
			return errors.New(`name: an object without "base64"`)
		}
		*n = Name(*nb.Base64)
		return nil
	}
	return fmt.Errorf("name: want a string or {\"base64\": ...}, got %.20s", data)
}

// Names converts paths to their wire form.
func Names(paths []string) []Name {
	out := make([]Name, len(paths))
	for i, p := range paths {
		out[i] = Name(p)
	}
	return out
}

// fileInfoFields is FileInfo without its methods, so that fileInfoJSON
// can embed it and shadow its names.
type fileInfoFields FileInfo

// fileInfoJSON is FileInfo on the wire: its fields, with the name, path
// and symlink target as Names (a field of the outer struct wins over the
// deeper one of the same JSON name).
type fileInfoJSON struct {
	*fileInfoFields
	Name   Name `json:"name"`
	Path   Name `json:"path"`
	Target Name `json:"target,omitempty"`
}

// MarshalJSON writes the file with its names byte for byte.
func (f FileInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(fileInfoJSON{fileInfoFields: (*fileInfoFields)(&f), Name: Name(f.Name), Path: Name(f.Path), Target: Name(f.Target)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *FileInfo) UnmarshalJSON(data []byte) error {
	w := fileInfoJSON{fileInfoFields: (*fileInfoFields)(f), Name: Name(f.Name), Path: Name(f.Path), Target: Name(f.Target)}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	f.Name, f.Path, f.Target = string(w.Name), string(w.Path), string(w.Target)
	return nil
}

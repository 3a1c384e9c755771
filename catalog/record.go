package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
)

// Records are JSON, and JSON strings are UTF-8: encoding/json writes each
// byte of a Go string that is not valid UTF-8 as U+FFFD. But a Linux file
// name is any bytes but NUL and '/', so a name stored that way would come
// back as another name, and nothing could be found under it any more.
//
// So a record whose string fields (names, paths, symlink targets, tags, the
// cache directory an entry was sealed from) are not all valid UTF-8
// carries their exact bytes as well, in one more member:
//
//	{"name":"x\ufffd", ..., "raw":{"name":"eP8="}}
//
// "raw" maps the JSON names of such fields to their bytes (base64). The
// usual member keeps the replaced text, so a person reading the database,
// or an older tapefs, still sees something close. Records whose strings are
// valid UTF-8 — nearly all — are exactly what encoding/json writes.
const rawMember = "raw"

// rawMemberKey is how the member's key appears in a record; only a record
// holding it is decoded a second time.
var rawMemberKey = []byte(`"` + rawMember + `":`)

// stringFields lists, per record type, the top-level string fields and
// their JSON names (computed once per type).
var stringFields sync.Map // reflect.Type -> []stringField

type stringField struct {
	index int
	name  string
}

func fieldsOf(t reflect.Type) []stringField {
	if v, ok := stringFields.Load(t); ok {
		return v.([]stringField)
	}
	var out []stringField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type.Kind() != reflect.String || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == rawMember {
			panic(fmt.Sprintf("catalog: field %s.%s is named %q, the member that keeps exact bytes", t, f.Name, rawMember))
		}
		out = append(out, stringField{i, name})
	}
	stringFields.Store(t, out)
	return out
}

// structOf is the struct a record pointer points to (invalid for anything
// else, which is encoded as plain JSON).
func structOf(v any) reflect.Value {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return reflect.Value{}
	}
	return rv.Elem()
}

// encodeRecord is json.Marshal of a record (a pointer to a struct), plus
// the exact bytes of its string fields that are not valid UTF-8.
func encodeRecord(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	sv := structOf(v)
	if !sv.IsValid() {
		return data, nil
	}
	var raw map[string][]byte
	for _, f := range fieldsOf(sv.Type()) {
		if s := sv.Field(f.index).String(); !utf8.ValidString(s) {
			if raw == nil {
				raw = map[string][]byte{}
			}
			raw[f.name] = []byte(s)
		}
	}
	if raw == nil {
		return data, nil
	}
	extra, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	if len(data) < 2 || data[len(data)-1] != '}' {
		return nil, fmt.Errorf("catalog: record of type %s is not a JSON object", sv.Type())
	}
	out := make([]byte, 0, len(data)+len(rawMemberKey)+len(extra)+1)
	out = append(out, data[:len(data)-1]...)
	if len(data) > 2 {
		out = append(out, ',')
	}
	out = append(out, rawMemberKey...)
	out = append(out, extra...)
	return append(out, '}'), nil
}

// decodeRecord is json.Unmarshal of a record written by encodeRecord: the
// exact bytes, where the record has them, replace the UTF-8 text.
func decodeRecord(data []byte, v any) error {
	if f, ok := v.(*File); ok && decodeFileRecord(data, f) {
		return nil
	}
	return decodeRecordJSON(data, v)
}

// decodeRecordJSON is decodeRecord with encoding/json alone.
func decodeRecordJSON(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return err
	}
	if !bytes.Contains(data, rawMemberKey) {
		return nil
	}
	sv := structOf(v)
	if !sv.IsValid() {
		return nil
	}
	var holder struct {
		Raw map[string][]byte `json:"raw"`
	}
	if err := json.Unmarshal(data, &holder); err != nil {
		return fmt.Errorf("member %q: %w", rawMember, err)
	}
	// Exact bytes of a field this version does not know are ignored, as
	// JSON decoding ignores unknown members.
	for _, f := range fieldsOf(sv.Type()) {
		if b, ok := holder.Raw[f.name]; ok {
			sv.Field(f.index).SetString(string(b))
		}
	}
	return nil
}

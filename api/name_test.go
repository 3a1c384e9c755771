package api

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

var nameSeeds = []string{"", "a", "run1234/a.dat", "x\xff", "caf\xc3\xa9", "lat\xe9n1", "\xc3", "\xed\xa0\x80", "\ufffd",
	"tab\there", "new\nline", "back\\slash", `{"base64":"eP8="}`, "\x01\x7f"}

// TestNameWire: a UTF-8 name is a plain string on the wire, any other an
// object with its bytes; both come back exact.
func TestNameWire(t *testing.T) {
	for _, c := range []struct{ name, wire string }{
		{"a.dat", `"a.dat"`},
		{"caf\xc3\xa9", `"café"`},
		{"x\xff", `{"base64":"eP8="}`},
		{`{"base64":"eP8="}`, `"{\"base64\":\"eP8=\"}"`},
	} {
		b, err := json.Marshal(Name(c.name))
		if err != nil || string(b) != c.wire {
			t.Errorf("%q: wire %s, %v; want %s", c.name, b, err, c.wire)
		}
		var n Name
		if err := json.Unmarshal(b, &n); err != nil || string(n) != c.name {
			t.Errorf("%s: read %q, %v; want %q", b, n, err, c.name)
		}
	}
	for _, bad := range []string{`{}`, `{"base64":"!"}`, `{"base64":"eP8=","x":1}`, `1`, `[]`, `{"base64":null}`} {
		var n Name
		if err := json.Unmarshal([]byte(bad), &n); err == nil {
			t.Errorf("%s: read as %q, want an error", bad, n)
		}
	}
}

// TestFileInfoWire: a listed file's name, path and target cross the wire
// byte for byte, and its other fields as before.
func TestFileInfoWire(t *testing.T) {
	in := FileInfo{ID: 9, Batch: 2, Name: "x\xff", Path: "d\xfe/x\xff", Type: TypeSymlink,
		Target: "../\x80", MD5: "abc", Copies: []Copy{{VOLSER: "TF0001", TapeFile: 3}}, State: "online"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(b) || !strings.Contains(string(b), `"state":"online"`) || !strings.Contains(string(b), `"volser":"TF0001"`) {
		t.Errorf("wire form %s", b)
	}
	var out FileInfo
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Name != in.Name || out.Path != in.Path || out.Target != in.Target || out.State != in.State || out.ID != 9 ||
		out.MD5 != "abc" || len(out.Copies) != 1 || out.Copies[0].TapeFile != 3 {
		t.Errorf("read back %+v, want %+v", out, in)
	}
	// A slice, as the server sends it.
	b, _ = json.Marshal([]FileInfo{in, in})
	var outs []FileInfo
	if err := json.Unmarshal(b, &outs); err != nil || len(outs) != 2 || outs[1].Path != in.Path {
		t.Errorf("slice: %+v, %v", outs, err)
	}
}

// FuzzName: any name (any bytes: the wire does not judge what Linux
// allows) crosses the wire exact, as valid UTF-8 JSON; any JSON a client
// sends either is refused or reads as a name that goes back the same way.
func FuzzName(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
		b, _ := json.Marshal(Name(s))
		f.Add(string(b))
	}
	f.Add(`{"base64":"eP8="}`)
	f.Add(`{"base64":null}`)
	f.Add(` "a" `)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, s string) {
		b, err := json.Marshal(Name(s))
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if !utf8.Valid(b) {
			t.Fatalf("%q: wire form %q is not UTF-8", s, b)
		}
		var n Name
		if err := json.Unmarshal(b, &n); err != nil || string(n) != s {
			t.Fatalf("%q: wire %s reads as %q, %v", s, b, n, err)
		}
		// s as JSON from a client.
		var m Name
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return
		}
		b, err = json.Marshal(m)
		if err != nil {
			t.Fatalf("%q read as %q does not marshal: %v", s, m, err)
		}
		var m2 Name
		if err := json.Unmarshal(b, &m2); err != nil || m2 != m {
			t.Fatalf("%q read as %q: wire %s reads as %q, %v", s, m, b, m2, err)
		}
	})
}

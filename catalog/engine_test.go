package catalog

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// engines returns a constructor for each Engine, so every engine test runs
// against all of them.
func engines(t *testing.T) map[string]func() Engine {
	return map[string]func() Engine{
		"memory": NewMemoryEngine,
		"bolt": func() Engine {
			eng, err := OpenBoltEngine(filepath.Join(t.TempDir(), "kv.db"))
			if err != nil {
				panic(err) // no *testing.T of the subtest here
			}
			t.Cleanup(func() { eng.Close() })
			return eng
		},
	}
}

func TestEngine(t *testing.T) {
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) { testEngine(t, newEngine) })
	}
}

func testEngine(t *testing.T, newEngine func() Engine) {
	keys := []string{"a", "a\x00", "a\x01", "ab", "abc", "abd", "b", "b\xff", "b\xff\xff", "b\xff\xffz", "c"}
	filled := func(t *testing.T) Engine {
		eng := newEngine()
		err := eng.Update(func(kv KVTxn) error {
			// Inserted in a shuffled order: the engine sorts.
			for i := range keys {
				k := keys[(i*7)%len(keys)]
				if err := kv.Put([]byte(k), []byte("v"+k)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}
	scan := func(t *testing.T, eng Engine, prefix, from string, fromNil, reverse bool, max int) []string {
		t.Helper()
		var got []string
		var f []byte
		if !fromNil {
			f = []byte(from)
		}
		err := eng.View(func(kv KVTxn) error {
			return kv.Scan([]byte(prefix), f, reverse, func(k, v []byte) (bool, error) {
				if string(v) != "v"+string(k) {
					return false, fmt.Errorf("value of %q is %q", k, v)
				}
				got = append(got, string(k))
				return max == 0 || len(got) < max, nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	t.Run("scan", func(t *testing.T) {
		eng := filled(t)
		cases := []struct {
			name         string
			prefix, from string
			fromNil, rev bool
			max          int
			want         []string
		}{
			{"all", "", "", true, false, 0, keys},
			{"all reverse", "", "", true, true, 0, reversed(keys)},
			{"prefix", "a", "", true, false, 0, []string{"a", "a\x00", "a\x01", "ab", "abc", "abd"}},
			{"prefix reverse", "a", "", true, true, 0, []string{"abd", "abc", "ab", "a\x01", "a\x00", "a"}},
			{"prefix ab", "ab", "", true, false, 0, []string{"ab", "abc", "abd"}},
			{"from inside", "a", "ab", false, false, 0, []string{"ab", "abc", "abd"}},
			{"from between", "a", "aa", false, false, 0, []string{"ab", "abc", "abd"}},
			{"from before prefix", "ab", "a", false, false, 0, []string{"ab", "abc", "abd"}},
			{"from past prefix", "a", "b", false, false, 0, nil},
			{"reverse from exact", "a", "ab", false, true, 0, []string{"ab", "a\x01", "a\x00", "a"}},
			{"reverse from between", "a", "abca", false, true, 0, []string{"abc", "ab", "a\x01", "a\x00", "a"}},
			{"reverse from past prefix", "a", "zz", false, true, 0, []string{"abd", "abc", "ab", "a\x01", "a\x00", "a"}},
			{"reverse from before prefix", "ab", "a\x01", false, true, 0, nil},
			{"prefix ending in 0xff", "b\xff", "", true, false, 0, []string{"b\xff", "b\xff\xff", "b\xff\xffz"}},
			{"reverse prefix ending in 0xff", "b\xff", "", true, true, 0, []string{"b\xff\xffz", "b\xff\xff", "b\xff"}},
			{"reverse prefix all 0xff", "\xff", "", true, true, 0, nil},
			{"reverse to the end", "c", "", true, true, 0, []string{"c"}},
			{"missing prefix", "d", "", true, false, 0, nil},
			{"missing prefix reverse", "d", "", true, true, 0, nil},
			{"reverse prefix before end key", "b", "", true, true, 0, []string{"b\xff\xffz", "b\xff\xff", "b\xff", "b"}},
			{"stop early", "", "", true, false, 2, []string{"a", "a\x00"}},
			{"stop early reverse", "", "", true, true, 2, []string{"c", "b\xff\xffz"}},
		}
		for _, c := range cases {
			got := scan(t, eng, c.prefix, c.from, c.fromNil, c.rev, c.max)
			if !slices.Equal(got, c.want) {
				t.Errorf("%s: got %q, want %q", c.name, got, c.want)
			}
		}
	})

	t.Run("empty store", func(t *testing.T) {
		eng := newEngine()
		if got := scan(t, eng, "", "", true, false, 0); got != nil {
			t.Errorf("forward: %q", got)
		}
		if got := scan(t, eng, "a", "x", false, true, 0); got != nil {
			t.Errorf("reverse: %q", got)
		}
	})

	t.Run("get put delete", func(t *testing.T) {
		eng := filled(t)
		err := eng.Update(func(kv KVTxn) error {
			if v, err := kv.Get([]byte("zz")); v != nil || err != nil {
				return fmt.Errorf("absent key: %q, %v", v, err)
			}
			buf := []byte("first")
			if err := kv.Put([]byte("zz"), buf); err != nil {
				return err
			}
			copy(buf, "XXXXX") // the engine must have kept its own copy
			if v, _ := kv.Get([]byte("zz")); string(v) != "first" {
				return fmt.Errorf("own write: %q", v)
			}
			if err := kv.Delete([]byte("abc")); err != nil {
				return err
			}
			return kv.Delete([]byte("not there"))
		})
		if err != nil {
			t.Fatal(err)
		}
		err = eng.View(func(kv KVTxn) error {
			if v, _ := kv.Get([]byte("zz")); string(v) != "first" {
				return fmt.Errorf("committed write: %q", v)
			}
			if v, _ := kv.Get([]byte("abc")); v != nil {
				return fmt.Errorf("deleted key: %q", v)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("rollback on error", func(t *testing.T) {
		eng := filled(t)
		boom := errors.New("boom")
		err := eng.Update(func(kv KVTxn) error {
			for _, k := range []string{"new", "a", "abd"} {
				if err := kv.Put([]byte(k), []byte("changed")); err != nil {
					return err
				}
			}
			if err := kv.Delete([]byte("b")); err != nil {
				return err
			}
			if err := kv.Put([]byte("new"), []byte("twice")); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update returned %v", err)
		}
		if got := scan(t, eng, "", "", true, false, 0); !slices.Equal(got, keys) {
			t.Errorf("after rollback: %q", got)
		}
	})

	t.Run("rollback on panic", func(t *testing.T) {
		eng := filled(t)
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the panic was swallowed")
				}
			}()
			eng.Update(func(kv KVTxn) error {
				kv.Put([]byte("new"), []byte("x"))
				kv.Delete([]byte("a"))
				panic("boom")
			})
		}()
		if got := scan(t, eng, "", "", true, false, 0); !slices.Equal(got, keys) {
			t.Errorf("after rollback: %q", got)
		}
	})

	t.Run("view is read-only", func(t *testing.T) {
		eng := filled(t)
		err := eng.View(func(kv KVTxn) error { return kv.Put([]byte("x"), []byte("y")) })
		if err == nil {
			t.Error("Put in View succeeded")
		}
	})

	t.Run("scan error", func(t *testing.T) {
		eng := filled(t)
		boom := errors.New("boom")
		err := eng.View(func(kv KVTxn) error {
			return kv.Scan(nil, nil, false, func(k, v []byte) (bool, error) { return true, boom })
		})
		if !errors.Is(err, boom) {
			t.Errorf("got %v", err)
		}
	})
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

// TestMemoryEngineChunks drives the memory engine past its chunk size, in
// and out of order, and checks it against a plain sorted slice.
func TestMemoryEngineChunks(t *testing.T) {
	eng := NewMemoryEngine()
	var want []string
	err := eng.Update(func(kv KVTxn) error {
		for i := range 5000 {
			k := fmt.Sprintf("k%05d", (i*7919)%5000)
			want = append(want, k)
			if err := kv.Put([]byte(k), []byte(k)); err != nil {
				return err
			}
		}
		for i := 0; i < 5000; i += 3 {
			if err := kv.Delete(fmt.Appendf(nil, "k%05d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	want = slices.DeleteFunc(want, func(k string) bool {
		var n int
		fmt.Sscanf(k, "k%05d", &n)
		return n%3 == 0
	})
	var got, gotRev []string
	eng.View(func(kv KVTxn) error {
		kv.Scan([]byte("k"), nil, false, func(k, _ []byte) (bool, error) {
			got = append(got, string(k))
			return true, nil
		})
		return kv.Scan([]byte("k"), nil, true, func(k, _ []byte) (bool, error) {
			gotRev = append(gotRev, string(k))
			return true, nil
		})
	})
	if !slices.Equal(got, want) {
		t.Errorf("forward scan: %d keys, want %d", len(got), len(want))
	}
	if !slices.Equal(gotRev, reversed(want)) {
		t.Errorf("reverse scan: %d keys, want %d", len(gotRev), len(want))
	}
}

// TestMemoryEngineWriteInScan: a write inside a scan would move the scan's
// position; the memory engine refuses it, so catalog code that does it is
// caught by the fast tests.
func TestMemoryEngineWriteInScan(t *testing.T) {
	eng := NewMemoryEngine()
	err := eng.Update(func(kv KVTxn) error {
		kv.Put([]byte("a"), nil)
		return kv.Scan(nil, nil, false, func(k, _ []byte) (bool, error) {
			return false, kv.Delete(k)
		})
	})
	if !errors.Is(err, errWriteInScan) {
		t.Errorf("got %v", err)
	}
}

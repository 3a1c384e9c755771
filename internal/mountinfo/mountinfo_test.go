package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	if got := Unescape(`/tmp/a\040b\134c`); got != `/tmp/a b\c` {
		t.Errorf("unescape: %q", got)
	}
	if got := Unescape(`/tmp/plain`); got != `/tmp/plain` {
		t.Errorf("unescape: %q", got)
	}
}

func TestLookup(t *testing.T) {
	if _, ok := Lookup("/"); !ok {
		t.Errorf("/ is not a mount point?")
	}
	if _, ok := Lookup("/no/such/mount/point"); ok {
		t.Errorf("a missing path is a mount point?")
	}
}

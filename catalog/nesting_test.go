package catalog

import (
	"strings"
	"testing"
)

// TestNestedTransactionPanics: with the check on, a transaction opened
// inside another on the same goroutine panics naming both; transactions one
// after another, and at once on other goroutines, do not.
func TestNestedTransactionPanics(t *testing.T) {
	old := nestingCheck
	nestingCheck = true
	defer func() { nestingCheck = old }()
	c, err := New(NewMemoryEngine())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := c.View(func(*Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	if err := c.View(func(*Tx) error {
		go func() {
			defer close(done)
			if err := c.View(func(*Tx) error { return nil }); err != nil {
				t.Error(err)
			}
		}()
		<-done
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			p := recover()
			if s, _ := p.(string); !strings.Contains(s, "inside another") || !strings.Contains(s, "--- outer:") {
				t.Errorf("a View inside an Update: recovered %v, want the nesting panic", p)
			}
		}()
		c.Update(func(*Tx) error {
			return c.View(func(*Tx) error { return nil })
		})
	}()
	// The outer transaction's mark went with its panic.
	if err := c.View(func(*Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

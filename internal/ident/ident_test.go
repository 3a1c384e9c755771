package ident

import "testing"

func TestNames(t *testing.T) {
	if got := User(0); got != "root" {
		t.Errorf("User(0) = %q, want root", got)
	}
	if got := Group(0); got != "root" {
		t.Errorf("Group(0) = %q, want root", got)
	}
	if got := UserText(0); got != "root (uid 0)" {
		t.Errorf("UserText(0) = %q", got)
	}
	const none = 3999999991
	if got := User(none); got != "3999999991" {
		t.Errorf("User of a uid without a name = %q, want the number", got)
	}
	if got := UserText(none); got != "uid 3999999991" {
		t.Errorf("UserText of a uid without a name = %q", got)
	}
	if got := GroupText(none); got != "gid 3999999991" {
		t.Errorf("GroupText of a gid without a name = %q", got)
	}
}

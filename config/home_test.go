package config

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaultHomeXDG(t *testing.T) {
	home := func() (string, error) { return "/home/alice", nil }
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		name string
		euid int
		env  map[string]string
		home func() (string, error)
		want string
	}{
		{"root ignores XDG", 0, map[string]string{"XDG_DATA_HOME": "/x"}, home, "/var/lib/tapefs"},
		{"XDG_DATA_HOME set", 1000, map[string]string{"XDG_DATA_HOME": "/data/alice"}, home, "/data/alice/tapefs"},
		{"XDG_DATA_HOME relative is invalid", 1000, map[string]string{"XDG_DATA_HOME": "rel"}, home, "/home/alice/.local/share/tapefs"},
		{"XDG unset", 1000, nil, home, "/home/alice/.local/share/tapefs"},
		{"no home at all", 1000, nil, func() (string, error) { return "", errors.New("no HOME") }, "tapefs"},
	}
	for _, c := range cases {
		if got := homeFor(c.euid, env(c.env), c.home); got != c.want {
			t.Errorf("%s: home %q, want %q", c.name, got, c.want)
		}
	}
}

// The user's configuration is read from the XDG configuration directory
// and from ~/.tapefs.conf, that one last (it wins).
func TestConfigFilesXDG(t *testing.T) {
	home := func() (string, error) { return "/home/u", nil }
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		env  map[string]string
		want []string
	}{
		{nil, []string{"/etc/tapefs.conf", "/home/u/.config/tapefs/tapefs.conf", "/home/u/.tapefs.conf"}},
		{map[string]string{"XDG_CONFIG_HOME": "/xdg"}, []string{"/etc/tapefs.conf", "/xdg/tapefs/tapefs.conf", "/home/u/.tapefs.conf"}},
		{map[string]string{"XDG_CONFIG_HOME": "rel"}, []string{"/etc/tapefs.conf", "/home/u/.config/tapefs/tapefs.conf", "/home/u/.tapefs.conf"}},
		{map[string]string{"TAPEFS_USER_CONFIG": "/u.conf", "TAPEFS_SYSTEM_CONFIG": "/s.conf"}, []string{"/s.conf", "/u.conf"}},
	} {
		if got := filesFor(env(tc.env), home); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("env %v: %q, want %q", tc.env, got, tc.want)
		}
	}
}

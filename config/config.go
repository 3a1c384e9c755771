// Package config owns tapefs's configuration files: the INI format
// (compatible in spirit with Elastic Tape's: "[Batch] Workspace = NAME"),
// where they are (/etc/tapefs.conf, then ~/.tapefs.conf), and the value
// syntax shared by files, environment and flags (sizes, durations).
//
// Precedence, lowest to highest: /etc/tapefs.conf, ~/.tapefs.conf, the
// TAPEFS_* environment variables, the flags. Callers apply the layers in
// that order; this package reads them and names file and line in errors.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
)

// Entry is one KEY = VALUE line of a file.
type Entry struct {
	File    string
	Line    int
	Section string // lower case
	Key     string // lower case
	Value   string
}

// Where names the entry's place for messages.
func (e Entry) Where() string { return fmt.Sprintf("%s:%d", e.File, e.Line) }

// ReadINI reads an INI file (see ParseINI).
func ReadINI(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseINI(f, path)
}

// maxINILine bounds a line of a configuration file; a longer one is
// not configuration (a binary file named by mistake).
const maxINILine = 64 << 10

// ParseINI reads INI text; name is the file's name for messages. Blank
// lines and lines starting with # or ; are skipped. A ; or # after a blank
// starts a comment to the end of the line, also after a section header or
// a value, so that "Workspace = gws ; the run's" is gws, as in Elastic
// Tape's files; a value that must hold " ;" is quoted ("a ; b"). Keys and
// sections are case-insensitive. A malformed line is an error naming file
// and line.
func ParseINI(r io.Reader, name string) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxINILine)
	section := ""
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' || text[0] == ';' {
			continue
		}
		if text[0] == '[' {
			end := strings.IndexByte(text, ']')
			if end < 0 {
				return out, fmt.Errorf("%s:%d: malformed section header %q (expected [Name])", name, line, text)
			}
			if rest := strings.TrimSpace(text[end+1:]); rest != "" && rest[0] != '#' && rest[0] != ';' {
				return out, fmt.Errorf("%s:%d: malformed section header %q: only a ; or # comment may follow the ]", name, line, text)
			}
			section = strings.ToLower(strings.TrimSpace(text[1:end]))
			if section == "" {
				return out, fmt.Errorf("%s:%d: empty section name %q", name, line, text)
			}
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok {
			return out, fmt.Errorf("%s:%d: expected KEY = VALUE, got %q", name, line, text)
		}
		if key == "" {
			return out, fmt.Errorf("%s:%d: a value without a key: %q", name, line, text)
		}
		if strings.ContainsFunc(key, unicode.IsSpace) {
			return out, fmt.Errorf("%s:%d: malformed key %q: a key is one word (KEY = VALUE)", name, line, key)
		}
		out = append(out, Entry{File: name, Line: line, Section: section, Key: key, Value: iniValue(value)})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return out, fmt.Errorf("%s:%d: line longer than %d bytes: not a configuration file", name, line+1, maxINILine)
		}
		return out, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// iniValue is the value after a key's "=": without blanks around it,
// without a comment (a ; or # after a blank), and without its quotes if it
// is quoted ("..." followed by nothing or a comment).
func iniValue(raw string) string {
	v := strings.TrimSpace(raw)
	if len(v) >= 2 && v[0] == '"' {
		if end := strings.IndexByte(v[1:], '"'); end >= 0 {
			if rest := strings.TrimLeft(v[end+2:], " \t"); rest == "" || rest[0] == ';' || rest[0] == '#' {
				return v[1 : end+1]
			}
		}
	}
	if i := commentAt(raw); i >= 0 {
		raw = raw[:i]
	}
	return strings.TrimSpace(raw)
}

// commentAt is the index of the first ; or # that follows a blank in s,
// or -1.
func commentAt(s string) int {
	for i := 1; i < len(s); i++ {
		if (s[i] == ';' || s[i] == '#') && (s[i-1] == ' ' || s[i-1] == '\t') {
			return i
		}
	}
	return -1
}

// Files are the configuration files in precedence order (lowest first):
// /etc/tapefs.conf, the user's file in the XDG configuration directory
// ($XDG_CONFIG_HOME/tapefs/tapefs.conf, by default
// ~/.config/tapefs/tapefs.conf), then ~/.tapefs.conf. TAPEFS_SYSTEM_CONFIG
// and TAPEFS_USER_CONFIG replace them (TAPEFS_USER_CONFIG both user
// files; for tests and unusual installs).
func Files() []string {
	return filesFor(os.Getenv, os.UserHomeDir)
}

func filesFor(getenv func(string) string, userHome func() (string, error)) []string {
	sys := "/etc/tapefs.conf"
	if v := getenv("TAPEFS_SYSTEM_CONFIG"); v != "" {
		sys = v
	}
	if user := getenv("TAPEFS_USER_CONFIG"); user != "" {
		return []string{sys, user}
	}
	out := []string{sys}
	home, err := userHome()
	// A relative XDG_CONFIG_HOME is invalid (the specification) and ignored.
	if x := getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		out = append(out, filepath.Join(x, "tapefs", "tapefs.conf"))
	} else if err == nil {
		out = append(out, filepath.Join(home, ".config", "tapefs", "tapefs.conf"))
	}
	if err == nil {
		out = append(out, filepath.Join(home, ".tapefs.conf"))
	}
	return out
}

// ReadAll reads every existing file of Files (missing ones are skipped).
func ReadAll(files []string) ([]Entry, error) {
	var all []Entry
	for _, f := range files {
		if f == "" {
			continue
		}
		es, err := ReadINI(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if errors.Is(err, os.ErrPermission) {
			// Not ours to read (a HOME that belongs to someone else, a
			// root-only /etc file): it cannot apply to us.
			continue
		}
		if err != nil {
			return all, err
		}
		all = append(all, es...)
	}
	return all, nil
}

// EnvName is the environment variable of a setting: TAPEFS_ and the key in
// upper case with dashes as underscores ("cache-size" -> TAPEFS_CACHE_SIZE).
func EnvName(key string) string {
	return "TAPEFS_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// ParseSize reads a size in bytes: a number with an optional binary unit,
// K, M, G, T or P (also KB, KiB, ...): "500M", "10G", "1.5T", "0".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "IB"), "B")
	mult := map[string]float64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q (use K, M, G, T or P)", t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || num == "" {
		return 0, errors.New("not a size (examples: 0, 500M, 10G, 1.5T)")
	}
	b := v * mult
	if b > math.MaxInt64 {
		return 0, errors.New("too large")
	}
	return int64(b), nil
}

// Known lists the keys each section may hold; anything else is reported
// as a warning naming file and line.
var Known = map[string][]string{
	"batch":     {"workspace"},
	"directory": {"outputlevel"},
	"daemon": {"home", "catalog", "http", "http-token", "settle", "cache-size", "time-scale", "allow-other", "log-level",
		"drives", "cartridges", "cartridge-size", "flush-age", "recall-linger", "tape-speed", "max-file-size", "retention", "remove-grace", "prefetch", "recall-check", "scrub-rate", "scrub-interval", "verify-period", "repack-below", "aggregate-size",
		"snapshot-every", "snapshot-dir", "recall-workspace-drives", "copies", "recall-workspace-bytes",
		"kernel-cache", "hash-rate", "host-id", "lease", "library", "shared-library"},
}

// Unknown returns a warning for every entry whose section or key is not in
// Known; a section of Elastic Tape's own files (ETFiles) that tapefs does
// not use is skipped silently.
func Unknown(es []Entry) []string {
	var out []string
	for _, e := range es {
		keys, ok := Known[e.Section]
		if !ok && isETFile(e.File) {
			continue
		}
		found := false
		for _, k := range keys {
			found = found || k == e.Key
		}
		if !ok || !found {
			out = append(out, fmt.Sprintf("%s: unknown setting %q in [%s] (ignored)", e.Where(), e.Key, e.Section))
		}
	}
	return out
}

// Lookup returns the last (highest-precedence) entry for section.key.
func Lookup(es []Entry, section, key string) (Entry, bool) {
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Section == section && es[i].Key == key {
			return es[i], true
		}
	}
	return Entry{}, false
}

package cli

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// quoteSeeds are names with every kind of character shellQuote treats
// apart.
var quoteSeeds = []string{"a.dat", "run1234/a.dat", "d e.txt", "it's", "tab\there", "new\nline", "cr\rname",
	"x\xff", "caf\xc3\xa9", "\x01ctl\x7f", "#hash", "mid#h", "~tilde", "mid~t", "a=b", "a{b}", "{", "}", "a\"b",
	"x$y", "a,b", "a:b@c%d+e", "a!b", "-dash", "it's\tx", "back\\slash", "a^b", "q?", "st*r", "[x]", "a]b",
	"a\r\nb", "\xe2\x80\x8b", "\xc2\xa0nbsp", "'", "''", "\xff\xfe", "日本語", "semi;colon", "pi|pe", "a`b`"}

// TestShellQuoteLikeGNULs: names quoted as GNU ls --quoting-style=shell-
// escape quotes them in a UTF-8 locale, except for characters that print
// as nothing (U+200B), which shellQuote escapes.
func TestShellQuoteLikeGNULs(t *testing.T) {
	ls, err := exec.LookPath("ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range quoteSeeds {
		if strings.Contains(name, "/") || name == "\xe2\x80\x8b" {
			continue
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(ls, "--quoting-style=shell-escape", dir)
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ls: %v", err)
		}
		if want, got := strings.TrimSuffix(string(out), "\n"), shellQuote(name); got != want {
			t.Errorf("%q: shellQuote %s, GNU ls %s", name, got, want)
		}
	}
	if got, want := shellQuote("\xe2\x80\x8b"), `''$'\342\200\213'`; got != want {
		t.Errorf("U+200B: %s, want %s", got, want)
	}
}

// TestShellQuoteBash: bash reads every quoted name back as its bytes:
// the seeds and 300 random names of any bytes but NUL.
func TestShellQuoteBash(t *testing.T) {
	names := append([]string{}, quoteSeeds...)
	rng := rand.New(rand.NewPCG(8, 8))
	for range 300 {
		b := make([]byte, 1+rng.IntN(12))
		for i := range b {
			b[i] = byte(1 + rng.IntN(255))
		}
		names = append(names, string(b))
	}
	var script strings.Builder
	for _, n := range names {
		script.WriteString("printf '%s\\0' " + shellQuote(n) + "\n")
	}
	out, err := exec.Command("bash", "-c", script.String()).Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(names) {
		t.Fatalf("bash printed %d names, want %d", len(got), len(names))
	}
	for i, n := range names {
		if got[i] != n {
			t.Errorf("%q quoted as %s reads back as %q", n, shellQuote(n), got[i])
		}
	}
}

// FuzzShellQuote: any name quotes to one line of printable UTF-8 that
// reads back (by the shell's rules for '...', "..." and $'...') as the
// same bytes, and is left as it is only when it needs no quoting.
func FuzzShellQuote(f *testing.F) {
	for _, s := range quoteSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if strings.Contains(name, "\x00") {
			return // not in a name
		}
		q := shellQuote(name)
		if !utf8.ValidString(q) {
			t.Fatalf("%q: quoted %q is not UTF-8", name, q)
		}
		for _, r := range q {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("%q: quoted %q holds a control character", name, q)
			}
		}
		back, err := shellUnquote(q)
		if err != nil || back != name {
			t.Fatalf("%q quoted as %s reads back as %q (%v)", name, q, back, err)
		}
	})
}

// shellUnquote reads one shell word made of bare characters, '...',
// "..." (without expansions) and $'...' with C escapes.
func shellUnquote(s string) (string, error) {
	var b bytes.Buffer
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$'"):
			i += 2
			for {
				if i >= len(s) {
					return "", errors.New("unterminated $'")
				}
				if s[i] == '\'' {
					i++
					break
				}
				if s[i] != '\\' {
					b.WriteByte(s[i])
					i++
					continue
				}
				if i+1 >= len(s) {
					return "", errors.New("backslash at the end")
				}
				if c := strings.IndexByte("abfnrtv", s[i+1]); c >= 0 {
					b.WriteByte("\a\b\f\n\r\t\v"[c])
					i += 2
					continue
				}
				if i+4 > len(s) {
					return "", errors.New("short octal escape")
				}
				v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
				if err != nil {
					return "", err
				}
				b.WriteByte(byte(v))
				i += 4
			}
		case s[i] == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", errors.New("unterminated '")
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 2
		case s[i] == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return "", errors.New(`unterminated "`)
			}
			in := s[i+1 : i+1+j]
			if strings.ContainsAny(in, "$`\\!") {
				return "", errors.New(`an expansion inside "..."`)
			}
			b.WriteString(in)
			i += j + 2
		case s[i] == '\\':
			if i+1 >= len(s) {
				return "", errors.New("backslash at the end")
			}
			b.WriteByte(s[i+1])
			i += 2
		default:
			if strings.IndexByte(" \t\n|&;()<>$`\"*?[!", s[i]) >= 0 || (i == 0 && (s[i] == '#' || s[i] == '~')) {
				return "", errors.New("unquoted special character " + strconv.Quote(s[i:i+1]))
			}
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), nil
}

// TestMD5SumLineGNU: GNU md5sum -c reads back every line md5sumLine
// writes, for names of any bytes; a carriage return is escaped, as
// md5sum itself writes it.
func TestMD5SumLineGNU(t *testing.T) {
	if l := md5sumLine("abc", "cr\rx\xff"); l != "\\abc  cr\\rx\xff" {
		t.Errorf("%q", l)
	}
	dir := t.TempDir()
	var lines strings.Builder
	n := 0
	for _, name := range quoteSeeds {
		if strings.Contains(name, "/") {
			continue
		}
		content := []byte("content of " + name)
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum(content)
		lines.WriteString(md5sumLine(hex.EncodeToString(sum[:]), name) + "\n")
		n++
	}
	cmd := exec.Command("md5sum", "-c", "--strict")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(lines.String())
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), ": OK\n") != n {
		t.Errorf("md5sum -c: %v\n%s\ninput:\n%q", err, out, lines.String())
	}
}

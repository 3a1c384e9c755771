package cli

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// shellQuote writes a file name for a person reading ls output, as GNU ls
// does by default on a terminal (--quoting-style=shell-escape): a name of
// ordinary characters as it is, any other quoted so that it is one word
// that a shell reads back as the same bytes. A tab or newline in a name
// would otherwise break the columns and the lines, and a byte that is not
// UTF-8 would show as nothing or as garbage.
//
//	run1234/a.dat     as it is
//	'd e.txt'         quoted
//	"it's"            a single quote and nothing else special: double quotes
//	'tab'$'\t''x'     control characters in $'...' escapes
//	'x'$'\377'        bytes that are not UTF-8, in octal
//
// Printable non-ASCII characters are written as they are (the output is
// taken to be UTF-8); unlike GNU ls, characters that print as nothing
// (format characters such as U+200B) are escaped too, so that two names
// never look the same.
func shellQuote(name string) string {
	if name == "" {
		return "''"
	}
	needQuotes, allDoubleSafe, singleQuote := false, true, false
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		quote, doubleSafe := quoteClass(name, i, r, size)
		needQuotes = needQuotes || quote
		allDoubleSafe = allDoubleSafe && doubleSafe
		singleQuote = singleQuote || r == '\''
		i += size
	}
	switch {
	case !needQuotes:
		return name
	case singleQuote && allDoubleSafe:
		return `"` + name + `"`
	}
	var b strings.Builder
	b.WriteByte('\'')
	inEscape := false // inside $'...'
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		if printable(r, size) {
			if inEscape {
				b.WriteString(`''`) // end $'...', reopen '...'
				inEscape = false
			}
			if r == '\'' {
				b.WriteString(`'\''`)
			} else {
				b.WriteString(name[i : i+size])
			}
			i += size
			continue
		}
		if !inEscape {
			b.WriteString(`'$'`) // close '...', open $'...'
			inEscape = true
		}
		for _, c := range []byte(name[i : i+size]) {
			b.WriteString(cEscape(c))
		}
		i += size
	}
	// One quote ends '...' or $'...' alike. An escape at the very start
	// leaves an empty '' before it: GNU ls writes ''$'\001''x' too.
	b.WriteByte('\'')
	return b.String()
}

// quoteClass says whether the character r (size bytes at byte i of name)
// makes the name need quotes, and whether it may stand inside double
// quotes unescaped (GNU ls then writes "it's" rather than escape the quote).
func quoteClass(name string, i int, r rune, size int) (quote, doubleSafe bool) {
	if !printable(r, size) {
		return true, false
	}
	if r >= utf8.RuneSelf {
		return false, true
	}
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("%+,-./:@]_", r):
		return false, true
	case r == '{' || r == '}':
		return len(name) == 1, false // special to the shell only alone
	case r == '#' || r == '~':
		if i == 0 {
			return true, true // a comment, a home directory: only first
		}
		return false, false
	case r == ' ' || r == '\'':
		return true, true
	}
	return true, false // ! " $ & ( ) * ; < = > ? [ \ ^ ` |
}

// printable reports whether the character r (size bytes; a byte that is
// not UTF-8 decodes as RuneError of size 1) can be written as it is.
func printable(r rune, size int) bool {
	if r == utf8.RuneError && size <= 1 {
		return false
	}
	if r < utf8.RuneSelf {
		return r >= 0x20 && r < 0x7f
	}
	return unicode.IsGraphic(r)
}

// cEscape is one byte inside $'...': the C escape of a control character
// that has one, else three octal digits.
func cEscape(c byte) string {
	switch c {
	case '\a':
		return `\a`
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	case '\v':
		return `\v`
	}
	return `\` + string([]byte{'0' + c>>6, '0' + c>>3&7, '0' + c&7})
}

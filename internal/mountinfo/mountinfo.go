// Package mountinfo reads /proc/self/mountinfo: whether a path is a mount
// point, and of which file system type. The daemon asks it before mounting
// (a stale tapefs mount is cleared, anything else refused); the end-to-end
// harness asks it to see that a test left no mount behind.
package mountinfo

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Lookup reports whether something is mounted on mnt, and its type.
func Lookup(mnt string) (fstype string, mounted bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source options
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || Unescape(fields[4]) != mnt {
			continue
		}
		fstype := "unknown"
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) {
				fstype = fields[i+1]
				break
			}
		}
		return fstype, true
	}
	return "", false
}

// Unescape undoes the octal escapes (\040 for a space) of a mountinfo
// field.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

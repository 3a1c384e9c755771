package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Feed and entry IDs are tag: URIs (RFC 4151): "tag:" an authority (a
// domain name) "," a date on which the minter held it ":" a specific
// part. An Atom id must never change and must not collide with another
// installation's, so an installation mints its prefix once — the host's
// name, the day, and a random installation ID — and keeps it in its home
// (feedTagFile): renaming the host later does not change published IDs.

// feedTagFile holds the installation's tag: prefix.
const feedTagFile = "feed-tag"

// tagPrefixRE is what RFC 4151 allows of "tag:" taggingEntity ":" (with a
// DNS name as authority).
var tagPrefixRE = regexp.MustCompile(`^tag:[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*,\d{4}(-\d{2}(-\d{2})?)?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]+$`)

// FeedTag returns the installation's tag: prefix from HOME/feed-tag,
// minting it (host name, today, a random ID) on first use.
func FeedTag(home string, now time.Time) (string, error) {
	p := filepath.Join(home, feedTagFile)
	b, err := os.ReadFile(p)
	if err == nil {
		tag := strings.TrimSpace(string(b))
		if !tagPrefixRE.MatchString(tag) {
			return "", fmt.Errorf("%s: %q is not a tag: URI prefix (RFC 4151); remove the file to mint a new one (feed readers then see every entry as new)", p, tag)
		}
		return tag, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	host, _ := os.Hostname()
	tag := MintFeedTag(host, now)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(tag+"\n"), 0o644); err != nil {
		return "", err
	}
	return tag, os.Rename(tmp, p)
}

// MintFeedTag makes a tag: prefix for host (made a valid DNS name) on the
// day of now, with a random installation ID.
func MintFeedTag(host string, now time.Time) string {
	var id [8]byte
	_, _ = rand.Read(id[:])
	return fmt.Sprintf("tag:%s,%s:tapefs-%s", dnsName(host), now.UTC().Format("2006-01-02"), hex.EncodeToString(id[:]))
}

// dnsName turns a host name into a DNS name as RFC 4151 wants it: labels
// of letters, digits and inner hyphens; "localhost" when nothing is left.
func dnsName(host string) string {
	var labels []string
	for _, l := range strings.Split(strings.ToLower(host), ".") {
		l = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
				return r
			}
			return '-'
		}, l)
		if l = strings.Trim(l, "-"); l != "" {
			labels = append(labels, l)
		}
	}
	if len(labels) == 0 {
		return "localhost"
	}
	return strings.Join(labels, ".")
}

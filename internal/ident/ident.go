// Package ident turns the uids and gids the catalog holds into the names a
// person reads, from this machine's user database (cached: a lookup may
// read /etc/passwd or ask NSS). A number without a name stays a number.
package ident

import (
	"fmt"
	"os/user"
	"strconv"
	"sync"
)

var (
	mu     sync.Mutex
	users  = map[uint32]string{}
	groups = map[uint32]string{}
)

// User is the login name of uid, or the number.
func User(uid uint32) string {
	return lookup(users, uid, func(n string) (string, error) {
		u, err := user.LookupId(n)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

// Group is the name of gid, or the number.
func Group(gid uint32) string {
	return lookup(groups, gid, func(n string) (string, error) {
		g, err := user.LookupGroupId(n)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	})
}

func lookup(cache map[uint32]string, id uint32, find func(string) (string, error)) string {
	mu.Lock()
	defer mu.Unlock()
	if n, ok := cache[id]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(id), 10)
	if name, err := find(n); err == nil {
		n = name
	}
	cache[id] = n
	return n
}

// UserText is a user for a sentence: "alice (uid 1000)", or "uid 1000"
// when the number has no name.
func UserText(uid uint32) string {
	if n := User(uid); n != strconv.FormatUint(uint64(uid), 10) {
		return fmt.Sprintf("%s (uid %d)", n, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// GroupText is a group for a sentence: "run3 (gid 1001)", or "gid 1001".
func GroupText(gid uint32) string {
	if n := Group(gid); n != strconv.FormatUint(uint64(gid), 10) {
		return fmt.Sprintf("%s (gid %d)", n, gid)
	}
	return fmt.Sprintf("gid %d", gid)
}

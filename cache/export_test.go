package cache

import "os"

// WaitersForTest is how many WaitRange (or Evict) calls are blocked on the
// recall of object id, so tests can act once they surely wait.
func WaitersForTest(c *Cache, id uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.index.find(id); s != noSlot {
		if p := c.partialLocked(s); p != nil {
			return p.waiters
		}
	}
	return 0
}

func writeFile(path, data string) error { return os.WriteFile(path, []byte(data), 0o644) }

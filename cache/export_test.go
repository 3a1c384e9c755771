package cache

// WaitersForTest is how many WaitRange (or Evict) calls are blocked on the
// recall of object id, so tests can act once they surely wait.
func WaitersForTest(c *Cache, id uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.index[id]; o != nil && o.partial != nil {
		return o.partial.waiters
	}
	return 0
}

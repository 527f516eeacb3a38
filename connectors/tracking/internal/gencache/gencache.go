// Package gencache is the tracking connector's bounded in-memory cache:
// tracked messages by id, and user agents' scoring matches.
package gencache

import "sync"

// Cache is a bounded map with two generations: entries used since the last
// rotation survive the next one. It approximates LRU at O(1) per call
// without per-entry bookkeeping; it holds at most size entries.
type Cache[K comparable, V any] struct {
	mu   sync.Mutex
	half int
	cur  map[K]V
	old  map[K]V
}

// New returns a cache holding at most size entries.
func New[K comparable, V any](size int) *Cache[K, V] {
	half := max(size/2, 1)
	return &Cache[K, V]{half: half, cur: make(map[K]V, half), old: map[K]V{}}
}

// Get returns the value of k, promoting it to the current generation.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	v, ok := c.old[k]
	if ok {
		delete(c.old, k)
		c.putLocked(k, v)
	}
	return v, ok
}

// Add stores v under k unless k is there already; it returns the value
// kept, so concurrent loaders of one key share one value.
func (c *Cache[K, V]) Add(k K, v V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.cur[k]; ok {
		return old
	}
	if old, ok := c.old[k]; ok {
		delete(c.old, k)
		v = old
	}
	c.putLocked(k, v)
	return v
}

// Set stores v under k, replacing any value.
func (c *Cache[K, V]) Set(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.old, k)
	if _, ok := c.cur[k]; ok {
		c.cur[k] = v
		return
	}
	c.putLocked(k, v)
}

func (c *Cache[K, V]) putLocked(k K, v V) {
	if len(c.cur) >= c.half {
		c.old, c.cur = c.cur, make(map[K]V, c.half)
	}
	c.cur[k] = v
}

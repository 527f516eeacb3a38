package telephony

import (
	"sync"
	"time"
)

// Bounds of the call cache: it keeps the calls written in its last two
// generations of maxCachedCalls each (at most twice that many; a call
// still in use moves to the newer generation), and an entry older than
// maxCacheAge is not used (a record that expired and was created again
// could come back at a version this process cached).
const (
	maxCachedCalls = 8192
	maxCacheAge    = time.Hour
)

// callCache keeps the state and record version of the calls this process
// read or wrote last, so that most callbacks can skip reading the call:
// record folds into the cached state and writes it back expecting the
// cached version. The compare-and-set is what makes this safe — it
// succeeds only if the cached state was the stored one. A fold that emits
// events uses the cache only when the intake records them in the same
// atomic step as that compare-and-set (connectors.PutIntake): an event
// must never be recorded on the strength of a state that may be stale.
//
// Evicting by generations rather than emptying the cache when full keeps
// the calls in progress: a busy line's callbacks of one call come minutes
// apart, thousands of other calls' between them.
//
// Safe for concurrent use; Calls are immutable once cached (Fold copies).
type callCache struct {
	mu       sync.Mutex
	cur, old map[string]cachedCall
}

type cachedCall struct {
	call    Call
	version int64
	at      time.Time
}

func newCallCache() *callCache {
	return &callCache{cur: map[string]cachedCall{}, old: map[string]cachedCall{}}
}

// get returns the cached state of call id and its version, and false when
// none is cached recently.
func (c *callCache) get(id string, now time.Time) (Call, int64, bool) {
	c.mu.Lock()
	e, ok := c.cur[id]
	if !ok {
		e, ok = c.old[id]
	}
	c.mu.Unlock()
	if !ok || now.Sub(e.at) > maxCacheAge || e.at.Sub(now) > maxCacheAge {
		return Call{}, 0, false
	}
	return e.call, e.version, true
}

// put caches call at version, as of now.
func (c *callCache) put(call Call, version int64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= maxCachedCalls {
		c.old, c.cur = c.cur, make(map[string]cachedCall, maxCachedCalls)
	}
	c.cur[call.ID] = cachedCall{call: call, version: version, at: now}
	delete(c.old, call.ID)
}

// len counts the calls cached.
func (c *callCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}

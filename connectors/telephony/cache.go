package telephony

import (
	"sync"
	"time"
)

// Bounds of the call cache: it is emptied when full, and an entry older
// than maxCacheAge is not used (a record that expired and was created
// again could come back at a version this process cached).
const (
	maxCachedCalls = 4096
	maxCacheAge    = time.Hour
)

// callCache keeps the state and record version of the calls this process
// read or wrote last, so that most callbacks can skip reading the call:
// apply folds into the cached state and writes it back expecting the
// cached version. The compare-and-set is what makes this safe — it
// succeeds only if the cached state was the stored one. A fold that emits
// events uses the cache only when the intake records them in the same
// atomic step as that compare-and-set (connectors.PutIntake): an event
// must never be recorded on the strength of a state that may be stale.
// Safe for concurrent use; Calls are immutable once cached (Fold copies).
type callCache struct {
	mu sync.Mutex
	m  map[string]cachedCall
}

type cachedCall struct {
	call    Call
	version int64
	at      time.Time
}

func newCallCache() *callCache { return &callCache{m: map[string]cachedCall{}} }

// get returns the cached state of call id, or a new call at version 0 (a
// guess that the compare-and-set checks) when none is cached recently.
func (c *callCache) get(id string, now time.Time) (Call, int64) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok || now.Sub(e.at) > maxCacheAge || e.at.Sub(now) > maxCacheAge {
		return Call{ID: id}, 0
	}
	return e.call, e.version
}

// put caches call at version, as of now.
func (c *callCache) put(call Call, version int64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedCalls {
		clear(c.m)
	}
	c.m[call.ID] = cachedCall{call: call, version: version, at: now}
}

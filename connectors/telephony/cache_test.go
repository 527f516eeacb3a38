package telephony

import (
	"fmt"
	"testing"
	"time"
)

// TestCallCacheGenerations: a full cache does not forget the calls in
// progress at once: the newer generation becomes the older, a call put
// again moves to the newer one, and at most two generations are kept.
func TestCallCacheGenerations(t *testing.T) {
	c := newCallCache()
	put := func(id string, v int64) { c.put(Call{ID: id}, v, t0) }
	put("first", 1)
	put("busy", 1)
	for i := range maxCachedCalls - 2 {
		put(fmt.Sprint("a", i), 1)
	}
	put("next", 1) // the first generation is full: it becomes the older
	if _, v, ok := c.get("first", t0); !ok || v != 1 {
		t.Fatalf("first call forgotten when the cache filled (%v, v%d)", ok, v)
	}
	put("busy", 2) // still in use: moves to the newer generation
	for i := range maxCachedCalls {
		put(fmt.Sprint("b", i), 1)
	}
	if _, _, ok := c.get("first", t0); ok {
		t.Error("a call untouched for two generations is still cached")
	}
	if _, v, ok := c.get("busy", t0); !ok || v != 2 {
		t.Errorf("busy call: %v v%d, want cached at version 2", ok, v)
	}
	if n := c.len(); n > 2*maxCachedCalls {
		t.Errorf("%d calls cached, want at most %d", n, 2*maxCachedCalls)
	}
	if _, _, ok := c.get("busy", t0.Add(maxCacheAge+time.Second)); ok {
		t.Error("an entry older than maxCacheAge was used")
	}
}

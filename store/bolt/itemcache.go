package bolt

import (
	"bytes"
	"encoding/json"
	"maps"
	"sync"

	"github.com/stagegate/stagegate/store"
)

// maxCachedItems bounds the item cache; past it an arbitrary entry goes.
const maxCachedItems = 16384

// itemCache keeps decoded items next to the exact bytes they were decoded
// from, so that the engine's reads (Lookup) and writes (ApplyBatch) skip
// the JSON decode of items they saw before.
//
// Invalidation rule: there is none to keep, because an entry is only ever
// used after its bytes compared equal to the item's bytes in the
// transaction at hand (the read's, or the committer's). Any write path may
// change an item without telling the cache; the next use then sees other
// bytes, decodes them and replaces the entry. A stale entry costs one
// decode, never a wrong read or write.
type itemCache struct {
	mu sync.Mutex
	m  map[string]cachedItem
}

type cachedItem struct {
	raw []byte // the stored JSON (owned by the cache, not bbolt's memory)
	it  store.Item
}

func newItemCache() *itemCache { return &itemCache{m: make(map[string]cachedItem)} }

// get returns a copy of the item stored as raw, if the cache holds it.
func (c *itemCache) get(id string, raw []byte) (store.Item, bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok || !bytes.Equal(e.raw, raw) {
		return store.Item{}, false
	}
	it := e.it
	it.Fields = maps.Clone(e.it.Fields)
	return it, true
}

// put remembers it as the decoding of raw, which the cache may keep (the
// caller must not modify it afterwards, and it must not be bbolt's memory).
func (c *itemCache) put(id string, raw []byte, it store.Item) {
	it.Fields = maps.Clone(it.Fields)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; !ok && len(c.m) >= maxCachedItems {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[id] = cachedItem{raw: raw, it: it}
}

// decode returns the item stored as raw (bbolt's memory, valid in the
// transaction only), from the cache when it holds these bytes, else
// decoded and then cached.
func (c *itemCache) decode(id string, raw []byte) (store.Item, error) {
	if it, ok := c.get(id, raw); ok {
		return it, nil
	}
	var it store.Item
	if err := json.Unmarshal(raw, &it); err != nil {
		return store.Item{}, err
	}
	c.put(id, bytes.Clone(raw), it)
	return it, nil
}

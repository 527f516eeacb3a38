package tracking

import (
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/stagegate/stagegate/normalize"
)

// cache is a bounded map with two generations: entries used since the last
// rotation survive the next one. It approximates LRU at O(1) per call
// without per-entry bookkeeping; it holds at most size entries.
type cache[K comparable, V any] struct {
	mu   sync.Mutex
	half int
	cur  map[K]V
	old  map[K]V
}

func newCache[K comparable, V any](size int) *cache[K, V] {
	half := max(size/2, 1)
	return &cache[K, V]{half: half, cur: make(map[K]V, half), old: map[K]V{}}
}

// get returns the value of k, promoting it to the current generation.
func (c *cache[K, V]) get(k K) (V, bool) {
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

// add stores v under k unless k is there already; it returns the value
// kept, so concurrent loaders of one key share one value.
func (c *cache[K, V]) add(k K, v V) V {
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

// set stores v under k, replacing any value.
func (c *cache[K, V]) set(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.old, k)
	if _, ok := c.cur[k]; ok {
		c.cur[k] = v
		return
	}
	c.putLocked(k, v)
}

func (c *cache[K, V]) putLocked(k K, v V) {
	if len(c.cur) >= c.half {
		c.old, c.cur = c.cur, make(map[K]V, c.half)
	}
	c.cur[k] = v
}

// maxRecent bounds the hits a message remembers for scoring.
const maxRecent = 64

// msgState is a cached message with what the hit paths remember of it.
// msg never changes once loaded; the rest is guarded by mu.
type msgState struct {
	msg      *msgRecord
	idPrefix string    // "<connector>:<message>:" of its event ids
	openIDs  [2]string // openEventID, human and machine
	hitsKey  string    // key of the message's hit list

	sync sync.Mutex // held by the one request catching up with the store

	mu       sync.Mutex
	sentAt   time.Time       // send time, else the time prepared
	recent   []recentHit     // a ring of at most maxRecent hits
	next     int             // where the ring writes once full
	lastSeq  int64           // catch-up cursor: hits up to it are in recent
	syncedAt time.Time       // last catch-up
	maxSeq   int64           // highest sequence seen: the list's length, at least
	own      map[int64]bool  // sequences of hits this process appended past lastSeq
	fired    map[string]bool // event ids known durable
}

func newMsgState(connector, hitsKey string, m *msgRecord) *msgState {
	s := &msgState{msg: m, idPrefix: normalize.MakeID(connector, m.ID) + ":", hitsKey: hitsKey,
		sentAt: m.SentAt, own: map[int64]bool{}, fired: map[string]bool{}}
	s.openIDs = [2]string{s.idPrefix + "open:" + class(false), s.idPrefix + "open:" + class(true)}
	if s.sentAt.IsZero() {
		s.sentAt = m.CreatedAt
	}
	return s
}

// remember adds a hit; the caller holds mu.
func (s *msgState) remember(h recentHit) {
	if len(s.recent) < maxRecent {
		s.recent = append(s.recent, h)
		return
	}
	s.recent[s.next] = h
	s.next = (s.next + 1) % maxRecent
}

// recentOf converts a stored hit for scoring.
func recentOf(m *msgRecord, h *scoredHit) recentHit {
	l, _ := m.link(h.Link)
	return recentHit{at: h.At.UnixNano(), click: h.Kind == kindClick, link: h.Link, honeypot: l.Honeypot,
		client: clientKey(h.IP, h.UA), score: h.Score}
}

// clientSeed keys client hashes; they never leave the process.
var clientSeed = maphash.MakeSeed()

// clientKey identifies a client (address and user agent) by a hash.
func clientKey(ip, ua string) uint64 {
	var h maphash.Hash
	h.SetSeed(clientSeed)
	h.WriteString(ip)
	h.WriteByte(0)
	h.WriteString(ua)
	return h.Sum64()
}

// maxOwn bounds msgState.own; past it the set is dropped (a few hits may
// then be remembered twice, which only makes scoring more suspicious).
const maxOwn = 64

// appended notes that this process stored a hit (already remembered) at
// seq: the catch-up cursor moves over it when nothing else came between,
// else catch-up will skip it.
func (s *msgState) appended(seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxSeq = max(s.maxSeq, seq)
	switch {
	case seq == s.lastSeq+1:
		s.lastSeq = seq
		for s.own[s.lastSeq+1] {
			delete(s.own, s.lastSeq+1)
			s.lastSeq++
		}
	case seq > s.lastSeq:
		if len(s.own) >= maxOwn {
			clear(s.own)
		}
		s.own[seq] = true
	}
}

// openID is openEventID of the message, and clickID clickEventID: the
// same strings (their other parts are always safe id characters), built
// without MakeID's checks on the hot path.
func (s *msgState) openID(machine bool) string {
	if machine {
		return s.openIDs[1]
	}
	return s.openIDs[0]
}

func (s *msgState) clickID(link int, machine bool) string {
	return s.idPrefix + "click:" + strconv.Itoa(link) + ":" + class(machine)
}

// isFired reports whether event id is known to be durable; markFired
// records that it is.
func (s *msgState) isFired(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fired[id]
}

func (s *msgState) markFired(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fired[id] = true
}

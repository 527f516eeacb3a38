package bolt

import (
	"maps"
	"sync"

	"github.com/stagegate/stagegate/normalize"
)

// recentBudget bounds the bytes of encoded event records the recent cache
// holds; past it, new entries are left to be decoded from the file.
const recentBudget = 8 << 20

// recentEvents holds the events appended by this process that ReadLog has
// not handed out yet, by log sequence, so the engine gets them without
// decoding the record the append has just encoded.
//
// Invalidation rule: an entry is put inside the write transaction that
// gives the event its sequence, and taken (removed) by readNext when the
// log cursor passes that sequence, whether or not it was used. A
// transaction that fails and is rerun may hand the same sequence to
// another append, which puts its own entry (or, for an event it does not
// cache, clears the old one); the last put at a sequence is therefore the
// committed append's. readNext uses an entry only when the log entry at
// that sequence names the record of that append (its record sequence is
// the sequence itself; RetryEvent's entries name an older record), and
// decodes the record otherwise. An entry of a transaction that never
// committed cannot stay for good: a rolled-back transaction rolls the
// log's sequence back too, so its sequence is handed out again, and
// readNext takes it when it gets there.
// The cache starts empty on Open.
type recentEvents struct {
	mu    sync.Mutex
	m     map[uint64]recentEvent
	bytes int
}

type recentEvent struct {
	ev   normalize.Event
	size int
}

func newRecentEvents() *recentEvents {
	return &recentEvents{m: map[uint64]recentEvent{}}
}

// put remembers ev (a copy the store owns) at seq; size is the length of
// its encoded record. A nil ev, or one over the budget, only forgets what
// seq held.
func (r *recentEvents) put(seq uint64, ev *normalize.Event, size int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.m[seq]; ok {
		r.bytes -= old.size
	}
	if ev == nil || r.bytes+size > recentBudget {
		delete(r.m, seq)
		return
	}
	r.m[seq] = recentEvent{ev: *ev, size: size}
	r.bytes += size
}

// take removes the entry at seq and returns it if the log entry there
// names the record appended at seq (rseq == seq).
func (r *recentEvents) take(seq, rseq uint64) (normalize.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[seq]
	if !ok {
		return normalize.Event{}, false
	}
	delete(r.m, seq)
	r.bytes -= e.size
	return e.ev, rseq == seq
}

// len reports how many entries are held, for tests.
func (r *recentEvents) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// copyEvent returns a copy of ev that shares nothing mutable with it, as
// the JSON round trip through the file would: the caller may go on using
// its own event, and the engine may keep the one it is handed.
func copyEvent(ev *normalize.Event) *normalize.Event {
	c := *ev
	c.OccurredAt = c.OccurredAt.Round(0)
	c.ReceivedAt = c.ReceivedAt.Round(0)
	if len(ev.Attrs) > 0 {
		c.Attrs = maps.Clone(ev.Attrs)
	} else {
		c.Attrs = nil
	}
	if len(ev.Warnings) > 0 {
		c.Warnings = append([]string(nil), ev.Warnings...)
	} else {
		c.Warnings = nil
	}
	if len(ev.Raw) > 0 {
		c.Raw = append([]byte(nil), ev.Raw...)
	} else {
		c.Raw = nil
	}
	return &c
}

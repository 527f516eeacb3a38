package store

import (
	"context"
	"time"
)

// The engine applies the log in batches: it reads what the log holds, looks
// up every item and identity the batch names in one Lookup, decides every
// event in memory, and writes the whole batch — moves, decisions, timeline
// entries, outbox entries and acknowledgements — in one ApplyBatch. A driver
// makes ApplyBatch one transaction (bolt: one fsync) or one round trip
// (redis: a pipeline of scripts, each keeping the per-item compare-and-set).

// LookupRequest names what a batch of events needs to read.
type LookupRequest struct {
	ItemIDs    []string   // items named by the events' subjects
	Identities []Identity // identities whose contacts, and those contacts' items, are wanted
}

// LookupResult is what Lookup found. Unknown ids and identities are absent.
type LookupResult struct {
	Items    map[string]Item     // by item id: the named items and every contact's items
	Contacts map[Identity]string // identity → id of the contact owning it
	// ContactItems lists each found contact's items, oldest first (at most
	// MaxContactItems of them).
	ContactItems map[string][]string
}

// MaxContactItems bounds how many of one contact's items a Lookup returns.
const MaxContactItems = 1000

// ItemMove is the stage change of an ItemWrite.
type ItemMove struct {
	To     string
	Closed bool
	Entry  TimelineEntry // the move's timeline entry (ID required)
	Outbox []OutboxEntry // the entered stage's actions, added pending
}

// ItemWrite is what applying one event does to one item. It holds only if
// the item is still at ExpectVersion (and, for a move, the event was not
// applied to it before); otherwise nothing of it is written.
type ItemWrite struct {
	ItemID        string
	ExpectVersion int64
	// Move, when set, moves the item: version + 1, stage, closed, the
	// timeline entry, the applied marker and the outbox entries. Its
	// decisions replace any stored for the pair.
	Move *ItemMove
	// Decisions is the verdict for the (event, item) pair. Without a move it
	// is stored only when the pair has none yet (the first verdict wins).
	Decisions ItemDecisions
	// Entry is a timeline entry to add without a move (e.g. a refused
	// chain); nil for none.
	Entry *TimelineEntry
}

// BatchEntry is one event of a batch: its writes, in order, and the outcome
// its log entry is acknowledged with once every write held.
type BatchEntry struct {
	// Entry is the log entry; with an empty Seq the event is not
	// acknowledged (applied directly, not from the log).
	Entry   LogEntry
	Writes  []ItemWrite
	Outcome Outcome
	// Outbox are actions of the event itself, not of a stage entry (a
	// form's autoreply): added pending in the same atomic step as the
	// acknowledgement, and only when the entry is acknowledged. An id
	// already in the outbox is left alone, so applying the event again
	// queues nothing twice.
	Outbox []OutboxEntry
}

// WriteStatus is what became of one ItemWrite.
type WriteStatus uint8

// Write statuses. Every status but WriteConflict counts as done.
const (
	WriteOK             WriteStatus = iota // written
	WriteConflict                          // the item changed: nothing written, the event is not acknowledged
	WriteAlreadyApplied                    // a move of an event applied to the item before: nothing written
	WriteNotFound                          // no such item: nothing written
)

func (s WriteStatus) String() string {
	return [...]string{"ok", "conflict", "already_applied", "not_found"}[s]
}

// BatchResult tells, per entry of the batch, what became of each write and
// whether the entry was acknowledged.
type BatchResult struct {
	Writes [][]WriteStatus
	Acked  []bool
}

// BatchApplier is the batch side of the engine's contract with the store.
type BatchApplier interface {
	// Lookup reads the items and the identities' contacts with their items
	// in one consistent read (bolt: one read transaction; redis: one round
	// trip).
	Lookup(ctx context.Context, req LookupRequest) (LookupResult, error)
	// ApplyBatch writes the batch in entry order, in one atomic step (bolt)
	// or one round trip of per-event atomic steps (redis). Each write is
	// checked and written on its own: a write on an item after a conflicting
	// write on the same item in this batch conflicts too, so later events of
	// an item never build on a state that was not written. An entry is
	// acknowledged (as Ack would, in the same step) only when none of its
	// writes conflicted; the caller re-decides the conflicting items and
	// sends those entries again. An error means nothing can be known of the
	// batch: the caller sends it again, and what was written is recognised
	// (WriteAlreadyApplied, decisions kept).
	ApplyBatch(ctx context.Context, at time.Time, entries []BatchEntry) (BatchResult, error)
}

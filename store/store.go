// Package store defines the storage contract of the gateway: the durable,
// deduplicated intake log, contacts and their identities, items and their
// moves, timelines, and the record of every engine decision. Two drivers
// implement it (store/bolt, the embedded default, and store/redis), and both
// pass the conformance suite in store/storetest.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/stagegate/stagegate/normalize"
)

// Sentinel errors that drive control flow. Drivers wrap them with %w.
var (
	// ErrNotFound: no such record.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the backend cannot be reached or did not answer; the
	// operation may or may not have happened and should be retried. Push
	// connectors answer 503 for it.
	ErrUnavailable = errors.New("store unavailable")
	// ErrConflict: a Move's ExpectVersion no longer matches the item.
	ErrConflict = errors.New("item changed concurrently")
	// ErrAlreadyApplied: a Move names an event already applied to the item.
	ErrAlreadyApplied = errors.New("event already applied to item")
)

// Identity kinds.
const (
	IdentityEmail   = "email"
	IdentityPhone   = "phone"
	IdentityVisitor = "visitor"
)

// Identity is one way to recognize a contact: a lower-cased email address,
// an E.164 phone number or a chat/site visitor id.
type Identity struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// Contact is a person that items belong to.
type Contact struct {
	ID         string     `json:"id"`
	Name       string     `json:"name,omitempty"`
	Identities []Identity `json:"identities,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
}

// Item is a CRM record (lead, deal) at one stage of one pipeline.
type Item struct {
	ID          string            `json:"id"`
	Pipeline    string            `json:"pipeline"`
	Stage       string            `json:"stage"`
	ContactID   string            `json:"contact_id,omitempty"`
	Responsible string            `json:"responsible,omitempty"`
	Closed      bool              `json:"closed"`
	Fields      map[string]string `json:"fields,omitempty"`
	Version     int64             `json:"version"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

// Timeline entry kinds.
const (
	EntryCreated = "created"
	EntryMove    = "move"
	EntryAction  = "action"
	// EntryFieldChanged records one field of an item changed: Field, From
	// and To (a removed field's To is empty), Actor, EventID.
	EntryFieldChanged = "field_changed"
	// EntryResponsibleChanged records a new responsible user: From, To.
	EntryResponsibleChanged = "responsible_changed"
)

// TimelineEntry is one line of an item's history.
type TimelineEntry struct {
	// ID is unique within the item; appending an entry whose ID the item
	// already has is a no-op, which makes retries safe.
	ID      string    `json:"id"`
	ItemID  string    `json:"item_id"`
	Kind    string    `json:"kind"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Trigger string    `json:"trigger,omitempty"`
	EventID string    `json:"event_id,omitempty"`
	Actor   string    `json:"actor,omitempty"`
	Action  string    `json:"action,omitempty"`
	Field   string    `json:"field,omitempty"` // the field of a field_changed entry
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at"`
}

// Decision explains what one trigger did for one (event, item) pair.
type Decision struct {
	Trigger string `json:"trigger"`
	Type    string `json:"type"`
	Stage   string `json:"stage"`
	Outcome string `json:"outcome"` // see engine.Outcome* constants
	Reason  string `json:"reason,omitempty"`
}

// ItemDecisions is the engine's verdict for one item of one event.
type ItemDecisions struct {
	ItemID    string     `json:"item_id"`
	Pipeline  string     `json:"pipeline"`
	From      string     `json:"from"`
	To        string     `json:"to,omitempty"` // set when the event moved the item
	Moved     bool       `json:"moved"`
	Note      string     `json:"note,omitempty"` // e.g. "created from event", "already applied"
	Decisions []Decision `json:"decisions"`
	At        time.Time  `json:"at"`
}

// EventRecord is an accepted event and what became of it.
type EventRecord struct {
	Event     normalize.Event `json:"event"`
	Seq       string          `json:"seq"`
	Applied   bool            `json:"applied"`
	AppliedAt time.Time       `json:"applied_at,omitzero"`
	Unmatched bool            `json:"unmatched"`
	// Failed marks an event parked after its apply kept failing; Note has
	// the error. RetryEvent puts it back into the log.
	Failed bool   `json:"failed,omitempty"`
	Note   string `json:"note,omitempty"`
}

// LogEntry is one accepted event handed to the engine.
type LogEntry struct {
	Seq   string
	Event normalize.Event
}

// AppendResult tells what Append did.
type AppendResult struct {
	Seq       string // log position; empty for a duplicate
	Duplicate bool
}

// Outcome is what the engine reports when it acknowledges a log entry.
type Outcome struct {
	Unmatched bool   // no item received the event
	Failed    bool   // applying kept failing: the event is parked (Note says why) until retried
	Note      string // free text, e.g. why it was not applied
}

// MoveRequest changes an item's stage atomically: it succeeds only if the
// item's version is still ExpectVersion and (when EventID is set) the event
// has not been applied to the item before. In the same step it bumps the
// version, appends Entry to the timeline, stores Decisions and adds the
// Outbox entries (the stage's actions; an entry whose ID exists is left
// alone).
type MoveRequest struct {
	ItemID        string
	ExpectVersion int64
	To            string
	Closed        bool
	EventID       string // empty for a manual move
	Entry         TimelineEntry
	Decisions     *ItemDecisions // stored for (EventID, ItemID), replacing any earlier record
	At            time.Time
	Outbox        []OutboxEntry // added pending, in the same atomic step
}

// ItemFilter selects items for ListItems. Empty fields match everything.
type ItemFilter struct {
	Pipeline     string
	Stage        string
	ContactID    string
	Responsible  string
	UpdatedSince time.Time // items updated at or after it
	// After continues a listing after the item it names (a page's last):
	// only items created after it, or created at the same time with a
	// greater id, are listed. The zero value starts at the beginning.
	After ItemCursor
	Limit int // 0 means DefaultItemLimit (PageSize)
}

// ItemCursor is a position in the order of ListItems: creation time, then
// id.
type ItemCursor struct {
	CreatedAt time.Time
	ID        string
}

// CursorOf is the position of it, to list what comes after it.
func CursorOf(it Item) ItemCursor { return ItemCursor{CreatedAt: it.CreatedAt, ID: it.ID} }

// Matches reports whether it passes every criterion of f but After (the
// drivers' indexes do that part).
// DefaultItemLimit is ListItems' page size when the filter names none.
const DefaultItemLimit = 100

// PageSize is how many items ListItems returns at most for f.
func (f ItemFilter) PageSize() int {
	if f.Limit <= 0 {
		return DefaultItemLimit
	}
	return f.Limit
}

func (f ItemFilter) Matches(it Item) bool {
	return (f.Pipeline == "" || it.Pipeline == f.Pipeline) &&
		(f.Stage == "" || it.Stage == f.Stage) &&
		(f.ContactID == "" || it.ContactID == f.ContactID) &&
		(f.Responsible == "" || it.Responsible == f.Responsible) &&
		(f.UpdatedSince.IsZero() || !it.UpdatedAt.Before(f.UpdatedSince))
}

// Store is the storage contract. Every method is safe for concurrent use.
type Store interface {
	// Records are the connectors' versioned records and lists.
	Records
	// Broadcaster fans small messages out to the processes sharing the store.
	Broadcaster
	// Outbox is the durable queue of stage actions.
	Outbox
	// ItemUpdater changes items' fields and responsible users.
	ItemUpdater
	// BatchApplier reads and writes what the engine applies, a batch at a
	// time.
	BatchApplier

	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error

	// Append records ev in the durable log atomically with its dedup key
	// (ev.ID). An ID seen within the dedup window is a duplicate: nothing is
	// written and Duplicate is true. When Append returns without error the
	// event is durable.
	Append(ctx context.Context, ev *normalize.Event) (AppendResult, error)
	// ReadLog returns up to max entries not yet acknowledged that no live
	// consumer holds, waiting up to block for one to arrive. Entries of a
	// consumer that died are delivered again (at least once).
	ReadLog(ctx context.Context, consumer string, max int, block time.Duration) ([]LogEntry, error)
	// Ack marks the entry's event applied with outcome and removes it from
	// the log.
	Ack(ctx context.Context, e LogEntry, o Outcome) error
	// GetEvent returns an accepted event and the decisions recorded for it.
	GetEvent(ctx context.Context, id string) (EventRecord, []ItemDecisions, error)
	// ListUnmatched returns the newest events no item received, newest first.
	ListUnmatched(ctx context.Context, limit int) ([]EventRecord, error)
	// ListFailed returns the parked events (acknowledged with
	// Outcome.Failed and not retried since), most recently parked first.
	ListFailed(ctx context.Context, limit int) ([]EventRecord, error)
	// RetryEvent puts a parked event back into the log, once: it is no
	// longer listed as failed, and is applied again like a new entry.
	// ErrNotFound for an unknown event; ErrConflict for one not parked.
	RetryEvent(ctx context.Context, id string) error

	// EnsureContact returns the contact owning any of ids, adding the other
	// ids to it; if none has an owner it creates c (with c.ID) owning all of
	// them. It is atomic: concurrent calls for one identity yield one contact.
	EnsureContact(ctx context.Context, c Contact, ids []Identity) (Contact, bool, error)
	// FindContact returns the contact owning id.
	FindContact(ctx context.Context, id Identity) (Contact, error)
	// GetContact returns a contact by id.
	GetContact(ctx context.Context, id string) (Contact, error)

	// CreateItem stores a new item with version 1 and its first timeline
	// entry. If an item with it.ID exists, it is returned unchanged with
	// created false, which makes creation from an event idempotent.
	CreateItem(ctx context.Context, it Item, entry TimelineEntry) (Item, bool, error)
	// GetItem returns an item by id.
	GetItem(ctx context.Context, id string) (Item, error)
	// ListItems returns items matching f, oldest first (by creation time,
	// then id), after f.After.
	ListItems(ctx context.Context, f ItemFilter) ([]Item, error)
	// Move applies req; see MoveRequest. It returns the updated item, or
	// ErrConflict, ErrAlreadyApplied or ErrNotFound.
	Move(ctx context.Context, req MoveRequest) (Item, error)
	// AppendTimeline adds an entry; an entry with an ID the item already
	// has is ignored. The entry of a move that applied an event (Move or
	// ApplyBatch with an event) may be left out of that check: the event's
	// applied marker keeps it single, and its ID is not one to append
	// again (the engine's is "ev:" + the event id).
	AppendTimeline(ctx context.Context, e TimelineEntry) error
	// Timeline returns an item's entries, oldest first.
	Timeline(ctx context.Context, itemID string) ([]TimelineEntry, error)
	// RecordDecisions stores the verdict for (eventID, d.ItemID) unless one
	// is stored already (the first verdict, usually the move, wins).
	RecordDecisions(ctx context.Context, eventID string, d ItemDecisions) error
}

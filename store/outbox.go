package store

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/stagegate/stagegate/normalize"
)

// Outbox entry statuses. An entry is written pending together with the move
// that caused it; a worker claims it (running, with a lease), and it ends
// done, skipped or failed. A running entry whose lease ended without an
// answer is due again, so the entries of a crashed worker come back.
const (
	OutboxPending = "pending"
	OutboxRunning = "running"
	OutboxDone    = "done"
	OutboxSkipped = "skipped"
	OutboxFailed  = "failed"
)

// OutboxStatuses lists every status, for validating filters.
var OutboxStatuses = []string{OutboxPending, OutboxRunning, OutboxDone, OutboxSkipped, OutboxFailed}

// EntryChainStopped is the timeline kind of a move refused because it would
// have continued an action loop or gone past the chain depth.
const EntryChainStopped = "chain_stopped"

// OutboxEntry is one stage action to run, recorded atomically with the move
// that caused it (MoveRequest.Outbox).
type OutboxEntry struct {
	// ID is unique in the store and safe in a URL path.
	ID string `json:"id"`
	// Key is the idempotency key sent with every attempt: the stage entry
	// (item and move) and the action index, as "<stage entry>/<index>".
	// Entries whose keys agree up to the last "/" are one stage entry's
	// chain (see Group).
	Key      string `json:"key"`
	ItemID   string `json:"item_id"`
	Pipeline string `json:"pipeline"`
	Stage    string `json:"stage"` // the stage entered
	Index    int    `json:"index"` // position of the action on the stage
	Type     string `json:"type"`
	Name     string `json:"name,omitempty"`
	// Payload is the engine's snapshot of the move; the store keeps it as is.
	Payload json.RawMessage `json:"payload,omitempty"`

	Status string `json:"status"`
	// Due is when the entry may run next (the first time: the move plus the
	// action's delay; after a failure: the retry time).
	Due time.Time `json:"due"`
	// Attempts counts the runs so far: a claim starts a run at once, and
	// only one run of a chain is claimed at a time.
	Attempts int `json:"attempts"`
	// Claim numbers the claims; Complete and Fail must name the current one,
	// so a worker whose lease ended cannot overwrite a newer outcome.
	Claim      int64     `json:"claim"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	Note       string    `json:"note,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	DoneAt     time.Time `json:"done_at,omitzero"`
}

// Group names the stage entry that queued e: its Key without the final
// "/<index>". The entries of one group run one at a time, lowest index
// first (see Outbox.ClaimOutbox).
func (e *OutboxEntry) Group() string {
	if i := strings.LastIndexByte(e.Key, '/'); i >= 0 {
		return e.Key[:i]
	}
	return e.Key
}

// OutboxFilter selects entries for ListOutbox. Empty fields match
// everything.
type OutboxFilter struct {
	Status string
	ItemID string
	Limit  int // 0 means 100
}

// Outbox is the durable queue of stage actions. Entries are added only by
// Move (MoveRequest.Outbox), in the same atomic step as the move, and by
// ApplyBatch (BatchEntry.Outbox, an event's own actions), in the same
// atomic step as the event's acknowledgement. Times are the caller's clock.
type Outbox interface {
	// ClaimOutbox marks up to max entries that are due at now (pending ones
	// whose Due has come, running ones whose lease ended) running until
	// now+lease, counts an attempt and a claim on each and returns them,
	// earliest due first.
	//
	// The entries of one stage entry (one Group) run one at a time and in
	// order: a claim takes at most one entry of a group, none while another
	// entry of the group is running under a live lease, and of the group's
	// due entries the one with the lowest Index. An entry waiting for its
	// retry or its delay does not hold back the later ones.
	ClaimOutbox(ctx context.Context, now time.Time, max int, lease time.Duration) ([]OutboxEntry, error)
	// CompleteOutbox ends a running entry with status done or skipped. It
	// returns ErrConflict when the entry is not running under claim, and
	// ErrNotFound for an unknown id. Finished entries are kept for the
	// dedup window.
	CompleteOutbox(ctx context.Context, id string, claim int64, status, note string, now time.Time) error
	// FailOutbox records a failed attempt of a running entry: pending again,
	// due at retryAt, or failed for good when retryAt is zero. Errors as
	// for CompleteOutbox.
	FailOutbox(ctx context.Context, id string, claim int64, msg string, retryAt, now time.Time) error
	// RetryOutbox makes a failed entry pending again, due at now, with its
	// attempts reset. It returns ErrConflict when the entry is not failed.
	RetryOutbox(ctx context.Context, id string, now time.Time) (OutboxEntry, error)
	// GetOutbox returns an entry by id.
	GetOutbox(ctx context.Context, id string) (OutboxEntry, error)
	// ListOutbox returns up to f.Limit entries matching f: with a status,
	// most recently updated first; with only an item, most recently created
	// first; with neither, in no particular order.
	ListOutbox(ctx context.Context, f OutboxFilter) ([]OutboxEntry, error)
	// OutboxDepth is the number of entries still to run (pending or running).
	OutboxDepth(ctx context.Context) (int, error)
	// NextOutboxDue is the earliest time an entry becomes due (a pending
	// entry's Due or a running entry's lease end); ok is false when there is
	// none.
	NextOutboxDue(ctx context.Context) (t time.Time, ok bool, err error)
}

// ItemUpdate changes an item's fields or responsible user, once per
// timeline entry id.
type ItemUpdate struct {
	ItemID string
	// ExpectVersion, when not 0, makes the update hold only while the item
	// is at that version; otherwise it is ErrConflict and nothing changes.
	ExpectVersion int64
	// Fields are set on the item (other fields stay).
	Fields map[string]string
	// Remove lists fields to delete from the item.
	Remove []string
	// Responsible, when not empty, becomes the item's responsible user.
	Responsible string
	// Entry is appended to the timeline; its ID is required and makes the
	// update idempotent.
	Entry TimelineEntry
	// More are further timeline entries of the update (one per changed
	// field), appended after Entry.
	More []TimelineEntry
	// Events are appended to the log, each with its dedup key as Append
	// would, in the same atomic step; an event whose id is a duplicate is
	// left out.
	Events []normalize.Event
	At     time.Time
}

// ItemUpdater updates items outside of moves (the item PATCH of the API,
// and the set_field and set_responsible actions).
type ItemUpdater interface {
	// UpdateItem applies u atomically: it sets and removes the fields and
	// sets the responsible user, bumps the version, appends u.Entry and
	// u.More and appends u.Events to the log. If the item's timeline
	// already has u.Entry.ID nothing changes and applied is false (this
	// comes before the version check, so a retry of an update that was
	// written is recognised). An unknown item is ErrNotFound; an item no
	// longer at u.ExpectVersion is ErrConflict.
	UpdateItem(ctx context.Context, u ItemUpdate) (it Item, applied bool, err error)
}

package store

import (
	"context"
	"fmt"
	"time"

	"github.com/stagegate/stagegate/normalize"
)

// Record is a small versioned value a connector keeps: a call's state, a
// mailbox cursor, a tracked message, a lease. Version is 1 after the first
// put and grows by one with each put; 0 means absent.
type Record struct {
	Value   []byte
	Version int64
}

// ListElem is one element of an append-only list.
type ListElem struct {
	Seq   int64  // 1-based, gapless within one list
	ID    string // caller's id; unique within one list
	Value []byte
}

// Records are the connectors' generic state: versioned records with
// compare-and-set, and append-only lists with per-element ids. Keys are
// free-form and namespaced by the caller ("telephony/<connector>/call/<id>").
// Both drivers implement them and the conformance suite checks them. Keys
// and element ids must not be empty. An expired record or list is absent:
// a put expecting 0 creates it again, and a list starts again at 1.
type Records interface {
	// GetRecord returns the record at key, or ErrNotFound.
	GetRecord(ctx context.Context, key string) (Record, error)
	// PutRecord stores value at key if the stored version equals expect (0:
	// the key must be absent) and returns the new version; otherwise it
	// returns ErrConflict and changes nothing. A ttl > 0 makes the record
	// expire (counted from this put); 0 keeps it without expiry, also when
	// an earlier put gave it one.
	PutRecord(ctx context.Context, key string, value []byte, expect int64, ttl time.Duration) (int64, error)
	// DeleteRecord removes the record if its version equals expect, else
	// ErrConflict; a missing record is ErrNotFound.
	DeleteRecord(ctx context.Context, key string, expect int64) error
	// AppendList adds an element to the list at key unless the list already
	// has one with id; it returns the element's sequence number and whether
	// it was there already (then nothing changes, not even the expiry).
	// ttl > 0 makes the whole list expire that long after its last append
	// (or a little later: bolt rounds the expiry up to a step of ttl/1024,
	// an hour at most, never earlier); 0 leaves the list's expiry as it is.
	AppendList(ctx context.Context, key, id string, value []byte, ttl time.Duration) (seq int64, duplicate bool, err error)
	// ReadList returns up to limit elements with Seq > after, in order
	// (limit <= 0 means 100); a missing list has none.
	ReadList(ctx context.Context, key string, after int64, limit int) ([]ListElem, error)
}

// Broadcaster carries small messages between gateway processes that share a
// store (live chat fan-out). Delivery is best effort and at most once: what
// must not be lost goes through Records first. The bolt driver delivers
// within its one process.
type Broadcaster interface {
	// Publish sends msg to every current subscriber of topic.
	Publish(ctx context.Context, topic string, msg []byte) error
	// Subscribe returns a channel of messages on topic, closed when ctx is
	// done. A slow subscriber loses messages rather than blocking others.
	Subscribe(ctx context.Context, topic string) (<-chan []byte, error)
}

// ListAppend is the arguments of one Records.AppendList.
type ListAppend struct {
	Key, ID string
	Value   []byte
	TTL     time.Duration
	// Unique is the caller's promise that no element of the list has ID
	// (a fresh random id, never retried): AppendLists and AppendAndPut may
	// then neither look the id up nor index it, which saves a write per
	// element. A later append of the same id need not be found as a
	// duplicate. Tracking hits use it; anything a sender may retry must not.
	Unique bool
}

// RecordPut is the arguments of one Records.PutRecord.
type RecordPut struct {
	Key    string
	Value  []byte
	Expect int64
	TTL    time.Duration
}

// AppendPutter is implemented by drivers that can send an AppendList and a
// PutRecord together: one commit (bolt) or one round trip (Redis). See
// AppendAndPut.
type AppendPutter interface {
	AppendListPutRecord(ctx context.Context, a ListAppend, p RecordPut) (seq int64, duplicate bool, version int64, err error)
}

// EventsPutter is implemented by drivers that can append events to the
// log in the same atomic step as an AppendListPutRecord (bolt: one
// transaction, one commit). The append stands whatever the put's version
// check says, as in AppendListPutRecord; the events are appended (each
// deduplicated as by Store.Append) if and only if the put passes its
// check. A lost check is an error wrapping ErrConflict with the append's
// result and no event written; any other error means nothing was written.
//
// A caller that derives events from the state it puts uses this to emit
// them on the strength of a state it holds in memory: the events become
// durable only if that state was the stored one.
type EventsPutter interface {
	AppendListPutRecordEvents(ctx context.Context, a ListAppend, p RecordPut, evs []*normalize.Event) (EventsPutResult, error)
}

// EventsPutResult is the outcome of EventsPutter.AppendListPutRecordEvents:
// the append's as AppendList returns it, the record's new version (0 when
// the check was lost) and one AppendResult per event, in order (none when
// the check was lost).
type EventsPutResult struct {
	Seq       int64
	Duplicate bool
	Version   int64
	Events    []AppendResult
}

// AppendAndPut appends a to its list and then puts p, together when r is an
// AppendPutter, else one after the other. The two are not one atomic step:
// the append happens whether or not the put's version check passes, and a
// lost check returns the append's result with version 0 and an error
// wrapping ErrConflict. Any other error leaves the outcome of both unknown
// (either may have happened), as an error of either call alone would.
func AppendAndPut(ctx context.Context, r Records, a ListAppend, p RecordPut) (seq int64, duplicate bool, version int64, err error) {
	if ap, ok := r.(AppendPutter); ok {
		return ap.AppendListPutRecord(ctx, a, p)
	}
	seq, duplicate, err = r.AppendList(ctx, a.Key, a.ID, a.Value, a.TTL)
	if err != nil {
		return 0, false, 0, fmt.Errorf("append list %s: %w", a.Key, err)
	}
	version, err = r.PutRecord(ctx, p.Key, p.Value, p.Expect, p.TTL)
	if err != nil {
		return seq, duplicate, 0, fmt.Errorf("put record %s: %w", p.Key, err)
	}
	return seq, duplicate, version, nil
}

// ListAppendResult is the outcome of one append of AppendLists: as
// Records.AppendList returns it.
type ListAppendResult struct {
	Seq       int64
	Duplicate bool
	Err       error
}

// ListsAppender is implemented by drivers that can make several
// AppendLists at once: one commit (bolt), one pipeline (Redis). See
// AppendLists.
type ListsAppender interface {
	AppendLists(ctx context.Context, as []ListAppend) ([]ListAppendResult, error)
}

// AppendLists makes the appends as, in order (two of one list and id: the
// second is a duplicate), together when r is a ListsAppender, else one
// after the other. It returns one result per append; an append refused
// on its own (an empty key or id) has its Err and does not stop the
// others. A returned error leaves the outcome of every append unknown.
func AppendLists(ctx context.Context, r Records, as []ListAppend) ([]ListAppendResult, error) {
	if la, ok := r.(ListsAppender); ok {
		return la.AppendLists(ctx, as)
	}
	out := make([]ListAppendResult, len(as))
	for i, a := range as {
		seq, dup, err := r.AppendList(ctx, a.Key, a.ID, a.Value, a.TTL)
		if err != nil {
			err = fmt.Errorf("append list %s: %w", a.Key, err)
		}
		out[i] = ListAppendResult{Seq: seq, Duplicate: dup, Err: err}
	}
	return out, nil
}

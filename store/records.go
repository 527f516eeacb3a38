package store

import (
	"context"
	"time"
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
	// ttl > 0 makes the whole list expire that long after its last append;
	// 0 leaves the list's expiry as it is.
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

package imap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stagegate/stagegate/store"
)

// errCursorMoved means another gateway advanced the cursor: this one lost
// the folder (its lease expired) and must start over.
var errCursorMoved = errors.New("the cursor was advanced by another gateway")

// cursor is how far a folder has been read: every UID up to LastUID, under
// UIDValidity, has been turned into durable events (or deliberately
// skipped). It is kept in the store and only ever advanced after the
// events of the mail it covers are durable.
type cursor struct {
	UIDValidity uint32 `json:"uidvalidity"`
	LastUID     uint32 `json:"last_uid"`
	// Floor: mail the server received earlier is never taken (it was in
	// the folder before we started watching, or outside the backfill).
	Floor time.Time `json:"floor"`
	// After a UIDVALIDITY change the folder is rescanned up to RescanUntil;
	// during the rescan mail dated before RescanFloor is skipped, the rest
	// is deduplicated by event id.
	RescanUntil uint32    `json:"rescan_until,omitempty"`
	RescanFloor time.Time `json:"rescan_floor,omitzero"`
	// PrevUIDValidity is the UIDVALIDITY before the last change (for the status).
	PrevUIDValidity uint32 `json:"prev_uidvalidity,omitempty"`
	// Trouble is set after a FETCH ended the session (the server hung up,
	// or stopped answering): it is kept in the store so that it survives
	// the reconnections.
	Trouble   *trouble  `json:"trouble,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`

	version int64 // the record's version, for compare-and-set
}

// trouble narrows down a mail that kills the session it is fetched in.
type trouble struct {
	// Until: the UIDs up to Until (those of the batch that failed) are
	// fetched one at a time.
	Until uint32 `json:"until"`
	// Kills counts, per UID, the sessions that ended while it was fetched
	// alone; at killLimit the mail is quarantined.
	Kills map[uint32]int `json:"kills,omitempty"`
}

// rescanning reports whether uid is part of a rescan after a UIDVALIDITY change.
func (c *cursor) rescanning(uid uint32) bool { return c.RescanUntil > 0 && uid <= c.RescanUntil }

// loadCursor reads the cursor at key; ok is false when there is none.
func loadCursor(ctx context.Context, rec store.Records, key string) (cursor, bool, error) {
	var c cursor
	ver, err := store.GetJSON(ctx, rec, key, &c)
	if err != nil {
		return cursor{}, false, fmt.Errorf("read cursor: %w", err)
	}
	c.version = ver
	return c, ver > 0, nil
}

// save writes the cursor if nobody else wrote it since it was read.
func (c *cursor) save(ctx context.Context, rec store.Records, key string, now time.Time) error {
	c.UpdatedAt = now.UTC()
	if c.RescanUntil > 0 && c.LastUID >= c.RescanUntil {
		c.RescanUntil, c.RescanFloor = 0, time.Time{}
	}
	if c.Trouble != nil && c.LastUID >= c.Trouble.Until {
		c.Trouble = nil
	}
	v, err := store.PutJSON(ctx, rec, key, c, c.version, 0)
	if errors.Is(err, store.ErrConflict) {
		return errCursorMoved
	}
	if err != nil {
		return fmt.Errorf("save cursor: %w", err)
	}
	c.version = v
	return nil
}

package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// Move applies req in one transaction: it checks, in this order, that the
// item exists, that req.EventID was not applied to it, and that its version
// is req.ExpectVersion; then it moves the item, bumps the version, appends
// req.Entry, marks the event applied, stores req.Decisions and adds the
// req.Outbox entries.
func (s *Store) Move(ctx context.Context, req store.MoveRequest) (store.Item, error) {
	if req.At.IsZero() {
		req.At = s.now()
	}
	entry := req.Entry
	entry.ItemID = req.ItemID
	if entry.At.IsZero() {
		entry.At = req.At
	}
	var decJSON []byte
	if req.EventID != "" && req.Decisions != nil {
		d := *req.Decisions
		d.ItemID = req.ItemID
		var err error
		if decJSON, err = json.Marshal(d); err != nil {
			return store.Item{}, fmt.Errorf("bolt: move %s: %w", req.ItemID, err)
		}
	}
	var out store.Item
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		out = store.Item{}
		raw := tx.Bucket(bItems).Get([]byte(req.ItemID))
		if raw == nil {
			return clean(store.ErrNotFound)
		}
		it, err := s.items.decode(req.ItemID, raw)
		if err != nil {
			return clean(err)
		}
		var ev eventRef
		if req.EventID != "" {
			ev = refEvent(tx, req.EventID)
			if ev.has(tx, kindApplied, req.ItemID) {
				return clean(store.ErrAlreadyApplied)
			}
		}
		if it.Version != req.ExpectVersion {
			return clean(fmt.Errorf("%w: version is %d, not %d", store.ErrConflict, it.Version, req.ExpectVersion))
		}
		e := entry
		if e.ID == "" {
			e.ID = fmt.Sprintf("move-%d", it.Version+1)
		}
		entryJSON, err := json.Marshal(e)
		if err != nil {
			return err
		}
		data, err := moveTx(tx, &it, movePlan{to: req.To, closed: req.Closed, at: req.At, event: ev,
			entryID: e.ID, entry: entryJSON, decisions: decJSON, outbox: req.Outbox})
		if err != nil {
			return err
		}
		s.items.put(it.ID, data, it)
		out = it
		return nil
	})
	if err != nil {
		return store.Item{}, fmt.Errorf("bolt: move %s: %w", req.ItemID, err)
	}
	return out, nil
}

// movePlan is a move with its JSON encoded ahead, outside the committer.
type movePlan struct {
	to        string
	closed    bool
	at        time.Time
	event     eventRef // id empty for a manual move
	entryID   string
	entry     []byte // the timeline entry's JSON
	decisions []byte // the pair's ItemDecisions JSON; nil for none
	outbox    []store.OutboxEntry
}

// moveTx moves it (already checked) in tx: new stage and version, the
// stage index, the timeline entry, the outbox entries and, for an event,
// the applied marker and the decisions.
// It returns the item's new JSON.
func moveTx(tx *bbolt.Tx, it *store.Item, p movePlan) ([]byte, error) {
	oldIx := stageIndex(*it)
	it.Stage, it.Closed, it.UpdatedAt = p.to, p.closed, p.at
	it.Version++
	data, err := json.Marshal(it)
	if err != nil {
		return nil, err
	}
	if err := tx.Bucket(bItems).Put([]byte(it.ID), data); err != nil {
		return nil, err
	}
	if newIx := stageIndex(*it); string(newIx.key) != string(oldIx.key) {
		stages := tx.Bucket(bIdxStage)
		if err := stages.Delete(oldIx.key); err != nil {
			return nil, err
		}
		if err := stages.Put(newIx.key, nil); err != nil {
			return nil, err
		}
	}
	// The entry of a move that applies an event needs no id index: the
	// applied marker written below keeps the event from moving the item
	// twice (timeline.go).
	if p.event.id != "" {
		if err := pushEntry(tx, it.ID, p.entry); err != nil {
			return nil, err
		}
	} else if _, err := appendEntryJSON(tx, it.ID, p.entryID, p.entry); err != nil {
		return nil, err
	}
	if err := addOutbox(tx, p.outbox, p.at); err != nil {
		return nil, err
	}
	if p.event.id == "" {
		return data, nil
	}
	if err := p.event.putPair(tx, kindApplied, it.ID, nil); err != nil {
		return nil, err
	}
	if p.decisions != nil {
		if err := p.event.putPair(tx, kindDecisions, it.ID, p.decisions); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// RecordDecisions stores d for (eventID, d.ItemID) unless a verdict is
// stored already.
func (s *Store) RecordDecisions(ctx context.Context, eventID string, d store.ItemDecisions) error {
	if eventID == "" || d.ItemID == "" {
		return errors.New("bolt: record decisions: event id and item id are required")
	}
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("bolt: record decisions %s %s: %w", eventID, d.ItemID, err)
	}
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		ev := refEvent(tx, eventID)
		if ev.has(tx, kindDecisions, d.ItemID) {
			return nil
		}
		return ev.putPair(tx, kindDecisions, d.ItemID, data)
	})
	if err != nil {
		return fmt.Errorf("bolt: record decisions %s %s: %w", eventID, d.ItemID, err)
	}
	return nil
}

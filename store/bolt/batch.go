package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

var _ store.BatchApplier = (*Store)(nil)

// Lookup reads the named items, the identities' owners and those contacts'
// items in one read-only transaction.
func (s *Store) Lookup(ctx context.Context, req store.LookupRequest) (store.LookupResult, error) {
	res := store.LookupResult{
		Items:        map[string]store.Item{},
		Contacts:     map[store.Identity]string{},
		ContactItems: map[string][]string{},
	}
	err := s.view(func(tx *bbolt.Tx) error {
		items := tx.Bucket(bItems)
		get := func(id []byte) error {
			if _, ok := res.Items[string(id)]; ok {
				return nil
			}
			raw := items.Get(id)
			if raw == nil {
				return nil
			}
			it, err := s.items.decode(string(id), raw)
			if err != nil {
				return fmt.Errorf("item %s: %w", id, err)
			}
			res.Items[it.ID] = it
			return nil
		}
		for _, id := range req.ItemIDs {
			if err := get([]byte(id)); err != nil {
				return err
			}
		}
		idents, byContact := tx.Bucket(bIdentities), tx.Bucket(bIdxContact)
		for _, id := range req.Identities {
			owner := idents.Get(identityKey(id))
			if owner == nil {
				continue
			}
			c := string(owner)
			res.Contacts[id] = c
			if _, ok := res.ContactItems[c]; ok {
				continue
			}
			prefix := key(nil, c)
			ids := []string{}
			cur := byContact.Cursor()
			for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(ids) < store.MaxContactItems; k, _ = cur.Next() {
				if len(k) < len(prefix)+8 {
					continue
				}
				itemID := k[len(prefix)+8:]
				if err := get(itemID); err != nil {
					return err
				}
				if _, ok := res.Items[string(itemID)]; ok {
					ids = append(ids, string(itemID))
				}
			}
			res.ContactItems[c] = ids
		}
		return nil
	})
	if err != nil {
		return store.LookupResult{}, fmt.Errorf("bolt: lookup: %w", err)
	}
	return res, nil
}

// preparedWrite is an ItemWrite with its JSON encoded outside the committer.
type preparedWrite struct {
	w         *store.ItemWrite
	entryID   string
	entry     []byte // the move's entry, or the extra entry
	decisions []byte
}

// preparedEntry is a BatchEntry ready for the transaction.
type preparedEntry struct {
	seq    uint64 // 0: not acknowledged
	id     []byte
	state  []byte
	writes []preparedWrite
	o      store.Outcome
	outbox []store.OutboxEntry // the event's own actions, added with the ack
}

// ApplyBatch writes the whole batch in one transaction through the group
// committer, so one fsync serves it (and any intake writes committed with
// it). Everything that can be encoded ahead is encoded before the
// transaction; inside it, each item is read once and rewritten per move.
func (s *Store) ApplyBatch(ctx context.Context, at time.Time, entries []store.BatchEntry) (store.BatchResult, error) {
	if at.IsZero() {
		at = s.now()
	}
	prep, err := s.prepareBatch(at, entries)
	if err != nil {
		return store.BatchResult{}, err
	}
	var res store.BatchResult
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		var err error
		res, err = s.applyBatchTx(tx, at, prep)
		return err
	})
	if err != nil {
		return store.BatchResult{}, fmt.Errorf("bolt: apply batch: %w", err)
	}
	return res, nil
}

func (s *Store) prepareBatch(at time.Time, entries []store.BatchEntry) ([]preparedEntry, error) {
	prep := make([]preparedEntry, len(entries))
	for i := range entries {
		be := &entries[i]
		p := preparedEntry{id: []byte(be.Entry.Event.ID), o: be.Outcome, writes: make([]preparedWrite, len(be.Writes)), outbox: be.Outbox}
		if be.Entry.Seq != "" {
			seq, err := parseSeq(be.Entry.Seq)
			if err != nil {
				return nil, fmt.Errorf("bolt: apply batch %s: %w", be.Entry.Event.ID, err)
			}
			p.seq, p.state = seq, encodeState(seq, at, be.Outcome)
		}
		for k := range be.Writes {
			w := &be.Writes[k]
			pw := preparedWrite{w: w}
			d := w.Decisions
			d.ItemID = w.ItemID
			var err error
			if pw.decisions, err = json.Marshal(d); err != nil {
				return nil, fmt.Errorf("bolt: apply batch %s: %w", be.Entry.Event.ID, err)
			}
			var e *store.TimelineEntry
			if w.Move != nil {
				e = &w.Move.Entry
			} else if w.Entry != nil {
				e = w.Entry
			}
			if e != nil {
				ec := *e
				ec.ItemID = w.ItemID
				if ec.At.IsZero() {
					ec.At = at
				}
				if ec.ID == "" {
					return nil, fmt.Errorf("bolt: apply batch %s: timeline entry of item %s has no id", be.Entry.Event.ID, w.ItemID)
				}
				pw.entryID = ec.ID
				if pw.entry, err = json.Marshal(ec); err != nil {
					return nil, fmt.Errorf("bolt: apply batch %s: %w", be.Entry.Event.ID, err)
				}
			}
			p.writes[k] = pw
		}
		prep[i] = p
	}
	return prep, nil
}

// applyBatchTx runs a prepared batch in tx. It keeps no state across runs,
// so the committer may run it again.
func (s *Store) applyBatchTx(tx *bbolt.Tx, at time.Time, prep []preparedEntry) (store.BatchResult, error) {
	res := store.BatchResult{Writes: make([][]store.WriteStatus, len(prep)), Acked: make([]bool, len(prep))}
	cache := map[string]*store.Item{} // items as this batch left them
	conflicted := map[string]bool{}   // items a write of this batch conflicted on
	items := tx.Bucket(bItems)
	for i := range prep {
		p := &prep[i]
		ev := refEvent(tx, string(p.id))
		statuses := make([]store.WriteStatus, len(p.writes))
		ok := true
		for k, pw := range p.writes {
			w := pw.w
			it, found := cache[w.ItemID]
			if !found {
				if raw := items.Get([]byte(w.ItemID)); raw != nil {
					v, err := s.items.decode(w.ItemID, raw)
					if err != nil {
						return res, fmt.Errorf("item %s: %w", w.ItemID, err)
					}
					it = &v
				}
				cache[w.ItemID] = it
			}
			switch {
			case it == nil:
				statuses[k] = store.WriteNotFound
			case w.Move != nil && ev.has(tx, kindApplied, w.ItemID):
				statuses[k] = store.WriteAlreadyApplied
			case conflicted[w.ItemID] || it.Version != w.ExpectVersion:
				statuses[k], conflicted[w.ItemID], ok = store.WriteConflict, true, false
			case w.Move != nil:
				data, err := moveTx(tx, it, movePlan{to: w.Move.To, closed: w.Move.Closed, at: at, event: ev,
					entryID: pw.entryID, entry: pw.entry, decisions: pw.decisions, outbox: w.Move.Outbox})
				if err != nil {
					return res, err
				}
				s.items.put(it.ID, data, *it)
			default:
				if !ev.has(tx, kindDecisions, w.ItemID) {
					if err := ev.putPair(tx, kindDecisions, w.ItemID, pw.decisions); err != nil {
						return res, err
					}
				}
				if pw.entry != nil {
					if _, err := appendEntryJSON(tx, w.ItemID, pw.entryID, pw.entry); err != nil {
						return res, err
					}
				}
			}
		}
		res.Writes[i] = statuses
		if !ok {
			continue
		}
		if p.seq != 0 {
			if err := ackTx(tx, p.seq, ev, p.state, p.o, at); err != nil {
				return res, err
			}
		}
		if err := addOutbox(tx, p.outbox, at); err != nil {
			return res, err
		}
		res.Acked[i] = true
	}
	return res, nil
}

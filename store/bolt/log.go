package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// Append records ev in the log with its dedup key, durably (fsync'd) when it
// returns without error. An id whose key has expired counts as new.
func (s *Store) Append(ctx context.Context, ev *normalize.Event) (store.AppendResult, error) {
	if ev == nil || ev.ID == "" {
		return store.AppendResult{}, errors.New("bolt: append: event id is required")
	}
	id := []byte(ev.ID)
	now := s.now()
	// Most duplicates are retries: answer them without a write.
	dup := false
	err := s.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bDedup).Get(id)
		dup = v != nil && keyTime(v).After(now)
		return nil
	})
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("bolt: append %s: %w", ev.ID, err)
	}
	if dup {
		return store.AppendResult{Duplicate: true}, nil
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("bolt: append %s: %w", ev.ID, err)
	}
	var res store.AppendResult
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		res = store.AppendResult{}
		dedup := tx.Bucket(bDedup)
		old := dedup.Get(id)
		if old != nil && keyTime(old).After(now) {
			res.Duplicate = true
			return nil
		}
		if old != nil {
			// Expired but not swept yet: forget what the old event left.
			if err := forgetEvent(tx, ev.ID); err != nil {
				return err
			}
		}
		exp := u64(timeKey(now.Add(s.window)))
		if err := dedup.Put(id, exp); err != nil {
			return err
		}
		if err := tx.Bucket(bExpiry).Put(append(exp, id...), nil); err != nil {
			return err
		}
		lb := tx.Bucket(bLog)
		seq, err := lb.NextSequence()
		if err != nil {
			return err
		}
		if err := lb.Put(u64(seq), data); err != nil {
			return err
		}
		res.Seq = formatSeq(seq)
		return putJSON(tx.Bucket(bEvents), id, store.EventRecord{Event: *ev, Seq: res.Seq})
	})
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("bolt: append %s: %w", ev.ID, err)
	}
	if !res.Duplicate {
		s.signal()
	}
	return res, nil
}

// forgetEvent deletes the record of an event and its decisions and applied
// markers (its dedup keys are the caller's business).
func forgetEvent(tx *bbolt.Tx, id string) error {
	if err := tx.Bucket(bEvents).Delete([]byte(id)); err != nil {
		return err
	}
	if err := deletePrefix(tx.Bucket(bDecisions), key(nil, id)); err != nil {
		return err
	}
	return deletePrefix(tx.Bucket(bApplied), key(nil, id))
}

// signal wakes every ReadLog waiting for a new entry.
func (s *Store) signal() {
	s.wakeMu.Lock()
	close(s.wake)
	s.wake = make(chan struct{})
	s.wakeMu.Unlock()
}

// ReadLog returns up to max entries after the last one delivered since
// Open, waiting up to block for one. The store has a single process, so
// consumer is not used: every entry is delivered once per Open, and entries
// not acknowledged before a crash or Close are delivered again after the
// next Open.
func (s *Store) ReadLog(ctx context.Context, consumer string, max int, block time.Duration) ([]store.LogEntry, error) {
	if max <= 0 {
		max = 100
	}
	var timer *time.Timer
	for {
		s.wakeMu.Lock()
		wake := s.wake // taken before reading, so no Append is missed
		s.wakeMu.Unlock()
		entries, err := s.readNext(max)
		if err != nil {
			return nil, fmt.Errorf("bolt: read log: %w", err)
		}
		if len(entries) > 0 || block <= 0 {
			return entries, nil
		}
		if timer == nil {
			timer = time.NewTimer(block)
			defer timer.Stop()
		}
		select {
		case <-wake:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("bolt: read log: %w", ctx.Err())
		case <-s.closing:
			return nil, fmt.Errorf("bolt: read log: %w", errClosed)
		}
	}
}

// readNext hands out the entries after the cursor and advances it.
func (s *Store) readNext(max int) ([]store.LogEntry, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	var entries []store.LogEntry
	last := s.cursor
	err := s.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bLog).Cursor()
		for k, v := c.Seek(u64(s.cursor + 1)); k != nil && len(entries) < max; k, v = c.Next() {
			var ev normalize.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			last = binary.BigEndian.Uint64(k)
			entries = append(entries, store.LogEntry{Seq: formatSeq(last), Event: ev})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cursor = last
	return entries, nil
}

// Ack removes the entry from the log and marks its event applied with o.
// Acknowledging an entry twice is harmless.
func (s *Store) Ack(ctx context.Context, e store.LogEntry, o store.Outcome) error {
	seq, err := parseSeq(e.Seq)
	if err != nil {
		return fmt.Errorf("bolt: ack %s: %w", e.Event.ID, err)
	}
	now := s.now()
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		lb := tx.Bucket(bLog)
		id := e.Event.ID
		if v := lb.Get(u64(seq)); v != nil {
			var stored struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(v, &stored) == nil && stored.ID != "" {
				id = stored.ID
			}
			if err := lb.Delete(u64(seq)); err != nil {
				return err
			}
		}
		events := tx.Bucket(bEvents)
		var rec store.EventRecord
		if err := getJSON(events, []byte(id), &rec); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil // swept after the dedup window: nothing to mark
			}
			return err
		}
		if rec.Applied || rec.Seq != e.Seq {
			return nil // already acknowledged, or the id was reused
		}
		rec.Applied, rec.AppliedAt, rec.Unmatched, rec.Note = true, now, o.Unmatched, o.Note
		if err := putJSON(events, []byte(id), rec); err != nil {
			return err
		}
		if !o.Unmatched {
			return nil
		}
		um := tx.Bucket(bUnmatched)
		n, err := um.NextSequence()
		if err != nil {
			return err
		}
		return um.Put(append(u64(timeKey(now)), u64(n)...), []byte(id))
	})
	if err != nil {
		return fmt.Errorf("bolt: ack %s: %w", e.Event.ID, err)
	}
	return nil
}

// GetEvent returns the record of event id and the decisions stored for it,
// ordered by item id.
func (s *Store) GetEvent(ctx context.Context, id string) (store.EventRecord, []store.ItemDecisions, error) {
	var rec store.EventRecord
	var ds []store.ItemDecisions
	err := s.view(func(tx *bbolt.Tx) error {
		if err := getJSON(tx.Bucket(bEvents), []byte(id), &rec); err != nil {
			return err
		}
		prefix := key(nil, id)
		c := tx.Bucket(bDecisions).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var d store.ItemDecisions
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decisions %q: %w", k, err)
			}
			ds = append(ds, d)
		}
		return nil
	})
	if err != nil {
		return store.EventRecord{}, nil, fmt.Errorf("bolt: get event %s: %w", id, err)
	}
	return rec, ds, nil
}

// ListUnmatched returns the events acknowledged as unmatched, most recently
// acknowledged first; limit 0 means 100.
func (s *Store) ListUnmatched(ctx context.Context, limit int) ([]store.EventRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	var recs []store.EventRecord
	err := s.view(func(tx *bbolt.Tx) error {
		events := tx.Bucket(bEvents)
		seen := map[string]bool{}
		c := tx.Bucket(bUnmatched).Cursor()
		for k, v := c.Last(); k != nil && len(recs) < limit; k, v = c.Prev() {
			var rec store.EventRecord
			err := getJSON(events, v, &rec)
			if errors.Is(err, store.ErrNotFound) {
				continue // swept; the index entry goes on the next sweep
			}
			if err != nil {
				return err
			}
			// Skip a reused id's stale entry and any second entry of an id.
			if !rec.Applied || !rec.Unmatched || seen[rec.Event.ID] {
				continue
			}
			seen[rec.Event.ID] = true
			recs = append(recs, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: list unmatched: %w", err)
	}
	return recs, nil
}

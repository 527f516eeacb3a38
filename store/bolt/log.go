package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	// Everything costly happens here, outside the committer, whose one
	// goroutine is the write path's bottleneck: the record is encoded once
	// and never rewritten (its state is a key of its own).
	data, own, err := encodeEvent(ev)
	if err != nil {
		return store.AppendResult{}, err
	}
	var res store.AppendResult
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		var err error
		res, err = s.appendTx(tx, ev.ID, data, own, now)
		return err
	})
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("bolt: append %s: %w", ev.ID, err)
	}
	return res, nil
}

// encodeEvent is what appendTx takes of ev: its record encoded, and a
// copy of ev the store owns.
func encodeEvent(ev *normalize.Event) ([]byte, *normalize.Event, error) {
	data, err := json.Marshal(store.EventRecord{Event: *ev})
	if err != nil {
		return nil, nil, fmt.Errorf("bolt: append %s: %w", ev.ID, err)
	}
	return data, copyEvent(ev), nil
}

// appendTx records the encoded event record data in the log of tx with
// its dedup key, unless the id is a duplicate within the window. ev, if
// not nil, is the decoded record's event, a copy the store owns: readNext
// takes it from s.recent instead of decoding data again.
func (s *Store) appendTx(tx *bbolt.Tx, evID string, data []byte, ev *normalize.Event, now time.Time) (store.AppendResult, error) {
	id := []byte(evID)
	dedup := tx.Bucket(bDedup)
	old := dedup.Get(id)
	if old != nil && keyTime(old).After(now) {
		return store.AppendResult{Duplicate: true}, nil
	}
	if old != nil {
		// Expired but not swept yet: forget what the old event left.
		if err := forgetEvent(tx, eventRef{id: evID, rseq: recordSeq(old)}); err != nil {
			return store.AppendResult{}, err
		}
	}
	lb := tx.Bucket(bLog)
	seq, err := lb.NextSequence()
	if err != nil {
		return store.AppendResult{}, err
	}
	// The record sequence is the first log sequence: unique, and growing.
	exp := timeKey(now.Add(s.window))
	if err := dedup.Put(id, dedupValue(exp, seq)); err != nil {
		return store.AppendResult{}, err
	}
	if err := tx.Bucket(bExpiry).Put(append(u64(exp), id...), nil); err != nil {
		return store.AppendResult{}, err
	}
	if err := lb.Put(u64(seq), u64(seq)); err != nil {
		return store.AppendResult{}, err
	}
	evs := tx.Bucket(bEvData)
	if err := evs.Put(evKey(seq, kindRecord, ""), data); err != nil {
		return store.AppendResult{}, err
	}
	if err := evs.Put(evKey(seq, kindState, ""), u64(seq)); err != nil {
		return store.AppendResult{}, err
	}
	s.recent.put(seq, ev, len(data))
	s.logGrew = true
	return store.AppendResult{Seq: formatSeq(seq)}, nil
}

// forgetEvent deletes the record of an event and its state, decisions and
// applied markers, the ones kept by id too (its dedup keys are the
// caller's business).
func forgetEvent(tx *bbolt.Tx, r eventRef) error {
	if r.rseq != 0 {
		if err := deletePrefix(tx.Bucket(bEvData), u64(r.rseq)); err != nil {
			return err
		}
	}
	if err := deletePrefix(tx.Bucket(bDecisions), key(nil, r.id)); err != nil {
		return err
	}
	return deletePrefix(tx.Bucket(bApplied), key(nil, r.id))
}

// committed runs after each commit (in the committer's goroutine) and
// wakes the readers of the log once if the commit added entries: one
// wake-up per group of appends, not one per append (64 appenders
// answered by one commit used to queue on wakeMu in turn). A transaction
// that set logGrew and was rolled back costs a needless wake-up, no more.
func (s *Store) committed() {
	if s.logGrew {
		s.logGrew = false
		s.signal()
	}
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
	var forgotten []uint64
	last := s.cursor
	err := s.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bLog).Cursor()
		events := tx.Bucket(bEvData)
		for k, v := c.Seek(u64(s.cursor + 1)); k != nil && len(entries) < max; k, v = c.Next() {
			last = binary.BigEndian.Uint64(k)
			if len(v) != 8 {
				return fmt.Errorf("entry %x: record sequence %x is not 8 bytes", k, v)
			}
			rseq := binary.BigEndian.Uint64(v)
			if ev, ok := s.recent.take(last, rseq); ok {
				entries = append(entries, store.LogEntry{Seq: formatSeq(last), Event: ev})
				continue
			}
			var rec store.EventRecord
			err := getJSON(events, evKey(rseq, kindRecord, ""), &rec)
			if errors.Is(err, store.ErrNotFound) {
				// The sweeper (or a new append of the id) forgot the
				// event when its dedup window passed while it waited:
				// nothing is left to apply, and failing here would
				// stop the whole log behind it.
				forgotten = append(forgotten, last)
				continue
			}
			if err != nil {
				return fmt.Errorf("entry %x (record %d): %w", k, rseq, err)
			}
			entries = append(entries, store.LogEntry{Seq: formatSeq(last), Event: rec.Event})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cursor = last
	if len(forgotten) > 0 {
		s.log.Warn("bolt: log entries whose event record was forgotten before it was applied (the dedup window passed while they waited) are dropped",
			"count", len(forgotten), "first_seq", forgotten[0])
		go s.dropLogEntries(forgotten)
	}
	return entries, nil
}

// dropLogEntries deletes log entries readNext passed over; if that fails
// (the store is closing), the next Open passes over them again.
func (s *Store) dropLogEntries(seqs []uint64) {
	err := s.update(context.Background(), func(tx *bbolt.Tx) error {
		lb := tx.Bucket(bLog)
		for _, seq := range seqs {
			if err := lb.Delete(u64(seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("bolt: dropping forgotten log entries failed", "count", len(seqs), "err", err)
	}
}

// Ack removes the entry from the log and marks its event applied with o.
// Acknowledging an entry twice is harmless.
func (s *Store) Ack(ctx context.Context, e store.LogEntry, o store.Outcome) error {
	seq, err := parseSeq(e.Seq)
	if err != nil {
		return fmt.Errorf("bolt: ack %s: %w", e.Event.ID, err)
	}
	now := s.now()
	state := encodeState(seq, now, o)
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		return ackTx(tx, seq, refEvent(tx, e.Event.ID), state, o, now)
	})
	if err != nil {
		return fmt.Errorf("bolt: ack %s: %w", e.Event.ID, err)
	}
	return nil
}

// ackTx removes log entry seq and records its event's state (encodeState)
// unless the entry was acknowledged before or its id was reused; an
// unmatched event joins the unmatched index.
func ackTx(tx *bbolt.Tx, seq uint64, r eventRef, state []byte, o store.Outcome, now time.Time) error {
	if err := tx.Bucket(bLog).Delete(u64(seq)); err != nil {
		return err
	}
	if r.rseq == 0 {
		return nil // swept after the dedup window: nothing to mark
	}
	sb, sk := tx.Bucket(bEvData), evKey(r.rseq, kindState, "")
	cur := sb.Get(sk)
	if len(cur) != 8 || binary.BigEndian.Uint64(cur) != seq {
		// The id was reused (its record is another), or this entry
		// was acknowledged before: nothing to mark.
		return nil
	}
	if err := sb.Put(sk, state); err != nil {
		return err
	}
	index := bUnmatched
	switch {
	case o.Failed:
		index = bFailed
	case !o.Unmatched:
		return nil
	}
	um := tx.Bucket(index)
	n, err := um.NextSequence()
	if err != nil {
		return err
	}
	return um.Put(append(u64(timeKey(now)), u64(n)...), u64(r.rseq))
}

// GetEvent returns the record of event id and the decisions stored for it,
// ordered by item id.
func (s *Store) GetEvent(ctx context.Context, id string) (store.EventRecord, []store.ItemDecisions, error) {
	var rec store.EventRecord
	var ds []store.ItemDecisions
	err := s.view(func(tx *bbolt.Tx) error {
		r := refEvent(tx, id)
		if r.rseq == 0 {
			return store.ErrNotFound
		}
		var err error
		if rec, err = getRecord(tx, r.rseq); err != nil {
			return err
		}
		ds, err = eventDecisions(tx, r)
		return err
	})
	if err != nil {
		return store.EventRecord{}, nil, fmt.Errorf("bolt: get event %s: %w", id, err)
	}
	return rec, ds, nil
}

// ListUnmatched returns the events acknowledged as unmatched, most recently
// acknowledged first; limit 0 means 100.
func (s *Store) ListUnmatched(ctx context.Context, limit int) ([]store.EventRecord, error) {
	recs, err := s.listIndexed(bUnmatched, limit, func(r store.EventRecord) bool { return r.Unmatched })
	if err != nil {
		return nil, fmt.Errorf("bolt: list unmatched: %w", err)
	}
	return recs, nil
}

// ListFailed returns the parked events, most recently parked first; limit
// 0 means 100.
func (s *Store) ListFailed(ctx context.Context, limit int) ([]store.EventRecord, error) {
	recs, err := s.listIndexed(bFailed, limit, func(r store.EventRecord) bool { return r.Failed })
	if err != nil {
		return nil, fmt.Errorf("bolt: list failed: %w", err)
	}
	return recs, nil
}

// listIndexed walks an index of acknowledged events (time + n → id) from
// the newest, keeping the records that are still acknowledged and pass
// keep (an index entry outlives a retry or a reused id), once each.
func (s *Store) listIndexed(index []byte, limit int, keep func(store.EventRecord) bool) ([]store.EventRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	var recs []store.EventRecord
	err := s.view(func(tx *bbolt.Tx) error {
		seen := map[string]bool{}
		c := tx.Bucket(index).Cursor()
		for k, v := c.Last(); k != nil && len(recs) < limit; k, v = c.Prev() {
			if len(v) != 8 {
				continue
			}
			rec, err := getRecord(tx, binary.BigEndian.Uint64(v))
			if errors.Is(err, store.ErrNotFound) {
				continue // swept; the index entry goes on the next sweep
			}
			if err != nil {
				return err
			}
			if !rec.Applied || !keep(rec) || seen[rec.Event.ID] {
				continue
			}
			seen[rec.Event.ID] = true
			recs = append(recs, rec)
		}
		return nil
	})
	return recs, err
}

// RetryEvent puts a parked event back into the log as a new entry; its
// state goes back to waiting, so it is no longer listed as failed. What
// the event applied before it was parked stays applied.
func (s *Store) RetryEvent(ctx context.Context, id string) error {
	var seq uint64
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		seq = 0
		r := refEvent(tx, id)
		if r.rseq == 0 {
			return clean(store.ErrNotFound)
		}
		rec, err := getRecord(tx, r.rseq)
		if err != nil {
			return clean(err)
		}
		if !rec.Failed {
			return clean(fmt.Errorf("event is not parked: %w", store.ErrConflict))
		}
		lb := tx.Bucket(bLog)
		if seq, err = lb.NextSequence(); err != nil {
			return err
		}
		if err := lb.Put(u64(seq), u64(r.rseq)); err != nil {
			return err
		}
		s.logGrew = true
		return tx.Bucket(bEvData).Put(evKey(r.rseq, kindState, ""), u64(seq))
	})
	if err != nil {
		return fmt.Errorf("bolt: retry event %s: %w", id, err)
	}
	return nil
}

// Flags of an acknowledged event's state.
const (
	stateUnmatched = 1
	stateFailed    = 2
)

// eventState is an event's state (its kindState key): the log sequence of
// its entry (8 bytes) while it waits; once acknowledged also the time
// (8 bytes), a flag byte (stateUnmatched, stateFailed) and the note. Keeping it apart from
// the event record means an ack rewrites a few bytes, not the whole event.
func encodeState(seq uint64, at time.Time, o store.Outcome) []byte {
	b := make([]byte, 0, 17+len(o.Note))
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint64(b, timeKey(at))
	flags := byte(0)
	if o.Unmatched {
		flags |= stateUnmatched
	}
	if o.Failed {
		flags |= stateFailed
	}
	return append(append(b, flags), o.Note...)
}

// getRecord reads the event record at rseq and fills in its state.
func getRecord(tx *bbolt.Tx, rseq uint64) (store.EventRecord, error) {
	var rec store.EventRecord
	evs := tx.Bucket(bEvData)
	if err := getJSON(evs, evKey(rseq, kindRecord, ""), &rec); err != nil {
		return rec, err
	}
	st := evs.Get(evKey(rseq, kindState, ""))
	if len(st) >= 8 {
		rec.Seq = formatSeq(binary.BigEndian.Uint64(st))
	}
	if len(st) >= 17 {
		rec.Applied = true
		rec.AppliedAt = keyTime(st[8:16])
		rec.Unmatched = st[16]&stateUnmatched != 0
		rec.Failed = st[16]&stateFailed != 0
		rec.Note = string(st[17:])
	}
	return rec, nil
}

// eventDecisions returns the decisions stored for the event, ordered by
// item id: those under its record and any kept by its id (where a pair
// under the record wins).
func eventDecisions(tx *bbolt.Tx, r eventRef) ([]store.ItemDecisions, error) {
	var ds []store.ItemDecisions
	evData := tx.Bucket(bEvData)
	scan := func(b *bbolt.Bucket, prefix []byte, byID bool) error {
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if byID && r.rseq != 0 && evData.Get(evKey(r.rseq, kindDecisions, string(k[len(prefix):]))) != nil {
				continue
			}
			var d store.ItemDecisions
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decisions %q: %w", k, err)
			}
			ds = append(ds, d)
		}
		return nil
	}
	if r.rseq != 0 {
		if err := scan(evData, evKey(r.rseq, kindDecisions, ""), false); err != nil {
			return nil, err
		}
	}
	n := len(ds)
	if err := scan(tx.Bucket(bDecisions), key(nil, r.id), true); err != nil {
		return nil, err
	}
	if n > 0 && len(ds) > n {
		slices.SortFunc(ds, func(a, b store.ItemDecisions) int { return strings.Compare(a.ItemID, b.ItemID) })
	}
	return ds, nil
}

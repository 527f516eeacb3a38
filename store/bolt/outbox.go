package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// The outbox lives in four buckets:
//
//	bOutbox        id → OutboxEntry JSON
//	bOutboxDue     u64(timeKey(due)) + id → nil       pending (at Due) and running (at LeaseUntil) entries
//	bOutboxStatus  status \0 u64(timeKey(updated)) + id → nil
//	bOutboxItem    item \0 u64(timeKey(created)) + id → nil
//
// One process owns the file, so when it opens, the entries an earlier
// process held running are due again at once (releaseLeases).

var _ store.Outbox = (*Store)(nil)

// Bucket names of the outbox (allBuckets lists them too).
var (
	bOutbox       = []byte("outbox")
	bOutboxDue    = []byte("outbox_due")
	bOutboxStatus = []byte("outbox_status")
	bOutboxItem   = []byte("outbox_item")
)

// outboxQueued reports whether e waits in the due index, and until when.
func outboxQueued(e *store.OutboxEntry) (time.Time, bool) {
	switch e.Status {
	case store.OutboxPending:
		return e.Due, true
	case store.OutboxRunning:
		return e.LeaseUntil, true
	}
	return time.Time{}, false
}

func outboxDueKey(e *store.OutboxEntry) []byte {
	t, ok := outboxQueued(e)
	if !ok {
		return nil
	}
	return append(u64(timeKey(t)), e.ID...)
}

func outboxStatusKey(e *store.OutboxEntry) []byte {
	return key(append(u64(timeKey(e.UpdatedAt)), e.ID...), e.Status)
}

func outboxItemKey(e *store.OutboxEntry) []byte {
	return key(append(u64(timeKey(e.CreatedAt)), e.ID...), e.ItemID)
}

// putOutbox stores e and moves its index entries from where old had them
// (old is nil for a new entry).
func putOutbox(tx *bbolt.Tx, e, old *store.OutboxEntry) error {
	if err := putJSON(tx.Bucket(bOutbox), []byte(e.ID), e); err != nil {
		return err
	}
	due, status := tx.Bucket(bOutboxDue), tx.Bucket(bOutboxStatus)
	if old != nil {
		if k := outboxDueKey(old); k != nil {
			if err := due.Delete(k); err != nil {
				return err
			}
		}
		if err := status.Delete(outboxStatusKey(old)); err != nil {
			return err
		}
	} else if err := tx.Bucket(bOutboxItem).Put(outboxItemKey(e), nil); err != nil {
		return err
	}
	if k := outboxDueKey(e); k != nil {
		if err := due.Put(k, nil); err != nil {
			return err
		}
	}
	return status.Put(outboxStatusKey(e), nil)
}

// addOutbox adds new pending entries (Move's), leaving existing ids alone.
func addOutbox(tx *bbolt.Tx, entries []store.OutboxEntry, now time.Time) error {
	b := tx.Bucket(bOutbox)
	for _, e := range entries {
		if e.ID == "" {
			return errors.New("outbox entry without id")
		}
		if b.Get([]byte(e.ID)) != nil {
			continue
		}
		e.Status, e.Attempts, e.Claim, e.LeaseUntil, e.DoneAt = store.OutboxPending, 0, 0, time.Time{}, time.Time{}
		if e.CreatedAt.IsZero() {
			e.CreatedAt = now
		}
		if e.Due.IsZero() {
			e.Due = now
		}
		e.UpdatedAt = e.CreatedAt
		if err := putOutbox(tx, &e, nil); err != nil {
			return err
		}
	}
	return nil
}

// getOutbox loads the entry with id, or store.ErrNotFound.
func getOutbox(tx *bbolt.Tx, id string) (store.OutboxEntry, error) {
	var e store.OutboxEntry
	err := getJSON(tx.Bucket(bOutbox), []byte(id), &e)
	return e, err
}

// ClaimOutbox marks up to max due entries running until now+lease and
// returns them, earliest due first, one per stage entry at a time (see
// store.Outbox). A read-only look comes first, so an idle poll, or one that
// finds only entries waiting behind a running one, costs no commit.
func (s *Store) ClaimOutbox(ctx context.Context, now time.Time, max int, lease time.Duration) ([]store.OutboxEntry, error) {
	if max <= 0 {
		return nil, nil
	}
	var out []store.OutboxEntry
	stale := false
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		out, stale, err = claimable(tx, now, 1)
		return err
	})
	if err != nil || (len(out) == 0 && !stale) {
		return nil, wrapOutbox("claim", "", err)
	}
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		es, _, err := claimable(tx, now, max)
		if err != nil {
			return err
		}
		out = out[:0]
		for _, old := range es {
			e := old
			e.Status, e.LeaseUntil, e.UpdatedAt = store.OutboxRunning, now.Add(lease), now
			e.Attempts++
			e.Claim++
			if err := putOutbox(tx, &e, &old); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, wrapOutbox("claim", "", err)
	}
	return out, nil
}

// claimScan bounds how many due entries a claim of max looks at: entries
// waiting behind a running one of their stage entry are passed over.
func claimScan(max int) int { return 4*max + 256 }

// claimable picks up to max entries a claim at now may take, in the order
// of the due index: per stage entry with a due entry and none running, its
// due entry with the lowest index. Index entries of vanished entries are
// dropped when tx is writable; stale reports whether there were any.
func claimable(tx *bbolt.Tx, now time.Time, max int) (out []store.OutboxEntry, stale bool, err error) {
	limit := u64(timeKey(now))
	seen := map[string]bool{}
	var gone [][]byte
	due := tx.Bucket(bOutboxDue)
	c := due.Cursor()
	scanned := 0
	for k, _ := c.First(); k != nil && len(out) < max && scanned < claimScan(max); k, _ = c.Next() {
		if len(k) < 8 || bytes.Compare(k[:8], limit) > 0 {
			break
		}
		scanned++
		e, err := getOutbox(tx, string(k[8:]))
		if errors.Is(err, store.ErrNotFound) {
			gone = append(gone, bytes.Clone(k))
			continue
		}
		if err != nil {
			return nil, false, err
		}
		g := e.Group()
		if seen[g] {
			continue
		}
		seen[g] = true
		next, ok, err := groupHead(tx, &e, now)
		if err != nil {
			return nil, false, err
		}
		if ok {
			out = append(out, next)
		}
	}
	if tx.Writable() {
		for _, k := range gone {
			if err := due.Delete(k); err != nil {
				return nil, false, err
			}
		}
	}
	return out, len(gone) > 0, nil
}

// groupHead returns the entry of e's stage entry that may run now: none
// while one of them runs under a live lease, else the due one with the
// lowest index (e itself is due). Its siblings were created with it, so
// they sit together in the item index.
func groupHead(tx *bbolt.Tx, e *store.OutboxEntry, now time.Time) (store.OutboxEntry, bool, error) {
	head, g := *e, e.Group()
	prefix := key(u64(timeKey(e.CreatedAt)), e.ItemID)
	c := tx.Bucket(bOutboxItem).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id := string(k[len(prefix):])
		if id == e.ID {
			continue
		}
		sib, err := getOutbox(tx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return store.OutboxEntry{}, false, err
		}
		if sib.Group() != g {
			continue
		}
		switch {
		case sib.Status == store.OutboxRunning && sib.LeaseUntil.After(now):
			return store.OutboxEntry{}, false, nil
		case sib.Index < head.Index && outboxDue(&sib, now):
			head = sib
		}
	}
	return head, true, nil
}

// outboxDue reports whether e may be claimed at now.
func outboxDue(e *store.OutboxEntry, now time.Time) bool {
	t, ok := outboxQueued(e)
	return ok && !t.After(now)
}

// finishOutbox runs change on the running entry id held under claim and
// stores the result.
func (s *Store) finishOutbox(ctx context.Context, op, id string, claim int64, change func(e *store.OutboxEntry)) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		old, err := getOutbox(tx, id)
		if err != nil {
			return clean(err)
		}
		if old.Status != store.OutboxRunning || old.Claim != claim {
			return clean(fmt.Errorf("%w: entry is %s under claim %d, not running under claim %d",
				store.ErrConflict, old.Status, old.Claim, claim))
		}
		e := old
		e.LeaseUntil = time.Time{}
		change(&e)
		return putOutbox(tx, &e, &old)
	})
	return wrapOutbox(op, id, err)
}

// CompleteOutbox ends a running entry as done or skipped.
func (s *Store) CompleteOutbox(ctx context.Context, id string, claim int64, status, note string, now time.Time) error {
	if status != store.OutboxDone && status != store.OutboxSkipped {
		return fmt.Errorf("bolt: complete outbox %s: status %q is not done or skipped", id, status)
	}
	return s.finishOutbox(ctx, "complete", id, claim, func(e *store.OutboxEntry) {
		e.Status, e.Note, e.UpdatedAt, e.DoneAt = status, note, now, now
	})
}

// FailOutbox records a failed attempt: pending again at retryAt, or failed
// for good when retryAt is zero.
func (s *Store) FailOutbox(ctx context.Context, id string, claim int64, msg string, retryAt, now time.Time) error {
	return s.finishOutbox(ctx, "fail", id, claim, func(e *store.OutboxEntry) {
		e.LastError, e.UpdatedAt = msg, now
		if retryAt.IsZero() {
			e.Status, e.DoneAt = store.OutboxFailed, now
			return
		}
		e.Status, e.Due = store.OutboxPending, retryAt
	})
}

// RetryOutbox makes a failed entry pending again, due now, attempts reset.
func (s *Store) RetryOutbox(ctx context.Context, id string, now time.Time) (store.OutboxEntry, error) {
	var out store.OutboxEntry
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		old, err := getOutbox(tx, id)
		if err != nil {
			return clean(err)
		}
		if old.Status != store.OutboxFailed {
			return clean(fmt.Errorf("%w: entry is %s, not failed", store.ErrConflict, old.Status))
		}
		e := old
		e.Status, e.Due, e.Attempts, e.UpdatedAt, e.DoneAt = store.OutboxPending, now, 0, now, time.Time{}
		out = e
		return putOutbox(tx, &e, &old)
	})
	if err != nil {
		return store.OutboxEntry{}, wrapOutbox("retry", id, err)
	}
	return out, nil
}

// wrapOutbox gives err the driver's message form.
func wrapOutbox(op, id string, err error) error {
	if err == nil {
		return nil
	}
	if id != "" {
		op += " " + id
	}
	return fmt.Errorf("bolt: %s outbox: %w", op, err)
}

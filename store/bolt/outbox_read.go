package bolt

import (
	"bytes"
	"context"
	"errors"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// GetOutbox returns an entry by id.
func (s *Store) GetOutbox(ctx context.Context, id string) (store.OutboxEntry, error) {
	var out store.OutboxEntry
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		out, err = getOutbox(tx, id)
		return err
	})
	if err != nil {
		return store.OutboxEntry{}, wrapOutbox("get", id, err)
	}
	return out, ctx.Err()
}

// ListOutbox returns entries matching f, most recently updated first (for
// an item filter without a status: most recently created first).
func (s *Store) ListOutbox(ctx context.Context, f store.OutboxFilter) ([]store.OutboxEntry, error) {
	if f.Limit <= 0 {
		f.Limit = defaultReadLimit
	}
	var out []store.OutboxEntry
	err := s.view(func(tx *bbolt.Tx) error {
		var prefix []byte
		var idx *bbolt.Bucket
		switch {
		case f.Status != "":
			prefix, idx = key(nil, f.Status), tx.Bucket(bOutboxStatus)
		case f.ItemID != "":
			prefix, idx = key(nil, f.ItemID), tx.Bucket(bOutboxItem)
		}
		match := func(id []byte) (bool, error) {
			e, err := getOutbox(tx, string(id))
			if errors.Is(err, store.ErrNotFound) {
				return false, nil
			}
			if err != nil || (f.ItemID != "" && e.ItemID != f.ItemID) || (f.Status != "" && e.Status != f.Status) {
				return false, err
			}
			out = append(out, e)
			return len(out) == f.Limit, nil
		}
		if idx == nil {
			c := tx.Bucket(bOutbox).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if done, err := match(k); err != nil || done {
					return err
				}
			}
			return nil
		}
		return reverseScan(idx, prefix, func(k []byte) (bool, error) { return match(k[len(prefix)+8:]) })
	})
	if err != nil {
		return nil, wrapOutbox("list", "", err)
	}
	return out, nil
}

// reverseScan calls fn with the keys of b that start with prefix (whose
// last byte is below 0xff: a separator or a key kind), last first, until
// fn says stop.
func reverseScan(b *bbolt.Bucket, prefix []byte, fn func(k []byte) (stop bool, err error)) error {
	upper := append(bytes.Clone(prefix[:len(prefix)-1]), prefix[len(prefix)-1]+1)
	c := b.Cursor()
	k, _ := c.Seek(upper)
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		if stop, err := fn(k); err != nil || stop {
			return err
		}
	}
	return nil
}

// OutboxDepth counts pending and running entries.
func (s *Store) OutboxDepth(ctx context.Context) (int, error) {
	n := 0
	err := s.view(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bOutboxDue).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, wrapOutbox("depth", "", err)
	}
	return n, ctx.Err()
}

// NextOutboxDue returns the earliest due time of a queued entry.
func (s *Store) NextOutboxDue(ctx context.Context) (time.Time, bool, error) {
	var t time.Time
	ok := false
	err := s.view(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bOutboxDue).Cursor().First(); k != nil {
			t, ok = keyTime(k), true
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, wrapOutbox("next due", "", err)
	}
	return t, ok, ctx.Err()
}

// releaseLeases makes the entries that were running when the previous
// process ended due at now: with one process per file, nobody holds them.
func releaseLeases(tx *bbolt.Tx, now time.Time) (int, error) {
	prefix := key(nil, store.OutboxRunning)
	keys := prefixKeys(tx.Bucket(bOutboxStatus), prefix, 0)
	for _, k := range keys {
		old, err := getOutbox(tx, string(k[len(prefix)+8:]))
		if err != nil {
			return 0, err
		}
		e := old
		e.Status, e.Due, e.LeaseUntil, e.UpdatedAt = store.OutboxPending, now, time.Time{}, now
		if err := putOutbox(tx, &e, &old); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// sweepOutbox deletes up to limit done or skipped entries finished at or
// before cutoff, with their index entries.
func sweepOutbox(tx *bbolt.Tx, cutoff uint64, limit int) (int, error) {
	n := 0
	status := tx.Bucket(bOutboxStatus)
	for _, st := range []string{store.OutboxDone, store.OutboxSkipped} {
		prefix := key(nil, st)
		for _, k := range prefixKeys(status, prefix, limit-n) {
			if bytes.Compare(k[len(prefix):len(prefix)+8], u64(cutoff)) > 0 {
				break
			}
			id := k[len(prefix)+8:]
			e, err := getOutbox(tx, string(id))
			if err == nil {
				if err := tx.Bucket(bOutboxItem).Delete(outboxItemKey(&e)); err != nil {
					return n, err
				}
				if err := tx.Bucket(bOutbox).Delete(id); err != nil {
					return n, err
				}
			}
			if err := status.Delete(k); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

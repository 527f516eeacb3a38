package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// Records live in bRecords, key → u64(version) + u64(timeKey(expiry), 0 for
// none) + value; bRecExpiry indexes the ones with an expiry for the sweeper.
// An expired record counts as absent at once, whether swept yet or not.

// recHeader is the length of a stored record's version and expiry.
const recHeader = 16

var _ store.Records = (*Store)(nil)

// expiryOf is the timeKey of now+ttl, or 0 (never) for ttl <= 0.
func expiryOf(now time.Time, ttl time.Duration) uint64 {
	if ttl <= 0 {
		return 0
	}
	return timeKey(now.Add(ttl))
}

// live reports whether something expiring at exp (a timeKey, 0 for never)
// still exists at now (a timeKey). The sweeper deletes what is not.
func live(exp, now uint64) bool { return exp == 0 || exp > now }

// storedRecord is a decoded record; value aliases the transaction's memory.
type storedRecord struct {
	version uint64
	expiry  uint64
	value   []byte
}

// getStored returns the live record at k, or ok false when there is none
// or it has expired by now.
func getStored(b *bbolt.Bucket, k []byte, now uint64) (rec storedRecord, ok bool, err error) {
	v := b.Get(k)
	if v == nil {
		return rec, false, nil
	}
	if len(v) < recHeader {
		return rec, false, fmt.Errorf("record %q: %d bytes, too short", k, len(v))
	}
	rec = storedRecord{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), v[recHeader:]}
	return rec, live(rec.expiry, now), nil
}

// checkKey refuses the empty key, which bbolt cannot store.
func checkKey(op, key string) error {
	if key == "" {
		return fmt.Errorf("bolt: %s: key is required", op)
	}
	return nil
}

// GetRecord returns the record at key, or store.ErrNotFound when there is
// none or it has expired.
func (s *Store) GetRecord(ctx context.Context, key string) (store.Record, error) {
	if err := checkKey("get record", key); err != nil {
		return store.Record{}, err
	}
	now := timeKey(s.now())
	var out store.Record
	err := s.view(func(tx *bbolt.Tx) error {
		rec, ok, err := getStored(tx.Bucket(bRecords), []byte(key), now)
		if err != nil {
			return err
		}
		if !ok {
			return store.ErrNotFound
		}
		out = store.Record{Value: bytes.Clone(rec.value), Version: int64(rec.version)}
		return nil
	})
	if err != nil {
		return store.Record{}, fmt.Errorf("bolt: get record %s: %w", key, err)
	}
	if out.Value == nil {
		out.Value = []byte{}
	}
	return out, nil
}

// PutRecord stores value at key if the live record's version is expect (0:
// there is no live record) and returns the new version. A ttl > 0 makes
// the record expire that long after now; 0 stores it without expiry, also
// when the record it replaces had one.
func (s *Store) PutRecord(ctx context.Context, key string, value []byte, expect int64, ttl time.Duration) (int64, error) {
	if err := checkKey("put record", key); err != nil {
		return 0, err
	}
	if expect < 0 {
		return 0, fmt.Errorf("bolt: put record %s: negative version %d", key, expect)
	}
	nowT := s.now()
	now, exp := timeKey(nowT), expiryOf(nowT, ttl)
	k := []byte(key)
	var version uint64
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		var err error
		version, err = putRecordTx(tx, k, value, uint64(expect), now, exp)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("bolt: put record %s: %w", key, err)
	}
	return int64(version), nil
}

// putRecordTx is PutRecord's write in tx. A version other than expect is
// a clean ErrConflict (nothing written).
func putRecordTx(tx *bbolt.Tx, k, value []byte, expect, now, exp uint64) (uint64, error) {
	b := tx.Bucket(bRecords)
	rec, ok, err := getStored(b, k, now)
	if err != nil {
		return 0, clean(err)
	}
	cur := uint64(0)
	if ok {
		cur = rec.version
	}
	if cur != expect {
		return 0, clean(fmt.Errorf("%w: version is %d, not %d", store.ErrConflict, cur, expect))
	}
	if err := reindex(tx.Bucket(bRecExpiry), k, rec.expiry, exp); err != nil {
		return 0, err
	}
	version := cur + 1
	data := make([]byte, 0, recHeader+len(value))
	data = binary.BigEndian.AppendUint64(data, version)
	data = binary.BigEndian.AppendUint64(data, exp)
	return version, b.Put(k, append(data, value...))
}

// AppendListPutRecord implements store.AppendPutter: the append and the
// put in one transaction (one commit). The append stands whatever the
// put's version check says.
func (s *Store) AppendListPutRecord(ctx context.Context, a store.ListAppend, p store.RecordPut) (int64, bool, int64, error) {
	r, err := s.AppendListPutRecordEvents(ctx, a, p, nil)
	return r.Seq, r.Duplicate, r.Version, err
}

var _ store.EventsPutter = (*Store)(nil)

// AppendListPutRecordEvents implements store.EventsPutter: the append,
// the put and, if the put passes its version check, the events' appends
// to the log, in one transaction (one commit). The events are encoded
// before the committer runs, as Append does.
func (s *Store) AppendListPutRecordEvents(ctx context.Context, a store.ListAppend, p store.RecordPut, evs []*normalize.Event) (store.EventsPutResult, error) {
	if a.Key == "" || a.ID == "" {
		return store.EventsPutResult{}, errors.New("bolt: append list: key and element id are required")
	}
	if err := checkKey("put record", p.Key); err != nil {
		return store.EventsPutResult{}, err
	}
	if p.Expect < 0 {
		return store.EventsPutResult{}, fmt.Errorf("bolt: put record %s: negative version %d", p.Key, p.Expect)
	}
	data := make([][]byte, len(evs))
	owns := make([]*normalize.Event, len(evs))
	for i, ev := range evs {
		if ev == nil || ev.ID == "" {
			return store.EventsPutResult{}, errors.New("bolt: append: event id is required")
		}
		var err error
		if data[i], owns[i], err = encodeEvent(ev); err != nil {
			return store.EventsPutResult{}, err
		}
	}
	nowT := s.now()
	now := timeKey(nowT)
	elem := listElem(a.ID, a.Value)
	var (
		res    store.EventsPutResult
		putErr error
	)
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		res, putErr = store.EventsPutResult{}, nil // this may be a rerun
		seq, dup, err := appendListTx(tx, []byte(a.Key), a.ID, elem, now, listExpiryOf(nowT, a.TTL), a.Unique)
		if err != nil {
			return err
		}
		res.Seq, res.Duplicate = int64(seq), dup
		var version uint64
		version, putErr = putRecordTx(tx, []byte(p.Key), p.Value, uint64(p.Expect), now, expiryOf(nowT, p.TTL))
		var ce cleanError
		if errors.As(putErr, &ce) {
			putErr = ce.err // refused before writing: the append commits alone
			return nil
		}
		if putErr != nil {
			return putErr
		}
		res.Version = int64(version)
		if len(evs) > 0 {
			res.Events = make([]store.AppendResult, len(evs))
		}
		for i, ev := range evs {
			if res.Events[i], err = s.appendTx(tx, ev.ID, data[i], owns[i], nowT); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.EventsPutResult{}, fmt.Errorf("bolt: append list %s and put record %s: %w", a.Key, p.Key, err)
	}
	if putErr != nil {
		return res, fmt.Errorf("bolt: put record %s: %w", p.Key, putErr)
	}
	return res, nil
}

// DeleteRecord removes the record at key if its version is expect.
func (s *Store) DeleteRecord(ctx context.Context, key string, expect int64) error {
	if err := checkKey("delete record", key); err != nil {
		return err
	}
	now := timeKey(s.now())
	k := []byte(key)
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bRecords)
		rec, ok, err := getStored(b, k, now)
		if err != nil {
			return clean(err)
		}
		if !ok {
			return clean(store.ErrNotFound)
		}
		if rec.version != uint64(expect) {
			return clean(fmt.Errorf("%w: version is %d, not %d", store.ErrConflict, rec.version, expect))
		}
		if err := reindex(tx.Bucket(bRecExpiry), k, rec.expiry, 0); err != nil {
			return err
		}
		return b.Delete(k)
	})
	if err != nil {
		return fmt.Errorf("bolt: delete record %s: %w", key, err)
	}
	return nil
}

// reindex moves k's entry in an expiry index from old to exp (either 0 for
// no entry).
func reindex(idx *bbolt.Bucket, k []byte, old, exp uint64) error {
	if old == exp {
		return nil
	}
	if old != 0 {
		if err := idx.Delete(append(u64(old), k...)); err != nil {
			return err
		}
	}
	if exp != 0 {
		return idx.Put(append(u64(exp), k...), nil)
	}
	return nil
}

// sweepRecords deletes up to limit records and lists whose expiry is at or
// before now, with their index entries. An index entry whose record or
// list was renewed (its stored expiry differs) just goes.
func sweepRecords(tx *bbolt.Tx, now uint64, limit int) (int, error) {
	n := 0
	recIdx, records := tx.Bucket(bRecExpiry), tx.Bucket(bRecords)
	for _, k := range headKeys(recIdx, now, limit) {
		stamp, rk := k[:8], k[8:]
		if v := records.Get(rk); len(v) >= recHeader && bytes.Equal(v[8:16], stamp) {
			if err := records.Delete(rk); err != nil {
				return n, err
			}
		}
		if err := recIdx.Delete(k); err != nil {
			return n, err
		}
		n++
	}
	listIdx, lists := tx.Bucket(bListExpiry), tx.Bucket(bList)
	for _, k := range headKeys(listIdx, now, limit-n) {
		stamp, lk := k[:8], k[8:]
		if bytes.Equal(lists.Get(listKey(lk, listExpiryKind, nil)), stamp) {
			if err := deletePrefix(lists, listPrefix(lk)); err != nil {
				return n, err
			}
		}
		if err := listIdx.Delete(k); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

var _ store.ListsAppender = (*Store)(nil)

// AppendLists implements store.ListsAppender: every append in one
// transaction (one commit), in order. An append with an empty key or id
// gets its error and the others go on.
func (s *Store) AppendLists(ctx context.Context, as []store.ListAppend) ([]store.ListAppendResult, error) {
	out := make([]store.ListAppendResult, len(as))
	elems := make([][]byte, len(as))
	todo := 0
	for i, a := range as {
		if err := validListKey(a.Key); err != nil {
			out[i].Err = fmt.Errorf("bolt: append list %q: %w", a.Key, err)
			continue
		}
		if a.ID == "" {
			out[i].Err = errors.New("bolt: append list: element id is required")
			continue
		}
		elems[i] = listElem(a.ID, a.Value)
		todo++
	}
	if todo == 0 {
		return out, nil
	}
	nowT := s.now()
	now := timeKey(nowT)
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		for i, a := range as {
			if elems[i] == nil {
				continue
			}
			seq, dup, err := appendListTx(tx, []byte(a.Key), a.ID, elems[i], now, listExpiryOf(nowT, a.TTL), a.Unique)
			if err != nil {
				return err
			}
			out[i].Seq, out[i].Duplicate = int64(seq), dup
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: append %d list elements: %w", todo, err)
	}
	return out, nil
}

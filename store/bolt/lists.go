package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// Lists live in bList, all in one bucket, each under its key and sep:
//
//	key \0 "e" u64(seq) → uvarint(len(id)) + id + value   the elements, in order
//	key \0 "i" id       → u64(seq)                        the id index (not of elements appended Unique)
//	key \0 "x"          → u64(timeKey(expiry))            only for a list with a ttl
//
// Elements are numbered from 1 without gaps (the next is the last one's
// plus one). One bucket, not one per list, so an append dirties the leaf
// that holds the list's newest elements and nothing else (a bucket of its
// own had its root move on every write, rewriting the parent's header as
// well). bListExpiry indexes the lists that expire, for the sweeper; an
// expired list counts as absent at once, and the next append starts it
// afresh. List keys never contain sep.

// Kinds of bList keys.
const (
	listElemKind   = 'e'
	listIDKind     = 'i'
	listExpiryKind = 'x'
)

// defaultReadLimit is ReadList's limit when the caller gives none.
const defaultReadLimit = 100

// listKey is the bList key of kind for list k, followed by tail.
func listKey(k []byte, kind byte, tail []byte) []byte {
	b := make([]byte, 0, len(k)+2+len(tail))
	return append(append(append(b, k...), sep, kind), tail...)
}

// listPrefix is the prefix of every bList key of list k.
func listPrefix(k []byte) []byte {
	return append(append(make([]byte, 0, len(k)+1), k...), sep)
}

// Lists' expiries are rounded up to a step of ttl/1024, at most
// listExpiryStepMax, so that appends to a list within one step find its
// expiry unchanged and leave the expiry index alone (rewriting it cost each
// hit of a busy list a random index page). A list is kept at most that step
// (0.1% of its ttl, an hour at most) past ttl after its last append, never
// less.
const listExpiryStepMax = time.Hour

// listExpiryOf is the timeKey of a list's expiry after an append at now
// with ttl (0, never, for ttl <= 0): now+ttl rounded up to the step.
func listExpiryOf(now time.Time, ttl time.Duration) uint64 {
	if ttl <= 0 {
		return 0
	}
	step := min(ttl/1024, listExpiryStepMax)
	at := now.Add(ttl)
	if step > 0 {
		if rem := at.UnixNano() % int64(step); rem != 0 {
			at = at.Add(step - time.Duration(rem))
		}
	}
	return timeKey(at)
}

// listExpiry returns the expiry of list k (0 for none).
func listExpiry(lists *bbolt.Bucket, k []byte) uint64 {
	if v := lists.Get(listKey(k, listExpiryKind, nil)); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// findElem returns the sequence number of the element with id in list k,
// or 0.
func findElem(lists *bbolt.Bucket, k []byte, id string) uint64 {
	if v := lists.Get(listKey(k, listIDKind, []byte(id))); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// lastElem returns the sequence number of the last element of list k, or 0.
func lastElem(lists *bbolt.Bucket, k []byte) uint64 {
	return lastSeqUnder(lists, listKey(k, listElemKind, nil))
}

// validListKey refuses the list keys bList cannot hold.
func validListKey(key string) error {
	if key == "" {
		return errors.New("key is required")
	}
	if strings.IndexByte(key, sep) >= 0 {
		return errors.New("key contains a NUL byte")
	}
	return nil
}

// AppendList adds an element to the list at key unless the list has one
// with id; it returns the element's sequence number and whether it was
// there already (then nothing changes, not even the expiry). A ttl > 0 sets
// the whole list to expire that long after now; 0 leaves its expiry as it
// is. The common retry, a duplicate, is answered without a write.
func (s *Store) AppendList(ctx context.Context, key, id string, value []byte, ttl time.Duration) (int64, bool, error) {
	if err := validListKey(key); err != nil {
		return 0, false, fmt.Errorf("bolt: append list %q: %w", key, err)
	}
	if id == "" {
		return 0, false, errors.New("bolt: append list: element id is required")
	}
	nowT := s.now()
	now, exp := timeKey(nowT), listExpiryOf(nowT, ttl)
	k := []byte(key)
	var seq uint64
	err := s.view(func(tx *bbolt.Tx) error {
		lists := tx.Bucket(bList)
		if live(listExpiry(lists, k), now) {
			seq = findElem(lists, k, id)
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("bolt: append list %s: %w", key, err)
	}
	if seq != 0 {
		return int64(seq), true, nil
	}
	elem := listElem(id, value)
	dup := false
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		var err error
		seq, dup, err = appendListTx(tx, k, id, elem, now, exp, false)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("bolt: append list %s: %w", key, err)
	}
	return int64(seq), dup, nil
}

// listElem is the stored form of a list element: uvarint(len(id)), id, value.
func listElem(id string, value []byte) []byte {
	elem := binary.AppendUvarint(nil, uint64(len(id)))
	return append(append(elem, id...), value...)
}

// appendListTx is AppendList's write in tx (it may run more than once).
func appendListTx(tx *bbolt.Tx, k []byte, id string, elem []byte, now, exp uint64, unique bool) (seq uint64, dup bool, err error) {
	lists, idx := tx.Bucket(bList), tx.Bucket(bListExpiry)
	old := listExpiry(lists, k)
	if !live(old, now) {
		// Expired but not swept yet: start the list afresh.
		if err := deletePrefix(lists, listPrefix(k)); err != nil {
			return 0, false, err
		}
		if err := reindex(idx, k, old, 0); err != nil {
			return 0, false, err
		}
		old = 0
	} else if !unique {
		if seq = findElem(lists, k, id); seq != 0 {
			return seq, true, nil
		}
	}
	next := lastElem(lists, k) + 1
	if err := lists.Put(listKey(k, listElemKind, u64(next)), elem); err != nil {
		return 0, false, err
	}
	if !unique { // a unique element's id is kept in the element only
		if err := lists.Put(listKey(k, listIDKind, []byte(id)), u64(next)); err != nil {
			return 0, false, err
		}
	}
	if exp != 0 && exp != old {
		if err := reindex(idx, k, old, exp); err != nil {
			return 0, false, err
		}
		if err := lists.Put(listKey(k, listExpiryKind, nil), u64(exp)); err != nil {
			return 0, false, err
		}
	}
	return next, false, nil
}

// ReadList returns up to limit elements of the list at key with Seq >
// after, in order; limit <= 0 means 100. A missing or expired list has no
// elements. It seeks straight to after+1.
func (s *Store) ReadList(ctx context.Context, key string, after int64, limit int) ([]store.ListElem, error) {
	if err := validListKey(key); err != nil {
		return nil, fmt.Errorf("bolt: read list %q: %w", key, err)
	}
	if limit <= 0 {
		limit = defaultReadLimit
	}
	after = max(after, 0)
	now := timeKey(s.now())
	var out []store.ListElem
	err := s.view(func(tx *bbolt.Tx) error {
		lists, k := tx.Bucket(bList), []byte(key)
		if !live(listExpiry(lists, k), now) {
			return nil
		}
		prefix := listKey(k, listElemKind, nil)
		c := lists.Cursor()
		for ek, v := c.Seek(listKey(k, listElemKind, u64(uint64(after)+1))); ek != nil && bytes.HasPrefix(ek, prefix) && len(out) < limit; ek, v = c.Next() {
			if len(ek) != len(prefix)+8 {
				return fmt.Errorf("element key %x: bad length", ek)
			}
			n, w := binary.Uvarint(v)
			if w <= 0 || uint64(len(v)-w) < n {
				return fmt.Errorf("element %x: corrupt", ek)
			}
			out = append(out, store.ListElem{
				Seq:   int64(binary.BigEndian.Uint64(ek[len(prefix):])),
				ID:    string(v[w : w+int(n)]),
				Value: bytes.Clone(v[w+int(n):]),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: read list %s: %w", key, err)
	}
	return out, nil
}

package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// Lists live in bLists, one nested bucket per list key:
//
//	"e" + u64(seq) → uvarint(len(id)) + id + value   the elements, in order
//	"i" + id       → u64(seq)                        the id index
//	"x"            → u64(timeKey(expiry))            only for a list with a ttl
//
// The bucket's sequence numbers the elements, so they are gapless from 1.
// bListExpiry indexes the lists that expire, for the sweeper; an expired
// list counts as absent at once, and the next append starts it afresh.

// listExpiryKey is the key of a list's expiry inside its bucket.
var listExpiryKey = []byte{'x'}

// defaultReadLimit is ReadList's limit when the caller gives none.
const defaultReadLimit = 100

func elemKey(seq uint64) []byte { return append([]byte{'e'}, u64(seq)...) }

func elemIDKey(id string) []byte { return append([]byte{'i'}, id...) }

// listExpiry returns the expiry of the list in lb (0 for none).
func listExpiry(lb *bbolt.Bucket) uint64 {
	if v := lb.Get(listExpiryKey); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// liveList returns the bucket of the list at k, or nil when there is none
// or it has expired by now.
func liveList(tx *bbolt.Tx, k []byte, now uint64) *bbolt.Bucket {
	lb := tx.Bucket(bLists).Bucket(k)
	if lb == nil || !live(listExpiry(lb), now) {
		return nil
	}
	return lb
}

// findElem returns the sequence number of the element with id, or 0.
func findElem(lb *bbolt.Bucket, id string) uint64 {
	if v := lb.Get(elemIDKey(id)); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// AppendList adds an element to the list at key unless the list has one
// with id; it returns the element's sequence number and whether it was
// there already (then nothing changes, not even the expiry). A ttl > 0 sets
// the whole list to expire that long after now; 0 leaves its expiry as it
// is. The common retry, a duplicate, is answered without a write.
func (s *Store) AppendList(ctx context.Context, key, id string, value []byte, ttl time.Duration) (int64, bool, error) {
	if key == "" || id == "" {
		return 0, false, errors.New("bolt: append list: key and element id are required")
	}
	nowT := s.now()
	now, exp := timeKey(nowT), expiryOf(nowT, ttl)
	k := []byte(key)
	var seq uint64
	err := s.view(func(tx *bbolt.Tx) error {
		if lb := liveList(tx, k, now); lb != nil {
			seq = findElem(lb, id)
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
		seq, dup, err = appendListTx(tx, k, id, elem, now, exp)
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
func appendListTx(tx *bbolt.Tx, k []byte, id string, elem []byte, now, exp uint64) (seq uint64, dup bool, err error) {
	lists, idx := tx.Bucket(bLists), tx.Bucket(bListExpiry)
	lb := lists.Bucket(k)
	old := uint64(0)
	if lb != nil {
		old = listExpiry(lb)
		if !live(old, now) {
			// Expired but not swept yet: start the list afresh.
			if err := lists.DeleteBucket(k); err != nil {
				return 0, false, err
			}
			if err := reindex(idx, k, old, 0); err != nil {
				return 0, false, err
			}
			lb, old = nil, 0
		} else if seq = findElem(lb, id); seq != 0 {
			return seq, true, nil
		}
	}
	if lb == nil {
		if lb, err = lists.CreateBucket(k); err != nil {
			return 0, false, err
		}
	}
	next, err := lb.NextSequence()
	if err != nil {
		return 0, false, err
	}
	if err := lb.Put(elemKey(next), elem); err != nil {
		return 0, false, err
	}
	if err := lb.Put(elemIDKey(id), u64(next)); err != nil {
		return 0, false, err
	}
	if exp != 0 {
		if err := reindex(idx, k, old, exp); err != nil {
			return 0, false, err
		}
		if err := lb.Put(listExpiryKey, u64(exp)); err != nil {
			return 0, false, err
		}
	}
	return next, false, nil
}

// ReadList returns up to limit elements of the list at key with Seq >
// after, in order; limit <= 0 means 100. A missing or expired list has no
// elements. It seeks straight to after+1.
func (s *Store) ReadList(ctx context.Context, key string, after int64, limit int) ([]store.ListElem, error) {
	if key == "" {
		return nil, errors.New("bolt: read list: key is required")
	}
	if limit <= 0 {
		limit = defaultReadLimit
	}
	after = max(after, 0)
	now := timeKey(s.now())
	var out []store.ListElem
	err := s.view(func(tx *bbolt.Tx) error {
		lb := liveList(tx, []byte(key), now)
		if lb == nil {
			return nil
		}
		c := lb.Cursor()
		for k, v := c.Seek(elemKey(uint64(after) + 1)); k != nil && k[0] == 'e' && len(out) < limit; k, v = c.Next() {
			if len(k) != 9 {
				return fmt.Errorf("element key %x: bad length", k)
			}
			n, w := binary.Uvarint(v)
			if w <= 0 || uint64(len(v)-w) < n {
				return fmt.Errorf("element %x: corrupt", k)
			}
			out = append(out, store.ListElem{
				Seq:   int64(binary.BigEndian.Uint64(k[1:])),
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

package bolt

import (
	"encoding/binary"

	bbolt "go.etcd.io/bbolt"
)

// What the store keeps of an event lives in bEvData under the event's
// record sequence (rseq): the log sequence of its first append, which
// grows with every append, so the writes of one commit land on the last
// pages of the bucket whatever the event ids look like (message and
// provider ids scatter over the key space; keyed by id, every event
// dirtied pages of its own in four buckets). The dedup key maps the id to
// the rseq; a log entry holds the rseq, so RetryEvent's new entry finds
// the same record.
//
// Keys of bEvData: u64(rseq) followed by one of these kinds, the pair
// kinds followed by the item id.
const (
	kindRecord    = 0 // EventRecord JSON without its state, written once
	kindState     = 1 // eventState (log.go)
	kindDecisions = 2 // + item id → ItemDecisions JSON
	kindApplied   = 3 // + item id → nil
)

// evKey is the bEvData key of kind for rseq (and item, for the pair kinds).
func evKey(rseq uint64, kind byte, item string) []byte {
	b := make([]byte, 0, 9+len(item))
	b = binary.BigEndian.AppendUint64(b, rseq)
	return append(append(b, kind), item...)
}

// dedupValue is the dedup key's value: the expiry (timeKey, 8 bytes)
// then the rseq.
func dedupValue(exp, rseq uint64) []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint64(b, exp)
	return binary.BigEndian.AppendUint64(b, rseq)
}

// recordSeq reads the rseq from a dedup value; 0 means none.
func recordSeq(v []byte) uint64 {
	if len(v) < 16 {
		return 0
	}
	return binary.BigEndian.Uint64(v[8:16])
}

// eventRef locates what tx holds of one event.
type eventRef struct {
	id   string
	rseq uint64 // 0: the event has no record (never appended, or swept)
}

// refEvent looks event id up through its dedup key.
func refEvent(tx *bbolt.Tx, id string) eventRef {
	return eventRef{id: id, rseq: recordSeq(tx.Bucket(bDedup).Get([]byte(id)))}
}

// pair returns the bucket and key of the pair (r, item) of kind: under
// the rseq when the event has a record, else under the ids in bDecisions
// or bApplied, where the markers of events the store never saw appended
// live (a Move naming any event id is honoured) and where files of the
// first layout kept them all.
func (r eventRef) pair(tx *bbolt.Tx, kind byte, item string) (*bbolt.Bucket, []byte) {
	if r.rseq != 0 {
		return tx.Bucket(bEvData), evKey(r.rseq, kind, item)
	}
	if kind == kindApplied {
		return tx.Bucket(bApplied), pairKey(r.id, item)
	}
	return tx.Bucket(bDecisions), pairKey(r.id, item)
}

// has reports whether the pair (r, item) of kind exists. An event with a
// record also has its pairs looked up by id, in case one was set by id
// before its append (the old buckets are empty in the usual case, which
// costs nothing).
func (r eventRef) has(tx *bbolt.Tx, kind byte, item string) bool {
	b, k := r.pair(tx, kind, item)
	if b.Get(k) != nil {
		return true
	}
	return r.rseq != 0 && eventRef{id: r.id}.has(tx, kind, item)
}

// putPair stores the pair (r, item) of kind.
func (r eventRef) putPair(tx *bbolt.Tx, kind byte, item string, v []byte) error {
	b, k := r.pair(tx, kind, item)
	if v == nil {
		v = []byte{}
	}
	return b.Put(k, v)
}

package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// sep separates the parts of composite keys; ids never contain it.
const sep = 0

// u64 encodes v big-endian, so keys sort numerically.
func u64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, v)
}

// timeKey maps t to an unsigned number that sorts like the time (the zero
// time sorts first).
func timeKey(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano()) ^ 1<<63
}

// keyTime is the inverse of timeKey for 8-byte keys.
func keyTime(b []byte) time.Time {
	if len(b) < 8 {
		return time.Time{}
	}
	v := binary.BigEndian.Uint64(b)
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(v^1<<63))
}

// key joins parts with sep and appends the raw tail (which may be nil).
func key(tail []byte, parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
		b = append(b, sep)
	}
	return append(b, tail...)
}

// pairKey is the key of an (event, item) pair.
func pairKey(eventID, itemID string) []byte {
	return key([]byte(itemID), eventID)
}

// lastSeqUnder returns the 8-byte sequence that ends the last key of b
// under prefix (keys prefix + u64(n)), or 0 when there is none.
func lastSeqUnder(b *bbolt.Bucket, prefix []byte) uint64 {
	var n uint64
	_ = reverseScan(b, prefix, func(k []byte) (bool, error) {
		if len(k) == len(prefix)+8 {
			n = binary.BigEndian.Uint64(k[len(prefix):])
		}
		return true, nil
	})
	return n
}

// identityKey is the key of an identity.
func identityKey(id store.Identity) []byte {
	return key([]byte(id.Value), id.Kind)
}

// formatSeq is the Seq string of a log sequence number.
func formatSeq(seq uint64) string { return strconv.FormatUint(seq, 10) }

// parseSeq is the inverse of formatSeq.
func parseSeq(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("bad log position %q", s)
	}
	return v, nil
}

// putJSON stores v as JSON under k.
func putJSON(b *bbolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

// getJSON decodes the value under k into v; it returns store.ErrNotFound
// when there is none.
func getJSON(b *bbolt.Bucket, k []byte, v any) error {
	data := b.Get(k)
	if data == nil {
		return store.ErrNotFound
	}
	return json.Unmarshal(data, v)
}

// prefixKeys returns copies of the keys of b that start with prefix, at
// most limit of them (0 for all).
func prefixKeys(b *bbolt.Bucket, prefix []byte, limit int) [][]byte {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
		if limit > 0 && len(keys) == limit {
			break
		}
	}
	return keys
}

// deletePrefix deletes every key of b that starts with prefix.
func deletePrefix(b *bbolt.Bucket, prefix []byte) error {
	for _, k := range prefixKeys(b, prefix, 0) {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

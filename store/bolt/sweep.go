package bolt

import (
	"bytes"
	"context"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// sweepChunk bounds the keys one sweep transaction deletes, so the sweeper
// never holds the committer for long.
const sweepChunk = 500

// sweeper runs sweep every interval until Close.
func (s *Store) sweeper(interval time.Duration) {
	defer close(s.sweepDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			n, err := s.sweep()
			if err != nil {
				select {
				case <-s.closing:
				default:
					s.log.Warn("bolt: sweep failed", "deleted", n, "err", err)
				}
				continue
			}
			if n > 0 {
				s.log.Debug("bolt: swept expired entries", "deleted", n)
			}
		}
	}
}

// sweep deletes, in chunks, the dedup keys whose window has passed together
// with their event records, decisions and applied markers, unmatched index
// entries older than the window, expired records and lists, and outbox
// entries finished longer than the window ago. It returns
// how many expiry and index entries it removed.
func (s *Store) sweep() (int, error) {
	total := 0
	for {
		now := s.now()
		n := 0
		err := s.update(context.Background(), func(tx *bbolt.Tx) error {
			n = 0
			steps := []func(limit int) (int, error){
				func(limit int) (int, error) { return sweepExpired(tx, timeKey(now), limit) },
				func(limit int) (int, error) { return sweepIndex(tx, bUnmatched, timeKey(now.Add(-s.window)), limit) },
				func(limit int) (int, error) { return sweepIndex(tx, bFailed, timeKey(now.Add(-s.window)), limit) },
				func(limit int) (int, error) { return sweepRecords(tx, timeKey(now), limit) },
				func(limit int) (int, error) { return sweepOutbox(tx, timeKey(now.Add(-s.window)), limit) },
			}
			for _, step := range steps {
				m, err := step(sweepChunk - n)
				n += m
				if err != nil || n == sweepChunk {
					return err
				}
			}
			return nil
		})
		total += n
		if err != nil || n < sweepChunk {
			return total, err
		}
	}
}

// sweepExpired handles up to limit expiry entries at or before now.
func sweepExpired(tx *bbolt.Tx, now uint64, limit int) (int, error) {
	expiry, dedup := tx.Bucket(bExpiry), tx.Bucket(bDedup)
	keys := headKeys(expiry, now, limit)
	for _, k := range keys {
		stamp, id := k[:8], k[8:]
		// The key may have been renewed by a later Append of the same id;
		// then only this stale index entry goes.
		if v := dedup.Get(id); len(v) >= 8 && bytes.Equal(v[:8], stamp) {
			r := eventRef{id: string(id), rseq: recordSeq(v)}
			if err := dedup.Delete(id); err != nil {
				return 0, err
			}
			if err := forgetEvent(tx, r); err != nil {
				return 0, err
			}
		}
		if err := expiry.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// sweepIndex deletes up to limit entries of an index of acknowledged
// events (unmatched, failed) acknowledged before cutoff.
func sweepIndex(tx *bbolt.Tx, index []byte, cutoff uint64, limit int) (int, error) {
	b := tx.Bucket(index)
	keys := headKeys(b, cutoff, limit)
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// headKeys returns copies of the first keys of b (up to limit) whose
// leading 8-byte time is at or before until.
func headKeys(b *bbolt.Bucket, until uint64, limit int) [][]byte {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(keys) < limit; k, _ = c.Next() {
		if len(k) < 8 || bytes.Compare(k[:8], u64(until)) > 0 {
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	return keys
}

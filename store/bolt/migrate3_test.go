package bolt

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// writeLayout2 writes, with bbolt alone, a file as layout 2 left it: items
// "a", "ab" and "b" (ids sharing a prefix), each with its timeline in
// layout 2's bucket, n entries for the nth item, ids <item>-<k>.
func writeLayout2(t *testing.T, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket(bMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(layoutKey, u64(2)); err != nil {
			return err
		}
		items, err := tx.CreateBucket(bItems)
		if err != nil {
			return err
		}
		tl, err := tx.CreateBucket(bTimeline2)
		if err != nil {
			return err
		}
		for n, item := range []string{"a", "ab", "b"} {
			it, _ := json.Marshal(store.Item{ID: item, Pipeline: "sales", Stage: "new", Version: 1})
			if err := items.Put([]byte(item), it); err != nil {
				return err
			}
			for k := 1; k <= n+1; k++ {
				id := fmt.Sprintf("%s-%d", item, k)
				e, _ := json.Marshal(store.TimelineEntry{ID: id, ItemID: item, Kind: "note", At: t0})
				prefix := append([]byte(item), sep)
				if err := tl.Put(append(append(prefix, 's'), u64(uint64(k))...), e); err != nil {
					return err
				}
				if err := tl.Put(append(append(prefix, 'i'), id...), u64(uint64(k))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A layout-2 file's timelines read the same after the upgrade, in one
// step or in steps of one key, and cut short after any step: the ids stay
// indexed, new entries go after the old ones.
func TestUpgradeLayout2Timelines(t *testing.T) {
	for _, tc := range []struct {
		name        string
		chunk, stop int // stop: steps run by hand before the Open, then a "crash"
	}{{"one step", 0, 0}, {"steps of one key", 1, 0}, {"stopped after 4 of 12 keys", 1, 4}, {"stopped after 3 keys", 3, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.chunk > 0 {
				old := upgradeChunk
				upgradeChunk = tc.chunk
				t.Cleanup(func() { upgradeChunk = old })
			}
			path := filepath.Join(t.TempDir(), "sg.db")
			writeLayout2(t, path)
			if tc.stop > 0 {
				interruptUpgrade(t, path, tc.stop, func(tx *bbolt.Tx) error {
					if b := tx.Bucket(bTimeline2); b == nil || b.Stats().KeyN == 0 {
						return errors.New("the interruption is not in the middle of the timelines")
					}
					return nil
				})
			}
			ctx := t.Context()
			for round := range 2 { // and once more after a second Open
				s := openTemp(t, path, Options{})
				for n, item := range []string{"a", "ab", "b"} {
					if round == 0 {
						for _, id := range []string{item + "-1", item + "-new"} { // the first is there already
							if err := s.AppendTimeline(ctx, store.TimelineEntry{ID: id, ItemID: item, Kind: "note", At: t0}); err != nil {
								t.Fatal(err)
							}
						}
					}
					tl, err := s.Timeline(ctx, item)
					if err != nil || len(tl) != n+2 {
						t.Fatalf("Timeline(%s) = %+v, %v; want %d entries", item, tl, err, n+2)
					}
					for k, e := range tl {
						want := fmt.Sprintf("%s-%d", item, k+1)
						if k == n+1 {
							want = item + "-new"
						}
						if e.ID != want || e.ItemID != item {
							t.Fatalf("Timeline(%s)[%d] = %s of %s, want %s", item, k, e.ID, e.ItemID, want)
						}
					}
				}
				if err := s.db.View(func(tx *bbolt.Tx) error {
					if tx.Bucket(bTimeline2) != nil {
						t.Error("layout 2's timeline bucket is still there")
					}
					if v := tx.Bucket(bMeta).Get(layoutKey); len(v) != 8 || v[7] != layoutVersion {
						t.Errorf("layout = %x, want %d", v, layoutVersion)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

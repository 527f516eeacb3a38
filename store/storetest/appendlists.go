package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

// testAppendLists checks store.AppendLists, which a driver may implement
// in one commit or round trip (store.ListsAppender): every append lands
// in its list in order, a repeated id is a duplicate (also within one
// call), and a refused append does not stop the others.
func testAppendLists(t *testing.T, open Opener) {
	if _, ok := any(open(t)).(store.ListsAppender); !ok {
		t.Log("the driver has no AppendLists: store.AppendLists makes one call per append")
	}
	t.Run("Together", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		if _, _, err := s.AppendList(ctx, "hits/b", "x0", []byte("before"), 0); err != nil {
			t.Fatal(err)
		}
		as := []store.ListAppend{
			{Key: "hits/a", ID: "a1", Value: []byte("one"), TTL: time.Hour},
			{Key: "hits/b", ID: "b1", Value: []byte("two")},
			{Key: "hits/a", ID: "a2", Value: []byte("three")},
			{Key: "", ID: "z", Value: []byte("refused")},
			{Key: "hits/a", ID: "a1", Value: []byte("again")}, // same id in one call
			{Key: "hits/b", ID: "x0", Value: []byte("again")}, // id stored before
		}
		res, err := store.AppendLists(ctx, s, as)
		if err != nil {
			t.Fatalf("AppendLists: %v", err)
		}
		if len(res) != len(as) {
			t.Fatalf("AppendLists: %d results for %d appends", len(res), len(as))
		}
		want := []struct {
			seq int64
			dup bool
		}{{1, false}, {2, false}, {2, false}, {0, false}, {1, true}, {1, true}}
		for i, w := range want {
			r := res[i]
			if i == 3 {
				if r.Err == nil {
					t.Errorf("append %d with an empty key: no error", i)
				}
				continue
			}
			if r.Err != nil || r.Seq != w.seq || r.Duplicate != w.dup {
				t.Errorf("append %d: seq %d dup %v err %v, want seq %d dup %v", i, r.Seq, r.Duplicate, r.Err, w.seq, w.dup)
			}
		}
		checkHitList(t, s, "hits/a", "a1", "one", "a2", "three")
		checkHitList(t, s, "hits/b", "x0", "before", "b1", "two")
	})

	// Elements appended Unique land in order like the others, keep their
	// ids, and the list's sequence stays gapless for the appends after
	// them, which are deduplicated as usual.
	t.Run("Unique", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		res, err := store.AppendLists(ctx, s, []store.ListAppend{
			{Key: "hits/u", ID: "u1", Value: []byte("one"), TTL: time.Hour, Unique: true},
			{Key: "hits/u", ID: "u2", Value: []byte("two"), Unique: true},
		})
		if err != nil || len(res) != 2 {
			t.Fatalf("AppendLists: %+v, %v", res, err)
		}
		for i, r := range res {
			if r.Err != nil || r.Seq != int64(i+1) || r.Duplicate {
				t.Errorf("unique append %d: %+v, want seq %d", i, r, i+1)
			}
		}
		if seq, dup, err := s.AppendList(ctx, "hits/u", "k3", []byte("three"), 0); err != nil || seq != 3 || dup {
			t.Errorf("AppendList after unique appends = %d, %v, %v; want 3, new", seq, dup, err)
		}
		seq, dup, _, err := store.AppendAndPut(ctx, s, store.ListAppend{Key: "hits/u", ID: "u4", Value: []byte("four"), Unique: true},
			store.RecordPut{Key: "rec/u", Value: []byte("r")})
		if err != nil || seq != 4 || dup {
			t.Errorf("AppendAndPut unique = %d, %v, %v; want 4, new", seq, dup, err)
		}
		if res, err := store.AppendLists(ctx, s, []store.ListAppend{{Key: "hits/u", ID: "k3", Value: []byte("again")}}); err != nil || res[0].Seq != 3 || !res[0].Duplicate {
			t.Errorf("AppendLists of k3 again = %+v, %v; want the duplicate at 3", res, err)
		}
		checkHitList(t, s, "hits/u", "u1", "one", "u2", "two", "k3", "three", "u4", "four")
	})

	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		res, err := store.AppendLists(t.Context(), s, nil)
		if err != nil || len(res) != 0 {
			t.Fatalf("AppendLists of nothing: %v, %v", res, err)
		}
	})
}

// checkHitList fails t unless the list at key holds exactly the id, value
// pairs idv, in order, with sequences from 1.
func checkHitList(t *testing.T, s store.Store, key string, idv ...string) {
	t.Helper()
	els, err := s.ReadList(t.Context(), key, 0, 100)
	if err != nil {
		t.Fatalf("ReadList %s: %v", key, err)
	}
	if len(els) != len(idv)/2 {
		t.Fatalf("ReadList %s: %d elements, want %d: %+v", key, len(els), len(idv)/2, els)
	}
	for i, el := range els {
		if el.Seq != int64(i+1) || el.ID != idv[2*i] || !bytes.Equal(el.Value, []byte(idv[2*i+1])) {
			t.Errorf("ReadList %s element %d: seq %d id %q value %q, want seq %d id %q value %q",
				key, i, el.Seq, el.ID, el.Value, i+1, idv[2*i], idv[2*i+1])
		}
	}
}

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

package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stagegate/stagegate/store"
)

func testLists(t *testing.T, open Opener) {
	t.Run("Sequence", func(t *testing.T) {
		s := open(t)
		for i, id := range []string{"m1", "m2", "m3"} {
			mustAppendList(t, s, "chat/1", id, int64(i+1), false)
		}
		checkElems(t, s, "chat/1", 0, 10, 1, 2, 3)
		checkValues(t, s, "chat/1")
	})

	t.Run("DuplicateID", func(t *testing.T) {
		s := open(t)
		mustAppendList(t, s, "chat/1", "m1", 1, false)
		seq, dup, err := s.AppendList(t.Context(), "chat/1", "m1", []byte("changed"), 0)
		if err != nil || seq != 1 || !dup {
			t.Fatalf("AppendList of a known id = %d, %v, %v; want 1, duplicate", seq, dup, err)
		}
		mustAppendList(t, s, "chat/1", "m2", 2, false)
		checkElems(t, s, "chat/1", 0, 10, 1, 2)
		checkValues(t, s, "chat/1") // m1 kept its first value
	})

	t.Run("ConcurrentAppends", func(t *testing.T) {
		s := open(t)
		const n = 50
		seqs := make([]int64, n)
		errs := make([]error, n)
		together(n, func(i int) {
			var dup bool
			seqs[i], dup, errs[i] = s.AppendList(t.Context(), "chat/1", fmt.Sprint("m", i), []byte("x"), 0)
			if errs[i] == nil && dup {
				errs[i] = fmt.Errorf("append m%d: duplicate", i)
			}
		})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.ReadList(t.Context(), "chat/1", 0, 100)
		if err != nil || len(got) != n {
			t.Fatalf("ReadList = %d elements, %v; want %d", len(got), err, n)
		}
		for i, e := range got {
			var who int
			if _, err := fmt.Sscanf(e.ID, "m%d", &who); err != nil || e.Seq != int64(i+1) || seqs[who] != e.Seq {
				t.Fatalf("element %d = seq %d id %s; want seq %d, the seq its append returned", i, e.Seq, e.ID, i+1)
			}
		}
		slices.Sort(seqs)
		for i, seq := range seqs {
			if seq != int64(i+1) {
				t.Fatalf("appends returned seqs %v, want 1..%d each once", seqs, n)
			}
		}
	})

	t.Run("ConcurrentSameID", func(t *testing.T) {
		s := open(t)
		var mu sync.Mutex
		news, bad := 0, []string(nil)
		together(20, func(i int) {
			seq, dup, err := s.AppendList(t.Context(), "chat/1", "m1", []byte(fmt.Sprint(i)), 0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || seq != 1 {
				bad = append(bad, fmt.Sprintf("seq %d err %v", seq, err))
			}
			if !dup {
				news++
			}
		})
		if len(bad) > 0 || news != 1 {
			t.Fatalf("20 appends of one id: %d new (want 1), bad replies %v", news, bad)
		}
		checkElems(t, s, "chat/1", 0, 10, 1)
	})

	t.Run("ReadAfterLimit", func(t *testing.T) {
		s := open(t)
		for i := 1; i <= 10; i++ {
			mustAppendList(t, s, "chat/1", fmt.Sprint("m", i), int64(i), false)
		}
		checkElems(t, s, "chat/1", 3, 4, 4, 5, 6, 7)
		checkElems(t, s, "chat/1", 8, 10, 9, 10)
		checkElems(t, s, "chat/1", 10, 5)
		checkElems(t, s, "chat/1", 99, 5)
		checkElems(t, s, "chat/1", 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) // 0: the default limit
		checkElems(t, s, "chat/missing", 0, 10)
	})

	t.Run("SeparateKeys", func(t *testing.T) {
		s := open(t)
		mustAppendList(t, s, "chat/1", "m1", 1, false)
		mustAppendList(t, s, "chat/1:ids", "m1", 1, false) // a key like a driver's index
		mustAppendList(t, s, "chat/2", "m1", 1, false)
		mustAppendList(t, s, "chat/2", "m2", 2, false)
		mustAppendList(t, s, "chat/1", "m2", 2, false)
		mustAppendList(t, s, "chat/1", "m3", 3, false)
		if _, err := s.PutRecord(t.Context(), "chat/1", []byte("r"), 0, 0); err != nil {
			t.Fatalf("PutRecord at a list's key: %v", err)
		}
		checkElems(t, s, "chat/1", 0, 10, 1, 2, 3)
		checkElems(t, s, "chat/1:ids", 0, 10, 1)
		checkElems(t, s, "chat/2", 0, 10, 1, 2)
	})
}

// mustAppendList appends id (with the value "value of <id> \x00\xff") and
// fails unless it got seq and dup.
func mustAppendList(t *testing.T, s store.Store, key, id string, seq int64, dup bool) {
	t.Helper()
	got, gotDup, err := s.AppendList(t.Context(), key, id, []byte("value of "+id+" \x00\xff"), 0)
	if err != nil || got != seq || gotDup != dup {
		t.Fatalf("AppendList(%q, %q) = %d, %v, %v; want %d, %v", key, id, got, gotDup, err, seq, dup)
	}
}

// checkElems fails unless ReadList(key, after, limit) returns exactly the
// elements with seqs, the element with seq n having the id "m<n>".
func checkElems(t *testing.T, s store.Store, key string, after int64, limit int, seqs ...int64) {
	t.Helper()
	got, err := s.ReadList(t.Context(), key, after, limit)
	if err != nil {
		t.Fatalf("ReadList(%q, %d, %d): %v", key, after, limit, err)
	}
	var gotSeqs []int64
	for _, e := range got {
		gotSeqs = append(gotSeqs, e.Seq)
		if e.ID != fmt.Sprint("m", e.Seq) {
			t.Errorf("ReadList(%q): element %d has id %q, want m%d", key, e.Seq, e.ID, e.Seq)
		}
	}
	if !slices.Equal(gotSeqs, seqs) {
		t.Fatalf("ReadList(%q, %d, %d) seqs = %v, want %v", key, after, limit, gotSeqs, seqs)
	}
}

// checkValues fails unless every element of the list at key has the value
// mustAppendList gives its id.
func checkValues(t *testing.T, s store.Store, key string) {
	t.Helper()
	got, err := s.ReadList(t.Context(), key, 0, 100)
	if err != nil {
		t.Fatalf("ReadList(%q): %v", key, err)
	}
	for _, e := range got {
		if want := "value of " + e.ID + " \x00\xff"; string(e.Value) != want {
			t.Errorf("ReadList(%q): element %d (%s) = %q, want %q", key, e.Seq, e.ID, e.Value, want)
		}
	}
}

// testAppendAndPut checks store.AppendAndPut, which a driver may implement
// in one commit or round trip (store.AppendPutter): both halves happen, a
// lost version check leaves the append standing, and a duplicate element
// still lets the put through.
func testAppendAndPut(t *testing.T, open Opener) {
	if _, ok := any(open(t)).(store.AppendPutter); !ok {
		t.Log("the driver has no AppendListPutRecord: store.AppendAndPut makes the two calls")
	}
	t.Run("BothHappen", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		seq, dup, v, err := store.AppendAndPut(ctx, s, store.ListAppend{Key: "call/1/cbs", ID: "m1", Value: []byte("a")},
			store.RecordPut{Key: "call/1", Value: []byte("state1"), Expect: 0})
		if err != nil || seq != 1 || dup || v != 1 {
			t.Fatalf("first = %d, %v, %d, %v; want 1, new, version 1", seq, dup, v, err)
		}
		seq, dup, v, err = store.AppendAndPut(ctx, s, store.ListAppend{Key: "call/1/cbs", ID: "m2", Value: []byte("b")},
			store.RecordPut{Key: "call/1", Value: []byte("state2"), Expect: 1})
		if err != nil || seq != 2 || dup || v != 2 {
			t.Fatalf("second = %d, %v, %d, %v; want 2, new, version 2", seq, dup, v, err)
		}
		checkElems(t, s, "call/1/cbs", 0, 10, 1, 2)
		rec, err := s.GetRecord(ctx, "call/1")
		if err != nil || string(rec.Value) != "state2" || rec.Version != 2 {
			t.Fatalf("record = %q v%d, %v; want state2 v2", rec.Value, rec.Version, err)
		}
	})
	t.Run("ConflictKeepsTheAppend", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		if _, err := s.PutRecord(ctx, "call/2", []byte("other"), 0, 0); err != nil {
			t.Fatal(err)
		}
		seq, dup, v, err := store.AppendAndPut(ctx, s, store.ListAppend{Key: "call/2/cbs", ID: "m1", Value: []byte("a")},
			store.RecordPut{Key: "call/2", Value: []byte("mine"), Expect: 0})
		if !errors.Is(err, store.ErrConflict) || seq != 1 || dup || v != 0 {
			t.Fatalf("put at a stale version = %d, %v, %d, %v; want the append (1, new), version 0 and ErrConflict", seq, dup, v, err)
		}
		checkElems(t, s, "call/2/cbs", 0, 10, 1)
		rec, err := s.GetRecord(ctx, "call/2")
		if err != nil || string(rec.Value) != "other" || rec.Version != 1 {
			t.Fatalf("record = %q v%d, %v; want it untouched (other v1)", rec.Value, rec.Version, err)
		}
	})
	t.Run("DuplicateElementStillPuts", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		mustAppendList(t, s, "call/3/cbs", "m1", 1, false)
		seq, dup, v, err := store.AppendAndPut(ctx, s, store.ListAppend{Key: "call/3/cbs", ID: "m1", Value: []byte("again")},
			store.RecordPut{Key: "call/3", Value: []byte("folded"), Expect: 0})
		if err != nil || seq != 1 || !dup || v != 1 {
			t.Fatalf("duplicate element = %d, %v, %d, %v; want 1, duplicate, version 1", seq, dup, v, err)
		}
		checkElems(t, s, "call/3/cbs", 0, 10, 1)
	})
}

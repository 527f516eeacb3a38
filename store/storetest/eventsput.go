package storetest

import (
	"errors"
	"testing"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// testEventsPut checks store.EventsPutter for a driver that has it: the
// events are appended (and deduplicated) with the put, and not at all when
// the put loses its version check, while the list append stands.
func testEventsPut(t *testing.T, open Opener) {
	if _, ok := any(open(t)).(store.EventsPutter); !ok {
		t.Skip("the driver is not a store.EventsPutter: callers fall back to a read, Append and AppendAndPut")
	}
	put := func(t *testing.T, s store.Store, key string, expect int64, elem string, evs ...*normalize.Event) (store.EventsPutResult, error) {
		t.Helper()
		return s.(store.EventsPutter).AppendListPutRecordEvents(t.Context(),
			store.ListAppend{Key: key + "/cbs", ID: elem, Value: []byte("cb " + elem)},
			store.RecordPut{Key: key, Value: []byte("state after " + elem), Expect: expect}, evs)
	}
	t.Run("AllHappen", func(t *testing.T) {
		s := open(t)
		ev1, ev2 := event("tel:1:inbound", 1), event("tel:1:missed", 2)
		r, err := put(t, s, "call/1", 0, "m1", ev1, ev2)
		if err != nil || r.Seq != 1 || r.Duplicate || r.Version != 1 || len(r.Events) != 2 {
			t.Fatalf("put = %+v, %v; want list seq 1, version 1 and two event results", r, err)
		}
		for i, res := range r.Events {
			if res.Duplicate || res.Seq == "" {
				t.Errorf("event %d: %+v, want new with a log position", i, res)
			}
		}
		got := readN(t, s, "c1", 2)
		checkEvent(t, got[0].Event, *ev1)
		checkEvent(t, got[1].Event, *ev2)
		rec, _, err := s.GetEvent(t.Context(), ev1.ID)
		if err != nil || rec.Seq != r.Events[0].Seq {
			t.Fatalf("GetEvent = seq %q, %v; want %q", rec.Seq, err, r.Events[0].Seq)
		}
		checkElems(t, s, "call/1/cbs", 0, 10, 1)
		if v, err := s.GetRecord(t.Context(), "call/1"); err != nil || string(v.Value) != "state after m1" || v.Version != 1 {
			t.Fatalf("record = %q v%d, %v", v.Value, v.Version, err)
		}
		// The same event again, with the next state: the put happens, the
		// event is a duplicate and is not logged twice.
		r, err = put(t, s, "call/1", 1, "m2", ev1)
		if err != nil || r.Version != 2 || len(r.Events) != 1 || !r.Events[0].Duplicate {
			t.Fatalf("second put = %+v, %v; want version 2 and the event a duplicate", r, err)
		}
		expectNone(t, s, "c1")
	})
	t.Run("ConflictWritesNoEvent", func(t *testing.T) {
		s := open(t)
		if _, err := s.PutRecord(t.Context(), "call/2", []byte("other"), 0, 0); err != nil {
			t.Fatal(err)
		}
		ev := event("tel:2:inbound", 1)
		r, err := put(t, s, "call/2", 0, "m1", ev)
		if !errors.Is(err, store.ErrConflict) || r.Seq != 1 || r.Version != 0 || len(r.Events) != 0 {
			t.Fatalf("put at a stale version = %+v, %v; want the append (seq 1), no version, no events, ErrConflict", r, err)
		}
		checkElems(t, s, "call/2/cbs", 0, 10, 1)
		expectNone(t, s, "c1")
		if _, _, err := s.GetEvent(t.Context(), ev.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetEvent of the event not written: %v, want ErrNotFound", err)
		}
		// Its id was not taken: appended later (after a fresh read), it is new.
		if res, err := s.Append(t.Context(), ev); err != nil || res.Duplicate {
			t.Fatalf("Append after the lost check = %+v, %v; want new", res, err)
		}
		if v, err := s.GetRecord(t.Context(), "call/2"); err != nil || string(v.Value) != "other" {
			t.Fatalf("record = %q, %v; want it untouched", v.Value, err)
		}
	})
	t.Run("NoEventsIsAppendAndPut", func(t *testing.T) {
		s := open(t)
		r, err := put(t, s, "call/3", 0, "m1")
		if err != nil || r.Seq != 1 || r.Version != 1 || len(r.Events) != 0 {
			t.Fatalf("put without events = %+v, %v", r, err)
		}
		expectNone(t, s, "c1")
	})
}

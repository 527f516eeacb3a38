package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

// eventOutboxEntry is an action of event eventID itself (not of a stage
// entry), reaching itemID ("" for none), due after d.
func eventOutboxEntry(eventID, itemID string, d time.Duration) store.OutboxEntry {
	k := "ev:" + eventID + "/autoreply"
	return store.OutboxEntry{
		ID: "ac_ev_" + eventID, Key: k, ItemID: itemID, Type: "send_email", Name: "autoreply",
		Payload: json.RawMessage(`{"hook":"forms/contact/autoreply"}`), Due: at(d), CreatedAt: obase,
	}
}

// testEventOutbox checks BatchEntry.Outbox: an event's own actions are
// queued with its acknowledgement, only then, and once.
func testEventOutbox(t *testing.T, open Opener) {
	ok, conflict := store.WriteOK, store.WriteConflict

	t.Run("QueuedWithAck", func(t *testing.T) {
		s := open(t)
		mustAppend(t, s, event("f:1", 1))
		es := readN(t, s, "c", 1)
		a := eventOutboxEntry("f:1", "", 0)
		res, err := s.ApplyBatch(t.Context(), obase, []store.BatchEntry{
			{Entry: es[0], Outcome: store.Outcome{Unmatched: true}, Outbox: []store.OutboxEntry{a}},
		})
		if err != nil {
			t.Fatalf("ApplyBatch: %v", err)
		}
		checkStatuses(t, res, [][]store.WriteStatus{{}}, []bool{true})
		if !applied(t, s, "f:1") {
			t.Error("event not acknowledged")
		}
		got := checkOutbox(t, s, a.ID, store.OutboxPending, 0, a.Due)
		if got.Key != a.Key || got.ItemID != "" || got.Type != "send_email" || got.Name != "autoreply" ||
			got.Group() != "ev:f:1" || string(got.Payload) != string(a.Payload) || !got.CreatedAt.Equal(obase) {
			t.Fatalf("entry = %+v, want %+v", got, a)
		}
		checkDepth(t, s, 1)
		checkOutboxList(t, s, store.OutboxFilter{Status: store.OutboxPending}, a.ID)
		if next, ok, err := s.NextOutboxDue(t.Context()); err != nil || !ok || !next.Equal(a.Due) {
			t.Fatalf("NextOutboxDue = %v %v %v, want %v", next, ok, err, a.Due)
		}
		// It runs like a stage action: claimed, completed.
		cl := claim(t, s, at(time.Second), 10, time.Minute)
		if len(cl) != 1 || cl[0].ID != a.ID {
			t.Fatalf("claimed %q, want %s", ids(cl), a.ID)
		}
		if err := s.CompleteOutbox(t.Context(), a.ID, cl[0].Claim, store.OutboxDone, "", at(2*time.Second)); err != nil {
			t.Fatalf("CompleteOutbox: %v", err)
		}
		// The same event applied again (redelivered, or directly) queues
		// nothing twice: the done entry stays done.
		res, err = s.ApplyBatch(t.Context(), obase, []store.BatchEntry{
			{Entry: store.LogEntry{Event: es[0].Event}, Outbox: []store.OutboxEntry{a}},
		})
		if err != nil || !res.Acked[0] {
			t.Fatalf("ApplyBatch again: %+v, %v", res, err)
		}
		checkOutbox(t, s, a.ID, store.OutboxDone, 1, time.Time{})
		checkDepth(t, s, 0)
	})

	t.Run("WithItem", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("d1", "sales", "new", "", 0))
		mustAppend(t, s, event("f:2", 2))
		es := readN(t, s, "c", 1)
		a := eventOutboxEntry("f:2", "d1", time.Minute)
		res, err := s.ApplyBatch(t.Context(), obase, []store.BatchEntry{
			{Entry: es[0], Writes: []store.ItemWrite{batchMove("d1", 1, "new", "contacted", "f:2")}, Outbox: []store.OutboxEntry{a}},
		})
		if err != nil {
			t.Fatalf("ApplyBatch: %v", err)
		}
		checkStatuses(t, res, [][]store.WriteStatus{{ok}}, []bool{true})
		checkOutbox(t, s, a.ID, store.OutboxPending, 0, a.Due)
		checkOutboxList(t, s, store.OutboxFilter{ItemID: "d1"}, a.ID)
		// Not due yet.
		if cl := claim(t, s, at(time.Second), 10, time.Minute); len(cl) != 0 {
			t.Fatalf("claimed %q before its due time", ids(cl))
		}
	})

	t.Run("NotQueuedWithoutAck", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("d1", "sales", "new", "", 0))
		mustAppend(t, s, event("f:3", 3))
		es := readN(t, s, "c", 1)
		a := eventOutboxEntry("f:3", "d1", 0)
		// A stale version: the write conflicts, the event is not
		// acknowledged, and its outbox entry is not written either.
		res, err := s.ApplyBatch(t.Context(), obase, []store.BatchEntry{
			{Entry: es[0], Writes: []store.ItemWrite{batchMove("d1", 7, "new", "contacted", "f:3")}, Outbox: []store.OutboxEntry{a}},
		})
		if err != nil {
			t.Fatalf("ApplyBatch: %v", err)
		}
		checkStatuses(t, res, [][]store.WriteStatus{{conflict}}, []bool{false})
		_, err = s.GetOutbox(t.Context(), a.ID)
		wantErr(t, "GetOutbox of an event not acknowledged", err, store.ErrNotFound)
		checkDepth(t, s, 0)
		// Decided again and written: now it is queued, once.
		for range 2 {
			res, err = s.ApplyBatch(t.Context(), obase, []store.BatchEntry{
				{Entry: es[0], Writes: []store.ItemWrite{batchMove("d1", 1, "new", "contacted", "f:3")}, Outbox: []store.OutboxEntry{a}},
			})
			if err != nil || !res.Acked[0] {
				t.Fatalf("ApplyBatch: %+v, %v", res, err)
			}
		}
		checkOutbox(t, s, a.ID, store.OutboxPending, 0, a.Due)
		checkDepth(t, s, 1)
	})
}

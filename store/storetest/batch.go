package storetest

import (
	"slices"
	"testing"

	"github.com/stagegate/stagegate/store"
)

// batchMove is a write moving itemID from→to for eventID, expecting version.
func batchMove(itemID string, expect int64, from, to, eventID string) store.ItemWrite {
	req := moveReq(itemID, expect, from, to, eventID, "ev:"+eventID, 5)
	return store.ItemWrite{
		ItemID: itemID, ExpectVersion: expect, Decisions: *req.Decisions,
		Move: &store.ItemMove{To: to, Entry: req.Entry},
	}
}

// applied reports the Applied flag of an event's record.
func applied(t *testing.T, s store.Store, id string) bool {
	t.Helper()
	rec, _, err := s.GetEvent(t.Context(), id)
	if err != nil {
		t.Fatalf("GetEvent(%s): %v", id, err)
	}
	return rec.Applied
}

func checkStatuses(t *testing.T, res store.BatchResult, want [][]store.WriteStatus, acked []bool) {
	t.Helper()
	for i := range want {
		if !slices.Equal(res.Writes[i], want[i]) {
			t.Errorf("entry %d: statuses %v, want %v", i, res.Writes[i], want[i])
		}
	}
	if !slices.Equal(res.Acked, acked) {
		t.Errorf("acked %v, want %v", res.Acked, acked)
	}
}

func testBatch(t *testing.T, open Opener) {
	ok, conflict, already := store.WriteOK, store.WriteConflict, store.WriteAlreadyApplied

	t.Run("LookupAndApply", func(t *testing.T) {
		s := open(t)
		c, _, err := s.EnsureContact(t.Context(), store.Contact{ID: "c1"}, []store.Identity{{Kind: store.IdentityEmail, Value: "ann@x.test"}})
		if err != nil {
			t.Fatal(err)
		}
		mustCreate(t, s, item("d1", "sales", "new", c.ID, 0))
		mustCreate(t, s, item("d2", "sales", "new", "", 1))
		lr, err := s.Lookup(t.Context(), store.LookupRequest{ItemIDs: []string{"d2", "nope"},
			Identities: []store.Identity{{Kind: store.IdentityEmail, Value: "ann@x.test"}, {Kind: store.IdentityPhone, Value: "+1555"}}})
		if err != nil {
			t.Fatalf("Lookup: %v", err)
		}
		if lr.Contacts[store.Identity{Kind: store.IdentityEmail, Value: "ann@x.test"}] != "c1" || len(lr.Contacts) != 1 {
			t.Errorf("contacts %v", lr.Contacts)
		}
		if !slices.Equal(lr.ContactItems["c1"], []string{"d1"}) || len(lr.Items) != 2 || lr.Items["d2"].Version != 1 {
			t.Errorf("lookup %+v", lr)
		}
		mustAppend(t, s, event("b:1", 1))
		mustAppend(t, s, event("b:2", 2))
		es := readN(t, s, "c", 2)
		// Two events on d1 in a row: the second builds on the first's move.
		res, err := s.ApplyBatch(t.Context(), base, []store.BatchEntry{
			{Entry: es[0], Writes: []store.ItemWrite{batchMove("d1", 1, "new", "contacted", "b:1")}},
			{Entry: es[1], Writes: []store.ItemWrite{batchMove("d1", 2, "contacted", "won", "b:2")}},
		})
		if err != nil {
			t.Fatalf("ApplyBatch: %v", err)
		}
		checkStatuses(t, res, [][]store.WriteStatus{{ok}, {ok}}, []bool{true, true})
		it, _ := s.GetItem(t.Context(), "d1")
		if it.Stage != "won" || it.Version != 3 {
			t.Errorf("d1 at %s v%d, want won v3", it.Stage, it.Version)
		}
		checkTimeline(t, s, "d1", "created", "ev:b:1", "ev:b:2")
		if !applied(t, s, "b:1") || !applied(t, s, "b:2") {
			t.Error("events not acknowledged")
		}
		expectNone(t, s, "c")
	})

	t.Run("Conflict", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("d1", "sales", "new", "", 0))
		mustCreate(t, s, item("d2", "sales", "new", "", 1))
		for i := 1; i <= 3; i++ {
			mustAppend(t, s, event("k:"+string(rune('0'+i)), i))
		}
		es := readN(t, s, "c", 3)
		// Another writer moved d1 first.
		if _, err := s.Move(t.Context(), moveReq("d1", 1, "new", "lost", "", "manual", 1)); err != nil {
			t.Fatal(err)
		}
		// k:1 moves d2 (ok) and d1 (stale); k:2 builds on k:1's d1 move, so
		// it conflicts too even though its version happens to match; k:3
		// writes only d2.
		res, err := s.ApplyBatch(t.Context(), base, []store.BatchEntry{
			{Entry: es[0], Writes: []store.ItemWrite{batchMove("d2", 1, "new", "contacted", "k:1"), batchMove("d1", 1, "new", "contacted", "k:1")}},
			{Entry: es[1], Writes: []store.ItemWrite{batchMove("d1", 2, "contacted", "won", "k:2")}},
			{Entry: es[2], Writes: []store.ItemWrite{batchMove("d2", 2, "contacted", "won", "k:3")}},
		})
		if err != nil {
			t.Fatalf("ApplyBatch: %v", err)
		}
		checkStatuses(t, res, [][]store.WriteStatus{{ok, conflict}, {conflict}, {ok}}, []bool{false, false, true})
		if it, _ := s.GetItem(t.Context(), "d1"); it.Stage != "lost" || it.Version != 2 {
			t.Errorf("d1 at %s v%d, want lost v2 (untouched by the batch)", it.Stage, it.Version)
		}
		if it, _ := s.GetItem(t.Context(), "d2"); it.Stage != "won" || it.Version != 3 {
			t.Errorf("d2 at %s v%d, want won v3", it.Stage, it.Version)
		}
		if applied(t, s, "k:1") || applied(t, s, "k:2") || !applied(t, s, "k:3") {
			t.Error("only k:3 should be acknowledged")
		}
		// Sent again after re-deciding d1: k:1's d2 move is not resent.
		res, err = s.ApplyBatch(t.Context(), base, []store.BatchEntry{
			{Entry: es[0], Writes: []store.ItemWrite{{ItemID: "d1", ExpectVersion: 2, Decisions: store.ItemDecisions{ItemID: "d1", Note: "closed"}}}},
			{Entry: es[1], Writes: []store.ItemWrite{{ItemID: "d1", ExpectVersion: 2, Decisions: store.ItemDecisions{ItemID: "d1", Note: "closed"}}}},
		})
		if err != nil {
			t.Fatalf("ApplyBatch again: %v", err)
		}
		checkStatuses(t, res, [][]store.WriteStatus{{ok}, {ok}}, []bool{true, true})
		checkTimeline(t, s, "d2", "created", "ev:k:1", "ev:k:3")
	})

	t.Run("HalfWrittenThenRedelivered", func(t *testing.T) {
		// The process died after the first half of a batch was written
		// (redis: part of the pipeline ran): the whole batch comes again.
		s := open(t)
		var entries []store.BatchEntry
		for i := 1; i <= 4; i++ {
			id := "h:" + string(rune('0'+i))
			itemID := "d" + string(rune('0'+i))
			mustCreate(t, s, item(itemID, "sales", "new", "", i))
			mustAppend(t, s, event(id, i))
			entries = append(entries, store.BatchEntry{Writes: []store.ItemWrite{batchMove(itemID, 1, "new", "won", id)}})
		}
		es := readN(t, s, "c", 4)
		for i := range entries {
			entries[i].Entry = es[i]
		}
		if _, err := s.ApplyBatch(t.Context(), base, entries[:2]); err != nil {
			t.Fatal(err)
		}
		res, err := s.ApplyBatch(t.Context(), base, entries)
		if err != nil {
			t.Fatal(err)
		}
		checkStatuses(t, res, [][]store.WriteStatus{{already}, {already}, {ok}, {ok}}, []bool{true, true, true, true})
		for i := 1; i <= 4; i++ {
			itemID := "d" + string(rune('0'+i))
			if it, _ := s.GetItem(t.Context(), itemID); it.Version != 2 || it.Stage != "won" {
				t.Errorf("%s at %s v%d, want won v2 (moved once)", itemID, it.Stage, it.Version)
			}
			checkTimeline(t, s, itemID, "created", "ev:h:"+string(rune('0'+i)))
		}
	})

	t.Run("ParkAndRetry", func(t *testing.T) {
		s := open(t)
		mustAppend(t, s, event("p:1", 1))
		es := readN(t, s, "c", 1)
		if err := s.Ack(t.Context(), es[0], store.Outcome{Failed: true, Note: "boom"}); err != nil {
			t.Fatal(err)
		}
		failed, err := s.ListFailed(t.Context(), 10)
		if err != nil || len(failed) != 1 || failed[0].Event.ID != "p:1" || !failed[0].Failed || failed[0].Note != "boom" {
			t.Fatalf("ListFailed = %+v, %v", failed, err)
		}
		wantErr(t, "RetryEvent(unknown)", s.RetryEvent(t.Context(), "nope"), store.ErrNotFound)
		if err := s.RetryEvent(t.Context(), "p:1"); err != nil {
			t.Fatalf("RetryEvent: %v", err)
		}
		wantErr(t, "RetryEvent twice", s.RetryEvent(t.Context(), "p:1"), store.ErrConflict)
		if failed, _ := s.ListFailed(t.Context(), 10); len(failed) != 0 {
			t.Errorf("still listed as failed: %+v", failed)
		}
		again := readN(t, s, "c", 1)
		if again[0].Event.ID != "p:1" {
			t.Fatalf("redelivered %s", again[0].Event.ID)
		}
		if err := s.Ack(t.Context(), again[0], store.Outcome{}); err != nil {
			t.Fatal(err)
		}
		if !applied(t, s, "p:1") {
			t.Error("retried event not applied")
		}
	})
}

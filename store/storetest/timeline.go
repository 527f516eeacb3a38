package storetest

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

func testTimeline(t *testing.T, open Opener) {
	t.Run("IdempotentAndOrdered", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		mustCreate(t, s, item("deal-2", "sales", "new", "c1", 0))
		action := func(id, item, msg string, n int) store.TimelineEntry {
			return store.TimelineEntry{
				ID: id, ItemID: item, Kind: store.EntryAction, Actor: "rule-1",
				Action: "webhook", Message: msg, At: base.Add(time.Duration(n) * time.Minute),
			}
		}
		steps := []store.TimelineEntry{
			action("a1", "deal-1", "sent", 1),
			action("a1", "deal-1", "sent again", 2), // retry: ignored
			action("a1", "deal-2", "other item", 2), // same id, other item: its own entry
			action("a2", "deal-1", "second", 3),
			action("a0", "deal-1", "third", 4), // ids need not sort like the order
		}
		for _, e := range steps {
			if err := s.AppendTimeline(t.Context(), e); err != nil {
				t.Fatalf("AppendTimeline(%s): %v", e.ID, err)
			}
		}
		es := checkTimeline(t, s, "deal-1", "created", "a1", "a2", "a0")
		checkEntry(t, es[1], steps[0])
		checkEntry(t, es[2], steps[3])
		es = checkTimeline(t, s, "deal-2", "created", "a1")
		checkEntry(t, es[1], steps[2])
	})
}

func testDecisions(t *testing.T, open Opener) {
	verdict := func(itemID, note string, moved bool) store.ItemDecisions {
		return store.ItemDecisions{
			ItemID: itemID, Pipeline: "sales", From: "new", Moved: moved, Note: note,
			Decisions: []store.Decision{{Trigger: "t1", Type: "email.opened", Stage: "offer", Outcome: "not_applicable", Reason: note}},
			At:        base.Add(time.Minute),
		}
	}

	t.Run("FirstWins", func(t *testing.T) {
		s := open(t)
		mustAppend(t, s, event("imap:1", 1))
		checkDecisions(t, s, "imap:1")
		first := verdict("deal-1", "first", false)
		for _, d := range []store.ItemDecisions{first, verdict("deal-1", "second", false), verdict("deal-2", "other item", false)} {
			if err := s.RecordDecisions(t.Context(), "imap:1", d); err != nil {
				t.Fatalf("RecordDecisions: %v", err)
			}
		}
		checkDecisions(t, s, "imap:1", first, verdict("deal-2", "other item", false))
	})

	t.Run("MoveReplaces", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		mustAppend(t, s, event("imap:1", 1))
		if err := s.RecordDecisions(t.Context(), "imap:1", verdict("deal-1", "not yet", false)); err != nil {
			t.Fatalf("RecordDecisions: %v", err)
		}
		req := moveReq("deal-1", 1, "new", "won", "imap:1", "m1", 5)
		if _, err := s.Move(t.Context(), req); err != nil {
			t.Fatalf("Move: %v", err)
		}
		checkDecisions(t, s, "imap:1", *req.Decisions)
		// A later RecordDecisions does not overwrite the move's verdict.
		if err := s.RecordDecisions(t.Context(), "imap:1", verdict("deal-1", "late", false)); err != nil {
			t.Fatalf("RecordDecisions: %v", err)
		}
		checkDecisions(t, s, "imap:1", *req.Decisions)
	})
}

// checkDecisions fails unless GetEvent(eventID) returns exactly want, in
// any order.
func checkDecisions(t *testing.T, s store.Store, eventID string, want ...store.ItemDecisions) {
	t.Helper()
	_, got, err := s.GetEvent(t.Context(), eventID)
	if err != nil {
		t.Fatalf("GetEvent(%s): %v", eventID, err)
	}
	byItem := func(a, b store.ItemDecisions) int { return cmp.Compare(a.ItemID, b.ItemID) }
	got = slices.SortedFunc(slices.Values(got), byItem)
	want = slices.SortedFunc(slices.Values(want), byItem)
	if len(got) != len(want) {
		t.Fatalf("GetEvent(%s) decisions = %+v, want %+v", eventID, got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ItemID != w.ItemID || g.Pipeline != w.Pipeline || g.From != w.From || g.To != w.To ||
			g.Moved != w.Moved || g.Note != w.Note || !g.At.Equal(w.At) ||
			!slices.Equal(g.Decisions, w.Decisions) {
			t.Fatalf("GetEvent(%s) decisions[%d] = %+v\nwant %+v", eventID, i, g, w)
		}
	}
}

package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

// moveReq builds a move of itemID from one stage to another for eventID
// (empty for a manual move) with entry id entryID, n minutes after base.
func moveReq(itemID string, expect int64, from, to, eventID, entryID string, n int) store.MoveRequest {
	at := base.Add(time.Duration(n) * time.Minute)
	req := store.MoveRequest{
		ItemID: itemID, ExpectVersion: expect, To: to, EventID: eventID, At: at,
		Entry: store.TimelineEntry{
			ID: entryID, ItemID: itemID, Kind: store.EntryMove, From: from, To: to,
			Trigger: "t-email", EventID: eventID, At: at,
		},
	}
	if eventID != "" {
		req.Decisions = &store.ItemDecisions{
			ItemID: itemID, Pipeline: "sales", From: from, To: to, Moved: true, At: at,
			Decisions: []store.Decision{
				{Trigger: "t-email", Type: "email.incoming", Stage: to, Outcome: "moved"},
				{Trigger: "t-call", Type: "call.inbound", Stage: "call", Outcome: "no_match", Reason: "type differs"},
			},
		}
	}
	return req
}

func testMove(t *testing.T, open Opener) {
	t.Run("Success", func(t *testing.T) {
		s := open(t)
		it := mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		mustAppend(t, s, event("imap:1", 1))
		req := moveReq("deal-1", 1, "new", "won", "imap:1", "m1", 10)
		req.Closed = true
		got, err := s.Move(t.Context(), req)
		if err != nil {
			t.Fatalf("Move: %v", err)
		}
		want := it
		want.Version, want.Stage, want.Closed, want.UpdatedAt = 2, "won", true, req.At
		checkItem(t, got, want)
		got, err = s.GetItem(t.Context(), "deal-1")
		if err != nil {
			t.Fatalf("GetItem: %v", err)
		}
		checkItem(t, got, want)
		es := checkTimeline(t, s, "deal-1", "created", "m1")
		checkEntry(t, es[1], req.Entry)
		checkDecisions(t, s, "imap:1", *req.Decisions)
	})

	t.Run("Refused", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		mustAppend(t, s, event("imap:1", 1))
		first := moveReq("deal-1", 1, "new", "offer", "imap:1", "m1", 10)
		moved, err := s.Move(t.Context(), first)
		if err != nil {
			t.Fatalf("Move: %v", err)
		}
		for _, tc := range []struct {
			name string
			req  store.MoveRequest
			want error
		}{
			{"StaleVersion", moveReq("deal-1", 1, "new", "won", "imap:2", "m2", 11), store.ErrConflict},
			{"FutureVersion", moveReq("deal-1", 3, "offer", "won", "imap:2", "m2", 11), store.ErrConflict},
			{"SameEvent", moveReq("deal-1", 2, "offer", "won", "imap:1", "m2", 11), store.ErrAlreadyApplied},
			{"SameEventStale", moveReq("deal-1", 1, "offer", "won", "imap:1", "m2", 11), store.ErrAlreadyApplied},
			{"UnknownItem", moveReq("deal-9", 1, "new", "won", "imap:2", "m2", 11), store.ErrNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := s.Move(t.Context(), tc.req)
				wantErr(t, "Move", err, tc.want)
				got, err := s.GetItem(t.Context(), "deal-1")
				if err != nil {
					t.Fatalf("GetItem: %v", err)
				}
				checkItem(t, got, moved)
				checkTimeline(t, s, "deal-1", "created", "m1")
				checkDecisions(t, s, "imap:1", *first.Decisions)
			})
		}
		// The refused move for imap:2 stored no decisions either.
		mustAppend(t, s, event("imap:2", 2))
		checkDecisions(t, s, "imap:2")
	})

	t.Run("ManualRepeats", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		for v, to := range []string{"offer", "won", "offer"} {
			got, err := s.Move(t.Context(), moveReq("deal-1", int64(v+1), "", to, "", fmt.Sprintf("manual-%d", v), v+1))
			if err != nil {
				t.Fatalf("manual move %d: %v", v, err)
			}
			if got.Version != int64(v+2) || got.Stage != to {
				t.Fatalf("manual move %d: version %d stage %q, want %d %q", v, got.Version, got.Stage, v+2, to)
			}
		}
		checkTimeline(t, s, "deal-1", "created", "manual-0", "manual-1", "manual-2")
	})

	t.Run("DecisionsBeforeEvent", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		req := moveReq("deal-1", 1, "new", "won", "imap:late", "m1", 10)
		if _, err := s.Move(t.Context(), req); err != nil {
			t.Fatalf("Move: %v", err)
		}
		mustAppend(t, s, event("imap:late", 1))
		checkDecisions(t, s, "imap:late", *req.Decisions)
	})

	t.Run("ConcurrentSameVersion", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		const n = 16
		var mu sync.Mutex
		var won []int
		together(n, func(i int) {
			_, err := s.Move(t.Context(), moveReq("deal-1", 1, "new", fmt.Sprintf("stage-%d", i),
				fmt.Sprintf("imap:%d", i), fmt.Sprintf("m%d", i), i))
			switch {
			case err == nil:
				mu.Lock()
				won = append(won, i)
				mu.Unlock()
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("Move %d: %v, want nil or ErrConflict", i, err)
			}
		})
		if len(won) != 1 {
			t.Fatalf("%d concurrent moves from version 1 succeeded, want exactly 1", len(won))
		}
		got, err := s.GetItem(t.Context(), "deal-1")
		if err != nil || got.Version != 2 || got.Stage != fmt.Sprintf("stage-%d", won[0]) {
			t.Fatalf("GetItem = version %d stage %q, %v; want 2 stage-%d", got.Version, got.Stage, err, won[0])
		}
		checkTimeline(t, s, "deal-1", "created", fmt.Sprintf("m%d", won[0]))
	})
}

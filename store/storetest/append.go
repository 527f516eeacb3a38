package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stagegate/stagegate/store"
)

func testAppend(t *testing.T, open Opener) {
	t.Run("FirstIsNew", func(t *testing.T) {
		s := open(t)
		ev := event("imap:1", 1)
		seq := mustAppend(t, s, ev)
		rec, _, err := s.GetEvent(t.Context(), ev.ID)
		if err != nil {
			t.Fatalf("GetEvent: %v", err)
		}
		if rec.Seq != seq || rec.Applied || rec.Unmatched || !rec.AppliedAt.IsZero() {
			t.Fatalf("record = seq %q applied %v unmatched %v at %v, want seq %q and not applied",
				rec.Seq, rec.Applied, rec.Unmatched, rec.AppliedAt, seq)
		}
		checkEvent(t, rec.Event, *ev)
	})

	t.Run("SameIDIsDuplicate", func(t *testing.T) {
		s := open(t)
		ev := event("imap:1", 1)
		mustAppend(t, s, ev)
		changed := event("imap:1", 2) // same id, other content: still the same event
		res, err := s.Append(t.Context(), changed)
		if err != nil {
			t.Fatalf("second Append: %v", err)
		}
		if !res.Duplicate || res.Seq != "" {
			t.Fatalf("second Append = %+v, want Duplicate and no Seq", res)
		}
		got := readN(t, s, "c1", 1)
		checkEvent(t, got[0].Event, *ev)
		expectNone(t, s, "c1")
		rec, _, err := s.GetEvent(t.Context(), ev.ID)
		if err != nil {
			t.Fatalf("GetEvent: %v", err)
		}
		checkEvent(t, rec.Event, *ev)
	})

	t.Run("DuplicateAfterAck", func(t *testing.T) {
		s := open(t)
		ev := event("imap:1", 1)
		mustAppend(t, s, ev)
		e := readN(t, s, "c1", 1)[0]
		if err := s.Ack(t.Context(), e, store.Outcome{}); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		res, err := s.Append(t.Context(), ev)
		if err != nil || !res.Duplicate {
			t.Fatalf("Append after Ack = %+v, %v; want a duplicate", res, err)
		}
		expectNone(t, s, "c1")
	})

	t.Run("ConcurrentSameID", func(t *testing.T) {
		s := open(t)
		const n = 1000
		var fresh, dups atomic.Int32
		together(n, func(i int) {
			res, err := s.Append(t.Context(), event("imap:same", i))
			switch {
			case err != nil:
				t.Errorf("Append: %v", err)
			case res.Duplicate:
				dups.Add(1)
			default:
				fresh.Add(1)
			}
		})
		if fresh.Load() != 1 || dups.Load() != n-1 {
			t.Fatalf("%d new and %d duplicates, want 1 and %d", fresh.Load(), dups.Load(), n-1)
		}
		got := readN(t, s, "c1", 1)
		if got[0].Event.ID != "imap:same" {
			t.Fatalf("log entry %s, want imap:same", got[0].Event.ID)
		}
		expectNone(t, s, "c1")
	})

	t.Run("ConcurrentDistinctIDs", func(t *testing.T) {
		s := open(t)
		const n = 300
		seqs := make([]string, n)
		together(n, func(i int) {
			res, err := s.Append(t.Context(), event(fmt.Sprintf("imap:%d", i), i))
			if err != nil || res.Duplicate {
				t.Errorf("Append %d = %+v, %v; want new", i, res, err)
			}
			seqs[i] = res.Seq
		})
		if t.Failed() {
			t.FailNow()
		}
		bySeq := make(map[string]int, n)
		for i, seq := range seqs {
			if j, ok := bySeq[seq]; ok {
				t.Fatalf("appends %d and %d share seq %q", j, i, seq)
			}
			bySeq[seq] = i
		}
		for _, e := range readN(t, s, "c1", n) {
			i, ok := bySeq[e.Seq]
			if !ok {
				t.Fatalf("log entry with unknown seq %q", e.Seq)
			}
			if want := fmt.Sprintf("imap:%d", i); e.Event.ID != want {
				t.Fatalf("seq %q holds %s, want %s", e.Seq, e.Event.ID, want)
			}
			delete(bySeq, e.Seq)
		}
		expectNone(t, s, "c1")
	})
}

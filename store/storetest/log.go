package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

func testLog(t *testing.T, open Opener) {
	t.Run("AppendOrder", func(t *testing.T) {
		s := open(t)
		var evs []*normalize.Event
		var seqs []string
		for i := range 5 {
			ev := event(fmt.Sprintf("form:%d", i), i)
			evs = append(evs, ev)
			seqs = append(seqs, mustAppend(t, s, ev))
		}
		got := readN(t, s, "c1", len(evs))
		for i, e := range got {
			if e.Seq != seqs[i] {
				t.Errorf("entry %d: seq %q, want %q (append order)", i, e.Seq, seqs[i])
			}
			checkEvent(t, e.Event, *evs[i])
		}
	})

	t.Run("RespectsMax", func(t *testing.T) {
		s := open(t)
		for i := range 3 {
			mustAppend(t, s, event(fmt.Sprintf("form:%d", i), i))
		}
		es, err := s.ReadLog(t.Context(), "c1", 2, time.Second)
		if err != nil {
			t.Fatalf("ReadLog: %v", err)
		}
		if len(es) == 0 || len(es) > 2 {
			t.Fatalf("ReadLog(max 2) gave %d entries", len(es))
		}
		rest := readN(t, s, "c1", 3-len(es))
		if rest[len(rest)-1].Event.ID != "form:2" {
			t.Fatalf("last entry %s, want form:2", rest[len(rest)-1].Event.ID)
		}
	})

	t.Run("BlockWakesOnAppend", func(t *testing.T) {
		s := open(t)
		ev := event("chat:1", 1)
		appended := make(chan error, 1)
		go func() {
			time.Sleep(100 * time.Millisecond)
			_, err := s.Append(t.Context(), ev)
			appended <- err
		}()
		defer func() {
			if err := <-appended; err != nil {
				t.Errorf("Append: %v", err)
			}
		}()
		start := time.Now()
		es, err := s.ReadLog(t.Context(), "c1", 10, 10*time.Second)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("ReadLog: %v", err)
		}
		if len(es) != 1 || es[0].Event.ID != ev.ID {
			t.Fatalf("ReadLog gave %d entries, want %s", len(es), ev.ID)
		}
		if took > 3*time.Second {
			t.Fatalf("ReadLog returned after %v; it should wake up on Append", took)
		}
	})

	t.Run("EmptyAfterBlock", func(t *testing.T) {
		s := open(t)
		const block = 200 * time.Millisecond
		start := time.Now()
		es, err := s.ReadLog(t.Context(), "c1", 10, block)
		took := time.Since(start)
		if err != nil || len(es) != 0 {
			t.Fatalf("ReadLog on an empty log = %d entries, %v; want none, nil", len(es), err)
		}
		if took < block/2 {
			t.Fatalf("ReadLog returned after %v, want it to wait about %v", took, block)
		}
	})

	t.Run("AckAppliesOnce", func(t *testing.T) {
		s := open(t)
		mustAppend(t, s, event("call:1", 1))
		mustAppend(t, s, event("call:2", 2))
		got := readN(t, s, "c1", 2)
		outcomes := []store.Outcome{{}, {Unmatched: true, Note: "no item for +4930123456"}}
		for i, e := range got {
			before := time.Now()
			if err := s.Ack(t.Context(), e, outcomes[i]); err != nil {
				t.Fatalf("Ack(%s): %v", e.Event.ID, err)
			}
			rec, _, err := s.GetEvent(t.Context(), e.Event.ID)
			if err != nil {
				t.Fatalf("GetEvent(%s): %v", e.Event.ID, err)
			}
			if !rec.Applied || rec.AppliedAt.IsZero() || rec.AppliedAt.Before(before.Add(-time.Minute)) {
				t.Errorf("%s: applied %v at %v, want applied now", e.Event.ID, rec.Applied, rec.AppliedAt)
			}
			if rec.Unmatched != outcomes[i].Unmatched || rec.Note != outcomes[i].Note {
				t.Errorf("%s: unmatched %v note %q, want %+v", e.Event.ID, rec.Unmatched, rec.Note, outcomes[i])
			}
			if rec.Seq != e.Seq {
				t.Errorf("%s: seq %q, want %q", e.Event.ID, rec.Seq, e.Seq)
			}
		}
		expectNone(t, s, "c1")
		expectNone(t, s, "c2")
	})

	t.Run("NoDoubleDelivery", func(t *testing.T) {
		s := open(t)
		mustAppend(t, s, event("call:1", 1))
		first := readN(t, s, "c1", 1)[0]
		// Held by c1 and not acknowledged: nobody gets it again while c1 lives.
		expectNone(t, s, "c1")
		expectNone(t, s, "c2")
		mustAppend(t, s, event("call:2", 2))
		next := readN(t, s, "c1", 1)[0]
		if next.Event.ID != "call:2" {
			t.Fatalf("second read gave %s, want call:2", next.Event.ID)
		}
		for _, e := range []store.LogEntry{first, next} {
			if err := s.Ack(t.Context(), e, store.Outcome{}); err != nil {
				t.Fatalf("Ack(%s): %v", e.Event.ID, err)
			}
		}
		expectNone(t, s, "c1")
	})

	t.Run("ContextCancel", func(t *testing.T) {
		s := open(t)
		c, cancel := contextWithTimeout(t, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		es, _ := s.ReadLog(c, "c1", 10, 10*time.Second)
		if len(es) != 0 {
			t.Fatalf("ReadLog gave %d entries on an empty log", len(es))
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("ReadLog ignored its context for %v", took)
		}
	})
}

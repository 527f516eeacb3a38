package bolt

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sg.db")
	ctx := t.Context()
	s := openTemp(t, path, Options{})
	var seqs []string
	for _, id := range []string{"e1", "e2", "e3"} {
		res, err := s.Append(ctx, ev(id))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		seqs = append(seqs, res.Seq)
	}
	got, err := s.ReadLog(ctx, "engine", 10, time.Second)
	if err != nil || len(got) != 3 {
		t.Fatalf("ReadLog = %d entries, %v", len(got), err)
	}
	if err := s.Ack(ctx, got[0], store.Outcome{Unmatched: true, Note: "nobody"}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	phone := store.Identity{Kind: store.IdentityPhone, Value: "+15550100"}
	if _, _, err := s.EnsureContact(ctx, store.Contact{ID: "c1"}, []store.Identity{phone}); err != nil {
		t.Fatalf("EnsureContact: %v", err)
	}
	it := store.Item{ID: "i1", Pipeline: "sales", Stage: "new", ContactID: "c1", CreatedAt: t0}
	if _, _, err := s.CreateItem(ctx, it, store.TimelineEntry{ID: "created", Kind: store.EntryCreated}); err != nil {
		t.Fatalf("CreateItem: %v", err)
	}
	if _, err := s.Move(ctx, store.MoveRequest{ItemID: "i1", ExpectVersion: 1, To: "won", EventID: "e2",
		Entry: store.TimelineEntry{ID: "m1", Kind: store.EntryMove}, At: t0.Add(time.Hour),
		Decisions: &store.ItemDecisions{ItemID: "i1", Moved: true}}); err != nil {
		t.Fatalf("Move: %v", err)
	}
	// e2 and e3 were read but never acknowledged: a crash here must not lose them.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openTemp(t, path, Options{})
	again, err := s.ReadLog(ctx, "engine", 10, time.Second)
	if err != nil || len(again) != 2 || again[0].Seq != seqs[1] || again[1].Event.ID != "e3" {
		t.Fatalf("after reopen ReadLog = %+v, %v; want e2 and e3 again", again, err)
	}
	if res, err := s.Append(ctx, ev("e1")); err != nil || !res.Duplicate {
		t.Fatalf("Append(e1) after reopen = %+v, %v; want duplicate", res, err)
	}
	res, err := s.Append(ctx, ev("e4"))
	if err != nil || res.Seq == seqs[2] || res.Seq == "" {
		t.Fatalf("Append(e4) after reopen = %+v, %v; want a fresh seq", res, err)
	}
	rec, _, err := s.GetEvent(ctx, "e1")
	if err != nil || !rec.Applied || !rec.Unmatched || rec.Note != "nobody" {
		t.Fatalf("GetEvent(e1) = %+v, %v", rec, err)
	}
	if un, err := s.ListUnmatched(ctx, 10); err != nil || len(un) != 1 || un[0].Event.ID != "e1" {
		t.Fatalf("ListUnmatched = %+v, %v", un, err)
	}
	if c, err := s.FindContact(ctx, phone); err != nil || c.ID != "c1" {
		t.Fatalf("FindContact = %+v, %v", c, err)
	}
	got1, err := s.GetItem(ctx, "i1")
	if err != nil || got1.Version != 2 || got1.Stage != "won" {
		t.Fatalf("GetItem = %+v, %v", got1, err)
	}
	if _, err := s.Move(ctx, store.MoveRequest{ItemID: "i1", ExpectVersion: 2, To: "lost", EventID: "e2"}); !errors.Is(err, store.ErrAlreadyApplied) {
		t.Fatalf("Move(e2) after reopen: %v, want ErrAlreadyApplied", err)
	}
	if tl, err := s.Timeline(ctx, "i1"); err != nil || len(tl) != 2 || tl[1].ID != "m1" {
		t.Fatalf("Timeline = %+v, %v", tl, err)
	}
	if items, err := s.ListItems(ctx, store.ItemFilter{Pipeline: "sales", Stage: "won"}); err != nil || len(items) != 1 {
		t.Fatalf("ListItems(won) = %+v, %v", items, err)
	}
	if _, ds, err := s.GetEvent(ctx, "e2"); err != nil || len(ds) != 1 || !ds[0].Moved {
		t.Fatalf("GetEvent(e2) decisions = %+v, %v", ds, err)
	}
}

func TestDedupExpiry(t *testing.T) {
	clk := &clock{t: t0}
	s := openTemp(t, filepath.Join(t.TempDir(), "sg.db"), Options{Now: clk.Now})
	ctx := t.Context()
	for _, id := range []string{"old", "reused"} {
		if _, err := s.Append(ctx, ev(id)); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	got, err := s.ReadLog(ctx, "engine", 10, time.Second)
	if err != nil || len(got) != 2 {
		t.Fatalf("ReadLog = %d, %v", len(got), err)
	}
	for _, e := range got {
		if err := s.Ack(ctx, e, store.Outcome{Unmatched: true}); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	if err := s.RecordDecisions(ctx, "old", store.ItemDecisions{ItemID: "i1", Note: "first"}); err != nil {
		t.Fatalf("RecordDecisions: %v", err)
	}

	clk.Add(59 * time.Minute) // inside the one-hour window
	if res, err := s.Append(ctx, ev("reused")); err != nil || !res.Duplicate {
		t.Fatalf("Append inside the window = %+v, %v; want duplicate", res, err)
	}
	clk.Add(time.Minute) // the window has passed: the id is new again
	res, err := s.Append(ctx, ev("reused"))
	if err != nil || res.Duplicate {
		t.Fatalf("Append after the window = %+v, %v; want new", res, err)
	}
	if rec, _, err := s.GetEvent(ctx, "reused"); err != nil || rec.Applied || rec.Seq != res.Seq {
		t.Fatalf("GetEvent(reused) = %+v, %v; want the new, unapplied record", rec, err)
	}

	if n, err := s.sweep(); err != nil || n == 0 {
		t.Fatalf("sweep = %d, %v", n, err)
	}
	if _, _, err := s.GetEvent(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetEvent(old) after sweep: %v, want ErrNotFound", err)
	}
	if _, _, err := s.GetEvent(ctx, "reused"); err != nil {
		t.Fatalf("GetEvent(reused) after sweep: %v; its new key has not expired", err)
	}
	for name, b := range map[string][]byte{"dedup": bDedup, "expiry": bExpiry} {
		if n := count(t, s, b); n != 1 {
			t.Errorf("bucket %s holds %d keys after sweep, want 1 (reused)", name, n)
		}
	}
	if n := countKind(t, s, kindRecord); n != 1 {
		t.Errorf("%d event records after sweep, want 1 (reused)", n)
	}
	if n := count(t, s, bDecisions) + countKind(t, s, kindDecisions); n != 0 {
		t.Errorf("decisions of swept events kept: %d", n)
	}
	if un, err := s.ListUnmatched(ctx, 10); err != nil || len(un) != 0 {
		t.Fatalf("ListUnmatched after sweep = %+v, %v; want none", un, err)
	}
	clk.Add(2 * time.Hour)
	if _, err := s.sweep(); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if n := count(t, s, bDedup) + count(t, s, bUnmatched) + count(t, s, bEvData); n != 0 {
		t.Errorf("%d keys left after everything expired", n)
	}
}

// A log entry whose event record was forgotten before it was applied (its
// dedup window passed while it waited, and the sweeper or a new append of
// the id deleted the record) is dropped with a warning instead of failing
// every ReadLog after it; a re-appended id is delivered as the new event.
// (Before the restart, the events this process appended are still handed
// over from memory.)
func TestReadLogDropsEntriesOfForgottenEvents(t *testing.T) {
	clk := &clock{t: t0}
	path := filepath.Join(t.TempDir(), "sg.db")
	s := openTemp(t, path, Options{Now: clk.Now})
	ctx := t.Context()
	for _, id := range []string{"swept", "again"} {
		if _, err := s.Append(ctx, ev(id)); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(2 * time.Hour) // past the one-hour window, nothing read yet
	if _, err := s.sweep(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"again", "later"} { // "again": a new event with the old id
		if _, err := s.Append(ctx, ev(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTemp(t, path, Options{Now: clk.Now})
	got, err := s.ReadLog(ctx, "engine", 10, 0)
	if err != nil {
		t.Fatalf("ReadLog: %v", err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.Event.ID)
	}
	if len(ids) != 2 || ids[0] != "again" || ids[1] != "later" {
		t.Fatalf("ReadLog = %v, want [again later]", ids)
	}
	// The dropped entries leave the log, so no later Open meets them.
	deadline := time.Now().Add(5 * time.Second)
	for count(t, s, bLog) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("log holds %d entries, want the 2 delivered", count(t, s, bLog))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

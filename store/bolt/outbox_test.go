package bolt

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

// moveWithEntry creates item i1 and moves it with one outbox entry.
func moveWithEntry(t *testing.T, s *Store, id string) {
	t.Helper()
	ctx := t.Context()
	it := store.Item{ID: "i1", Pipeline: "sales", Stage: "new", CreatedAt: t0}
	if _, _, err := s.CreateItem(ctx, it, store.TimelineEntry{ID: "created", Kind: store.EntryCreated}); err != nil {
		t.Fatalf("CreateItem: %v", err)
	}
	_, err := s.Move(ctx, store.MoveRequest{ItemID: "i1", ExpectVersion: 1, To: "won", At: t0,
		Entry:  store.TimelineEntry{ID: "m:2", Kind: store.EntryMove},
		Outbox: []store.OutboxEntry{{ID: id, Key: "i1/m:2/0", ItemID: "i1", Type: "webhook", Due: t0}}})
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
}

// One process owns the file: entries the previous process left running
// are due again as soon as the store is opened, without waiting for their
// lease.
func TestReopenReleasesLeases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sg.db")
	c := &clock{t: t0}
	s := openTemp(t, path, Options{Now: c.Now})
	moveWithEntry(t, s, "ac_1")
	es, err := s.ClaimOutbox(t.Context(), t0, 10, time.Hour)
	if err != nil || len(es) != 1 {
		t.Fatalf("ClaimOutbox = %d, %v", len(es), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	c.Add(time.Second)
	s = openTemp(t, path, Options{Now: c.Now})
	e, err := s.GetOutbox(t.Context(), "ac_1")
	if err != nil || e.Status != store.OutboxPending || !e.Due.Equal(t0.Add(time.Second)) || e.Attempts != 1 {
		t.Fatalf("after reopen: %+v, %v; want pending, due at the reopen", e, err)
	}
	es, err = s.ClaimOutbox(t.Context(), t0.Add(time.Second), 10, time.Hour)
	if err != nil || len(es) != 1 || es[0].Claim != 2 {
		t.Fatalf("ClaimOutbox after reopen = %+v, %v", es, err)
	}
}

// Finished entries are deleted once the dedup window has passed; failed
// ones stay until retried.
func TestSweepOutbox(t *testing.T) {
	c := &clock{t: t0}
	s := openTemp(t, filepath.Join(t.TempDir(), "sg.db"), Options{Now: c.Now})
	moveWithEntry(t, s, "ac_1")
	if _, err := s.ClaimOutbox(t.Context(), t0, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteOutbox(t.Context(), "ac_1", 1, store.OutboxDone, "", t0); err != nil {
		t.Fatal(err)
	}
	c.Add(59 * time.Minute) // the window is one hour (openTemp)
	if _, err := s.sweep(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOutbox(t.Context(), "ac_1"); err != nil {
		t.Fatalf("entry swept before the window passed: %v", err)
	}
	c.Add(2 * time.Minute)
	if _, err := s.sweep(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOutbox(t.Context(), "ac_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("entry after the window: %v, want ErrNotFound", err)
	}
	for _, b := range [][]byte{bOutbox, bOutboxStatus, bOutboxItem, bOutboxDue} {
		if n := count(t, s, b); n != 0 {
			t.Errorf("bucket %s holds %d keys after the sweep", b, n)
		}
	}
}

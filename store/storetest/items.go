package storetest

import (
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

// item returns an item created n minutes after base.
func item(id, pipeline, stage, contact string, n int) store.Item {
	at := base.Add(time.Duration(n) * time.Minute)
	return store.Item{
		ID: id, Pipeline: pipeline, Stage: stage, ContactID: contact,
		Responsible: "manager-1", Fields: map[string]string{"title": "Deal " + id},
		CreatedAt: at, UpdatedAt: at,
	}
}

// created returns the first timeline entry of it.
func created(it store.Item) store.TimelineEntry {
	return store.TimelineEntry{
		ID: "created", ItemID: it.ID, Kind: store.EntryCreated, To: it.Stage,
		EventID: "form:" + it.ID, Message: "created from event", At: it.CreatedAt,
	}
}

// mustCreate creates it and fails unless it is new.
func mustCreate(t *testing.T, s store.Store, it store.Item) store.Item {
	t.Helper()
	got, ok, err := s.CreateItem(t.Context(), it, created(it))
	if err != nil || !ok {
		t.Fatalf("CreateItem(%s) = created %v, %v; want created", it.ID, ok, err)
	}
	return got
}

// checkItem fails unless got is want (times compared with Equal).
func checkItem(t *testing.T, got, want store.Item) {
	t.Helper()
	if got.ID != want.ID || got.Pipeline != want.Pipeline || got.Stage != want.Stage ||
		got.ContactID != want.ContactID || got.Responsible != want.Responsible ||
		got.Closed != want.Closed || got.Version != want.Version ||
		!maps.Equal(got.Fields, want.Fields) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("item = %+v\nwant   %+v", got, want)
	}
}

// checkTimeline fails unless the item's timeline holds exactly the entry
// ids want, in that order.
func checkTimeline(t *testing.T, s store.Store, itemID string, want ...string) []store.TimelineEntry {
	t.Helper()
	es, err := s.Timeline(t.Context(), itemID)
	if err != nil {
		t.Fatalf("Timeline(%s): %v", itemID, err)
	}
	var ids []string
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("Timeline(%s) = %q, want %q", itemID, ids, want)
	}
	return es
}

func testItems(t *testing.T, open Opener) {
	t.Run("CreateIdempotent", func(t *testing.T) {
		s := open(t)
		it := item("deal-1", "sales", "new", "contact-1", 0)
		it.Version = 9 // ignored: a new item starts at version 1
		got := mustCreate(t, s, it)
		want := it
		want.Version = 1
		checkItem(t, got, want)
		es := checkTimeline(t, s, it.ID, "created")
		checkEntry(t, es[0], created(it))

		again := item("deal-1", "support", "triage", "contact-2", 5)
		entry := created(again)
		entry.ID = "created-again"
		got, ok, err := s.CreateItem(t.Context(), again, entry)
		if err != nil || ok {
			t.Fatalf("second CreateItem = created %v, %v; want existing", ok, err)
		}
		checkItem(t, got, want)
		checkTimeline(t, s, it.ID, "created")
		got, err = s.GetItem(t.Context(), it.ID)
		if err != nil {
			t.Fatalf("GetItem: %v", err)
		}
		checkItem(t, got, want)
	})

	t.Run("ConcurrentCreate", func(t *testing.T) {
		s := open(t)
		const n = 50
		var nCreated atomic.Int32
		together(n, func(i int) {
			it := item("deal-1", "sales", fmt.Sprintf("stage-%d", i), "c1", 0)
			entry := created(it)
			entry.ID = fmt.Sprintf("created-%d", i)
			got, ok, err := s.CreateItem(t.Context(), it, entry)
			if err != nil || got.Version != 1 {
				t.Errorf("CreateItem %d = version %d, %v", i, got.Version, err)
			}
			if ok {
				nCreated.Add(1)
			}
		})
		if nCreated.Load() != 1 {
			t.Fatalf("%d concurrent CreateItem calls for one id created it, want 1", nCreated.Load())
		}
		es, err := s.Timeline(t.Context(), "deal-1")
		if err != nil || len(es) != 1 {
			t.Fatalf("Timeline = %d entries, %v; want 1", len(es), err)
		}
		got, err := s.GetItem(t.Context(), "deal-1")
		if err != nil || "created-"+got.Stage[len("stage-"):] != es[0].ID {
			t.Fatalf("GetItem = %+v, %v; want the item of entry %s", got, err, es[0].ID)
		}
	})

	t.Run("GetUnknown", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "", 0))
		_, err := s.GetItem(t.Context(), "deal-2")
		wantErr(t, "GetItem(unknown)", err, store.ErrNotFound)
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		for _, it := range []store.Item{
			item("i1", "sales", "new", "c1", 1),
			item("i2", "sales", "won", "c2", 2),
			item("i3", "support", "new", "c1", 3),
			item("i4", "sales", "new", "c2", 4),
			item("i5", "sales", "new", "", 5),
		} {
			mustCreate(t, s, it)
		}
		checkList(t, s, []listCase{
			{store.ItemFilter{}, []string{"i1", "i2", "i3", "i4", "i5"}},
			{store.ItemFilter{Pipeline: "sales"}, []string{"i1", "i2", "i4", "i5"}},
			{store.ItemFilter{Pipeline: "sales", Stage: "new"}, []string{"i1", "i4", "i5"}},
			{store.ItemFilter{Stage: "new"}, []string{"i1", "i3", "i4", "i5"}},
			{store.ItemFilter{ContactID: "c1"}, []string{"i1", "i3"}},
			{store.ItemFilter{Pipeline: "sales", ContactID: "c2"}, []string{"i2", "i4"}},
			{store.ItemFilter{Pipeline: "sales", Stage: "new", ContactID: "c2"}, []string{"i4"}},
			{store.ItemFilter{Pipeline: "sales", Limit: 2}, []string{"i1", "i2"}},
			{store.ItemFilter{ContactID: "c1", Limit: 1}, []string{"i1"}},
			{store.ItemFilter{Pipeline: "nope"}, nil},
			{store.ItemFilter{Pipeline: "sales", Stage: "lost"}, nil},
			{store.ItemFilter{ContactID: "c9"}, nil},
		})

		// After a move the item is listed under its new stage only.
		if _, err := s.Move(t.Context(), store.MoveRequest{
			ItemID: "i1", ExpectVersion: 1, To: "won", At: base.Add(time.Hour),
			Entry: store.TimelineEntry{ID: "m1", ItemID: "i1", Kind: store.EntryMove, From: "new", To: "won", At: base.Add(time.Hour)},
		}); err != nil {
			t.Fatalf("Move: %v", err)
		}
		checkList(t, s, []listCase{
			{store.ItemFilter{Pipeline: "sales", Stage: "new"}, []string{"i4", "i5"}},
			{store.ItemFilter{Pipeline: "sales", Stage: "won"}, []string{"i1", "i2"}},
			{store.ItemFilter{Stage: "won"}, []string{"i1", "i2"}},
			{store.ItemFilter{ContactID: "c1", Stage: "won"}, []string{"i1"}},
			{store.ItemFilter{Pipeline: "sales"}, []string{"i1", "i2", "i4", "i5"}},
		})
	})

	// Pages: After continues after an item, also among items created at
	// the same instant (ordered by id); Responsible and UpdatedSince filter.
	t.Run("ListPages", func(t *testing.T) {
		s := open(t)
		var all []store.Item
		for i := range 7 {
			it := item(fmt.Sprintf("p%d", i), "sales", "new", "c1", i/3) // three at each instant
			if i%2 == 1 {
				it.Responsible = "carol"
			}
			it.UpdatedAt = it.CreatedAt.Add(time.Duration(i) * time.Hour)
			all = append(all, mustCreate(t, s, it))
		}
		for _, f := range []store.ItemFilter{{}, {Pipeline: "sales"}, {Pipeline: "sales", Stage: "new"}, {ContactID: "c1"}} {
			var ids []string
			f.Limit = 2
			for range 10 {
				page, err := s.ListItems(t.Context(), f)
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range page {
					ids = append(ids, it.ID)
				}
				if len(page) < f.Limit {
					break
				}
				f.After = store.CursorOf(page[len(page)-1])
			}
			if want := []string{"p0", "p1", "p2", "p3", "p4", "p5", "p6"}; !slices.Equal(ids, want) {
				t.Errorf("pages of %+v = %q, want %q", f, ids, want)
			}
		}
		checkList(t, s, []listCase{
			{store.ItemFilter{Responsible: "carol"}, []string{"p1", "p3", "p5"}},
			{store.ItemFilter{Pipeline: "sales", Responsible: "carol", Limit: 2}, []string{"p1", "p3"}},
			{store.ItemFilter{Responsible: "carol", After: store.CursorOf(all[3])}, []string{"p5"}},
			{store.ItemFilter{UpdatedSince: all[4].UpdatedAt}, []string{"p4", "p5", "p6"}},
			{store.ItemFilter{Stage: "new", UpdatedSince: all[4].UpdatedAt, Responsible: "manager-1"}, []string{"p4", "p6"}},
			{store.ItemFilter{After: store.CursorOf(all[6])}, nil},
		})
	})

	t.Run("DefaultLimit", func(t *testing.T) {
		s := open(t)
		together(105, func(i int) {
			it := item(fmt.Sprintf("i%03d", i), "sales", "new", "c1", i)
			if _, _, err := s.CreateItem(t.Context(), it, created(it)); err != nil {
				t.Errorf("CreateItem: %v", err)
			}
		})
		got, err := s.ListItems(t.Context(), store.ItemFilter{Pipeline: "sales"})
		if err != nil || len(got) != 100 {
			t.Fatalf("ListItems(no limit) = %d items, %v; want 100", len(got), err)
		}
	})
}

// checkEntry fails unless got is want (At compared with Equal).
func checkEntry(t *testing.T, got, want store.TimelineEntry) {
	t.Helper()
	gotAt, wantAt := got.At, want.At
	got.At, want.At = time.Time{}, time.Time{}
	if got != want || !gotAt.Equal(wantAt) {
		t.Fatalf("timeline entry = %+v at %v\nwant             %+v at %v", got, gotAt, want, wantAt)
	}
}

type listCase struct {
	f    store.ItemFilter
	want []string
}

func checkList(t *testing.T, s store.Store, cases []listCase) {
	t.Helper()
	for _, tc := range cases {
		items, err := s.ListItems(t.Context(), tc.f)
		if err != nil {
			t.Fatalf("ListItems(%+v): %v", tc.f, err)
		}
		var ids []string
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("ListItems(%+v) = %q, want %q", tc.f, ids, tc.want)
		}
	}
}

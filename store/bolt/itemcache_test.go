package bolt

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// The item cache has no invalidation to keep: a write path that does not
// touch it (UpdateItem here) leaves an entry whose bytes no longer match,
// and both the engine's read (Lookup) and its write (ApplyBatch) see the
// item as stored.
func TestItemCacheNeverServesStaleItems(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t, filepath.Join(t.TempDir(), "sg.db"), Options{})
	it, _, err := s.CreateItem(ctx, store.Item{ID: "i1", Pipeline: "p", Stage: "a"}, store.TimelineEntry{ID: "created", Kind: store.EntryCreated})
	if err != nil {
		t.Fatal(err)
	}
	look := func() store.Item {
		t.Helper()
		res, err := s.Lookup(ctx, store.LookupRequest{ItemIDs: []string{"i1"}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Items["i1"]
	}
	if got := look(); got.Version != it.Version {
		t.Fatalf("lookup: version %d, want %d", got.Version, it.Version)
	}
	// Changed behind the cache's back.
	upd, _, err := s.UpdateItem(ctx, store.ItemUpdate{ItemID: "i1", Fields: map[string]string{"k": "v"}, Entry: store.TimelineEntry{ID: "u1", Kind: store.EntryAction}})
	if err != nil {
		t.Fatal(err)
	}
	got := look()
	if got.Version != upd.Version || got.Fields["k"] != "v" {
		t.Fatalf("lookup after an update: %+v, want version %d with field k", got, upd.Version)
	}
	// A caller changing what it got does not change the cache.
	got.Fields["k"] = "changed"
	if again := look(); again.Fields["k"] != "v" {
		t.Fatalf("lookup returned the cache's own map: field k = %q", again.Fields["k"])
	}

	// A write expecting the version the cache saw first is a conflict; the
	// one expecting the stored version moves the item, keeping its field.
	ev := normalize.Event{ID: "e1", Type: "t"}
	write := func(expect int64) store.WriteStatus {
		t.Helper()
		res, err := s.ApplyBatch(ctx, time.Now(), []store.BatchEntry{{
			Entry: store.LogEntry{Event: ev},
			Writes: []store.ItemWrite{{ItemID: "i1", ExpectVersion: expect,
				Move: &store.ItemMove{To: "b", Entry: store.TimelineEntry{ID: "m1", Kind: store.EntryMove, From: "a", To: "b"}}}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Writes[0][0]
	}
	if st := write(it.Version); st != store.WriteConflict {
		t.Fatalf("write at the cached (stale) version: %v, want a conflict", st)
	}
	if st := write(upd.Version); st != store.WriteOK {
		t.Fatalf("write at the stored version: %v, want ok", st)
	}
	final, err := s.GetItem(ctx, "i1")
	if err != nil {
		t.Fatal(err)
	}
	if final.Stage != "b" || final.Version != upd.Version+1 || final.Fields["k"] != "v" {
		t.Fatalf("item after the move: %+v", final)
	}
	if got := look(); got.Stage != "b" || got.Version != final.Version {
		t.Fatalf("lookup after the move: %+v", got)
	}
}

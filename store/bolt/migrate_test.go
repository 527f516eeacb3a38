package bolt

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// writeLayout1 writes, with bbolt alone, a file as the first layout left
// it: a waiting event (log entry 3), an applied one (1) with decisions and
// a marker for item i1, an unmatched one (2) in the unmatched index, and
// a marker and decisions of an event that never had a record, and item
// i1's timeline bucket with one entry (m0), and list hits:m1's bucket
// with one element (h1) and an expiry.
func writeLayout1(t *testing.T, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exp := u64(timeKey(t0.Add(time.Hour)))
	dec := func(item string) []byte {
		b, _ := json.Marshal(store.ItemDecisions{ItemID: item, Pipeline: "sales", From: "new", To: "won", Moved: true})
		return b
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b := map[string]*bbolt.Bucket{}
		for _, name := range []string{"dedup", "expiry", "log", "events", "event_state", "unmatched", "failed", "decisions", "applied", "items"} {
			var err error
			if b[name], err = tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		put := func(bucket string, k, v []byte) {
			if err == nil {
				err = b[bucket].Put(k, v)
			}
		}
		for seq, id := range map[uint64]string{1: "e-done", 2: "e-unm", 3: "e-wait"} {
			rec, _ := json.Marshal(store.EventRecord{Event: *ev(id)})
			put("events", []byte(id), rec)
			put("dedup", []byte(id), exp)
			put("expiry", append(exp, id...), nil)
			switch id {
			case "e-done":
				put("event_state", []byte(id), encodeState(seq, t0, store.Outcome{}))
			case "e-unm":
				put("event_state", []byte(id), encodeState(seq, t0, store.Outcome{Unmatched: true, Note: "nobody"}))
				put("unmatched", append(u64(timeKey(t0)), u64(1)...), []byte(id))
			default:
				put("event_state", []byte(id), u64(seq))
				put("log", u64(seq), []byte(id))
			}
		}
		put("decisions", pairKey("e-done", "i1"), dec("i1"))
		put("applied", pairKey("e-done", "i1"), nil)
		put("decisions", pairKey("orphan", "i1"), dec("i1"))
		put("applied", pairKey("orphan", "i1"), nil)
		it, _ := json.Marshal(store.Item{ID: "i1", Pipeline: "sales", Stage: "won", Version: 2})
		put("items", []byte("i1"), it)
		if err != nil {
			return err
		}
		tls, err := tx.CreateBucket([]byte("timelines"))
		if err != nil {
			return err
		}
		tl, err := tls.CreateBucket([]byte("i1"))
		if err != nil {
			return err
		}
		entry, _ := json.Marshal(store.TimelineEntry{ID: "m0", ItemID: "i1", Kind: "created", At: t0})
		if err := tl.Put(append([]byte{'s'}, u64(1)...), entry); err != nil {
			return err
		}
		if err := tl.Put([]byte("im0"), u64(1)); err != nil {
			return err
		}
		if err := tl.SetSequence(1); err != nil {
			return err
		}
		lists, err := tx.CreateBucket([]byte("lists"))
		if err != nil {
			return err
		}
		lb, err := lists.CreateBucket([]byte("hits:m1"))
		if err != nil {
			return err
		}
		for k, v := range map[string][]byte{"e" + string(u64(1)): listElem("h1", []byte("v1")), "ih1": u64(1), "x": exp} {
			if err := lb.Put([]byte(k), v); err != nil {
				return err
			}
		}
		if err := lb.SetSequence(1); err != nil {
			return err
		}
		return b["log"].SetSequence(3)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// layout1File writes the layout-1 fixture into a new file, with the
// upgrade moving chunk entries a step (0: the default) until the test ends.
func layout1File(t *testing.T, chunk int) string {
	t.Helper()
	if chunk > 0 {
		old := upgradeChunk
		upgradeChunk = chunk
		t.Cleanup(func() { upgradeChunk = old })
	}
	path := filepath.Join(t.TempDir(), "sg.db")
	writeLayout1(t, path)
	return path
}

func TestOpenMigratesLayout1(t *testing.T) {
	checkUpgradedLayout1(t, layout1File(t, 0))
}

// In steps of one entry, event or bucket, the upgrade ends the same.
func TestUpgradeInSmallSteps(t *testing.T) {
	checkUpgradedLayout1(t, layout1File(t, 1))
}

// An upgrade stopped between two steps (a crash, a kill) goes on from
// there on the next Open, with nothing lost or doubled.
func TestUpgradeResumesAfterInterruption(t *testing.T) {
	path := layout1File(t, 1)
	// Log, unmatched and failed (converted, then dropped: 5 steps), then
	// one event.
	interruptUpgrade(t, path, 6, func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bEvents1); b == nil || b.Stats().KeyN != 2 {
			return errors.New("the interruption is not in the middle of the events")
		}
		return nil
	})
	checkUpgradedLayout1(t, path)
}

// interruptUpgrade runs n upgrade steps of the file at path and stops, as
// a killed upgrade would; where reports whether it stopped where the test
// wants it.
func interruptUpgrade(t *testing.T, path string, n int, where func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		upgrade, err := checkLayout(tx)
		if err == nil && !upgrade {
			err = errors.New("the file is not upgraded")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := db.Update(func(tx *bbolt.Tx) error {
			done, _, err := upgradeStep(tx)
			if done {
				return errors.New("upgrade done too early")
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.View(where); err != nil {
		t.Fatal(err)
	}
}

// checkUpgradedLayout1 opens the file writeLayout1 wrote (whole, or partly
// upgraded) and checks that everything it held reads as before, then once
// more after a second Open.
func checkUpgradedLayout1(t *testing.T, path string) {
	t.Helper()
	clk := &clock{t: t0}
	ctx := t.Context()
	check := func(s *Store) {
		t.Helper()
		rec, ds, err := s.GetEvent(ctx, "e-done")
		if err != nil || !rec.Applied || rec.Seq != "1" || len(ds) != 1 || ds[0].ItemID != "i1" || !ds[0].Moved {
			t.Fatalf("GetEvent(e-done) = %+v, %+v, %v; want applied with the decisions for i1", rec, ds, err)
		}
		for _, id := range []string{"e-done", "orphan"} {
			_, err := s.Move(ctx, store.MoveRequest{ItemID: "i1", ExpectVersion: 2, To: "lost", EventID: id})
			if !errors.Is(err, store.ErrAlreadyApplied) {
				t.Fatalf("Move(%s) after the upgrade: %v, want ErrAlreadyApplied", id, err)
			}
		}
		if un, err := s.ListUnmatched(ctx, 10); err != nil || len(un) != 1 || un[0].Event.ID != "e-unm" || un[0].Note != "nobody" {
			t.Fatalf("ListUnmatched = %+v, %v; want e-unm", un, err)
		}
		if res, err := s.Append(ctx, ev("e-done")); err != nil || !res.Duplicate {
			t.Fatalf("Append(e-done) = %+v, %v; want a duplicate (its dedup key is kept)", res, err)
		}
	}

	s, err := Open(store.Config{Path: path, DedupWindow: time.Hour}, Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("Open of a layout-1 file: %v", err)
	}
	check(s)
	got, err := s.ReadLog(ctx, "engine", 10, 0)
	if err != nil || len(got) != 1 || got[0].Event.ID != "e-wait" || got[0].Seq != "3" {
		t.Fatalf("ReadLog = %+v, %v; want the waiting e-wait at 3", got, err)
	}
	res, err := s.Append(ctx, ev("e-new"))
	if err != nil || res.Seq != "4" {
		t.Fatalf("Append(e-new) = %+v, %v; want sequence 4, after the old log", res, err)
	}
	if err := s.Ack(ctx, got[0], store.Outcome{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m1", "m0"} { // m0 is there already
		if err := s.AppendTimeline(ctx, store.TimelineEntry{ID: id, ItemID: "i1", Kind: "note", At: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if tl, err := s.Timeline(ctx, "i1"); err != nil || len(tl) != 2 || tl[0].ID != "m0" || tl[1].ID != "m1" {
		t.Fatalf("Timeline(i1) = %+v, %v; want m0 (from layout 1), then m1", tl, err)
	}
	if seq, dup, err := s.AppendList(ctx, "hits:m1", "h1", []byte("again"), 0); err != nil || !dup || seq != 1 {
		t.Fatalf("AppendList(h1) = %d, %v, %v; want the layout-1 element 1, a duplicate", seq, dup, err)
	}
	if seq, dup, err := s.AppendList(ctx, "hits:m1", "h2", []byte("v2"), 0); err != nil || dup || seq != 2 {
		t.Fatalf("AppendList(h2) = %d, %v, %v; want a new element 2", seq, dup, err)
	}
	if els, err := s.ReadList(ctx, "hits:m1", 0, 10); err != nil || len(els) != 2 || els[0].ID != "h1" || string(els[0].Value) != "v1" || els[1].ID != "h2" {
		t.Fatalf("ReadList = %+v, %v; want h1 (v1) then h2", els, err)
	}
	clk.Add(2 * time.Hour) // past the list's layout-1 expiry
	if els, err := s.ReadList(ctx, "hits:m1", 0, 10); err != nil || len(els) != 0 {
		t.Fatalf("ReadList after the expiry = %+v, %v; want none", els, err)
	}
	clk.Add(-2 * time.Hour)
	if rec, _, err := s.GetEvent(ctx, "e-wait"); err != nil || !rec.Applied {
		t.Fatalf("GetEvent(e-wait) after Ack = %+v, %v", rec, err)
	}
	if err := s.db.View(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bEvents1, bEvState1, bTimelines1, bLists1, bTimeline2} {
			if tx.Bucket(name) != nil {
				t.Errorf("bucket %s of an earlier layout still there", name)
			}
		}
		if v := tx.Bucket(bMeta).Get(layoutKey); len(v) != 8 || v[7] != layoutVersion {
			t.Errorf("layout = %x, want %d", v, layoutVersion)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, bApplied) + count(t, s, bDecisions); n != 2 {
		t.Errorf("%d keys left by id, want 2 (the record-less event's)", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Opened again, nothing is migrated twice and everything still reads.
	s = openTemp(t, path, Options{Now: clk.Now})
	check(s)
	got, err = s.ReadLog(ctx, "engine", 10, 0)
	if err != nil || len(got) != 1 || got[0].Event.ID != "e-new" {
		t.Fatalf("ReadLog after reopen = %+v, %v; want e-new only", got, err)
	}
}

func TestOpenRefusesNewerLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sg.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(bMeta)
		if err != nil {
			return err
		}
		return b.Put(layoutKey, u64(layoutVersion+1))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := Open(store.Config{Path: path}, Options{}); err == nil {
		s.Close()
		t.Fatal("Open of a file of a newer layout succeeded")
	}
}

// The timelines of items whose ids share a prefix stay apart, each counted
// and ordered on its own.
func TestTimelinesOfPrefixedItemIDs(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "sg.db"), Options{})
	items := []string{"a", "ab", "a-b", "b"}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, id := range items {
			if err := tx.Bucket(bItems).Put([]byte(id), []byte(`{"id":"`+id+`"}`)); err != nil {
				return err
			}
		}
		for n := range 3 {
			for _, id := range []string{"ab", "a", "b", "a-b"} {
				e := store.TimelineEntry{ID: id + "-" + string(rune('0'+n)), ItemID: id, Kind: "note", At: t0}
				data, _ := json.Marshal(e)
				if ok, err := appendEntryJSON(tx, id, e.ID, data); err != nil || !ok {
					return errors.Join(err, errors.New("not written: "+e.ID))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range items {
		tl, err := s.Timeline(t.Context(), id)
		if err != nil || len(tl) != 3 {
			t.Fatalf("Timeline(%s) = %+v, %v; want 3 entries", id, tl, err)
		}
		for n, e := range tl {
			if want := id + "-" + string(rune('0'+n)); e.ID != want || e.ItemID != id {
				t.Fatalf("Timeline(%s)[%d] = %s of %s, want %s", id, n, e.ID, e.ItemID, want)
			}
		}
	}
}

func TestListKeyWithNULRefused(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "sg.db"), Options{})
	if _, _, err := s.AppendList(t.Context(), "a\x00b", "e1", nil, 0); err == nil {
		t.Fatal("AppendList with a NUL in the key succeeded")
	}
	res, err := s.AppendLists(t.Context(), []store.ListAppend{{Key: "a\x00b", ID: "e1"}, {Key: "ok", ID: "e1"}})
	if err != nil || len(res) != 2 || res[0].Err == nil || res[1].Err != nil || res[1].Seq != 1 {
		t.Fatalf("AppendLists = %+v, %v; want the NUL key refused and the other appended", res, err)
	}
	if _, err := s.ReadList(t.Context(), "a\x00b", 0, 0); err == nil {
		t.Fatal("ReadList with a NUL in the key succeeded")
	}
}

package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// obase is base rounded to milliseconds: drivers may keep outbox times at
// that precision.
var obase = base.Truncate(time.Millisecond)

// at is obase plus d.
func at(d time.Duration) time.Time { return obase.Add(d) }

// outboxEntry is an entry of item for its stage entry entryID, action i,
// due after d.
func outboxEntry(itemID, entryID string, i int, d time.Duration) store.OutboxEntry {
	k := fmt.Sprintf("%s/%s/%d", itemID, entryID, i)
	return store.OutboxEntry{
		ID: fmt.Sprintf("ac_%s_%s_%d", itemID, entryID, i), Key: k, ItemID: itemID, Pipeline: "sales",
		Stage: "won", Index: i, Type: "webhook", Name: fmt.Sprintf("hook %d", i),
		Payload: json.RawMessage(`{"from":"new","n":` + fmt.Sprint(i) + `}`), Due: at(d), CreatedAt: obase,
	}
}

// moveWithOutbox moves deal-1 from new to won with entries and fails on error.
func moveWithOutbox(t *testing.T, s store.Store, expect int64, entryID string, entries ...store.OutboxEntry) {
	t.Helper()
	req := moveReq("deal-1", expect, "new", "won", "", entryID, 0)
	req.At, req.Outbox = obase, entries
	if _, err := s.Move(t.Context(), req); err != nil {
		t.Fatalf("Move with outbox: %v", err)
	}
}

// checkOutbox fails unless the entry id has the given status, attempts and due.
func checkOutbox(t *testing.T, s store.Store, id, status string, attempts int, due time.Time) store.OutboxEntry {
	t.Helper()
	e, err := s.GetOutbox(t.Context(), id)
	if err != nil {
		t.Fatalf("GetOutbox(%s): %v", id, err)
	}
	if e.Status != status || e.Attempts != attempts || (!due.IsZero() && !e.Due.Equal(due)) {
		t.Fatalf("GetOutbox(%s) = status %s attempts %d due %v; want %s %d %v", id, e.Status, e.Attempts, e.Due, status, attempts, due)
	}
	return e
}

// claim claims up to n entries at now and returns their ids.
func claim(t *testing.T, s store.Store, now time.Time, n int, lease time.Duration) []store.OutboxEntry {
	t.Helper()
	es, err := s.ClaimOutbox(t.Context(), now, n, lease)
	if err != nil {
		t.Fatalf("ClaimOutbox: %v", err)
	}
	return es
}

func ids(es []store.OutboxEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// checkList fails unless ListOutbox(f) returns exactly want, in order.
func checkOutboxList(t *testing.T, s store.Store, f store.OutboxFilter, want ...string) {
	t.Helper()
	es, err := s.ListOutbox(t.Context(), f)
	if err != nil {
		t.Fatalf("ListOutbox(%+v): %v", f, err)
	}
	if got := ids(es); !slices.Equal(got, want) {
		t.Fatalf("ListOutbox(%+v) = %q, want %q", f, got, want)
	}
}

func checkDepth(t *testing.T, s store.Store, want int) {
	t.Helper()
	n, err := s.OutboxDepth(t.Context())
	if err != nil || n != want {
		t.Fatalf("OutboxDepth = %d, %v; want %d", n, err, want)
	}
}

func testOutbox(t *testing.T, open Opener) {
	const lease = time.Minute
	t.Run("WrittenWithMove", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		if _, ok, err := s.NextOutboxDue(t.Context()); err != nil || ok {
			t.Fatalf("NextOutboxDue on an empty outbox = %v, %v; want none", ok, err)
		}
		a, b := outboxEntry("deal-1", "m1", 0, 0), outboxEntry("deal-1", "m1", 1, 10*time.Minute)
		moveWithOutbox(t, s, 1, "m1", a, b)
		got := checkOutbox(t, s, a.ID, store.OutboxPending, 0, a.Due)
		if got.Key != a.Key || got.ItemID != "deal-1" || got.Pipeline != "sales" || got.Stage != "won" ||
			got.Index != 0 || got.Type != "webhook" || got.Name != "hook 0" || !got.CreatedAt.Equal(obase) {
			t.Fatalf("entry after move = %+v, want %+v", got, a)
		}
		var p map[string]any
		if err := json.Unmarshal(got.Payload, &p); err != nil || p["from"] != "new" {
			t.Fatalf("payload = %s (%v)", got.Payload, err)
		}
		checkOutbox(t, s, b.ID, store.OutboxPending, 0, b.Due)
		checkDepth(t, s, 2)
		if next, ok, err := s.NextOutboxDue(t.Context()); err != nil || !ok || !next.Equal(a.Due) {
			t.Fatalf("NextOutboxDue = %v %v %v, want %v", next, ok, err, a.Due)
		}
		checkOutboxList(t, s, store.OutboxFilter{ItemID: "deal-1", Status: store.OutboxPending}, b.ID, a.ID)
		checkOutboxList(t, s, store.OutboxFilter{ItemID: "deal-9"})
		checkOutboxList(t, s, store.OutboxFilter{Status: store.OutboxFailed})
		_, err := s.GetOutbox(t.Context(), "ac_nope")
		wantErr(t, "GetOutbox(unknown)", err, store.ErrNotFound)
	})

	t.Run("RefusedMoveWritesNone", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		req := moveReq("deal-1", 7, "new", "won", "", "m1", 0)
		req.Outbox = []store.OutboxEntry{outboxEntry("deal-1", "m1", 0, 0)}
		_, err := s.Move(t.Context(), req)
		wantErr(t, "Move with a stale version", err, store.ErrConflict)
		_, err = s.GetOutbox(t.Context(), req.Outbox[0].ID)
		wantErr(t, "GetOutbox after a refused move", err, store.ErrNotFound)
		checkDepth(t, s, 0)
	})

	t.Run("ExistingIDKept", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		a := outboxEntry("deal-1", "m1", 0, 0)
		moveWithOutbox(t, s, 1, "m1", a)
		es := claim(t, s, at(0), 10, lease)
		if len(es) != 1 {
			t.Fatalf("claimed %d, want 1", len(es))
		}
		again := a
		again.Due = at(time.Hour)
		moveWithOutbox(t, s, 2, "m2", again)
		checkOutbox(t, s, a.ID, store.OutboxRunning, 1, a.Due)
	})

	t.Run("ClaimComplete", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		a, b := outboxEntry("deal-1", "m1", 0, 0), outboxEntry("deal-1", "m1", 1, 10*time.Minute)
		moveWithOutbox(t, s, 1, "m1", a, b)
		es := claim(t, s, at(time.Second), 10, lease)
		if got := ids(es); !slices.Equal(got, []string{a.ID}) {
			t.Fatalf("claimed %q, want only the due %s", got, a.ID)
		}
		if e := es[0]; e.Status != store.OutboxRunning || e.Attempts != 1 || e.Claim != 1 || !e.LeaseUntil.Equal(at(time.Second+lease)) {
			t.Fatalf("claimed entry = %+v", e)
		}
		if es := claim(t, s, at(2*time.Second), 10, lease); len(es) != 0 {
			t.Fatalf("claimed %q again while leased", ids(es))
		}
		checkOutboxList(t, s, store.OutboxFilter{Status: store.OutboxRunning}, a.ID)
		checkDepth(t, s, 2)
		err := s.CompleteOutbox(t.Context(), a.ID, 2, store.OutboxDone, "", at(3*time.Second))
		wantErr(t, "CompleteOutbox with a wrong claim", err, store.ErrConflict)
		err = s.CompleteOutbox(t.Context(), b.ID, 0, store.OutboxDone, "", at(3*time.Second))
		wantErr(t, "CompleteOutbox of a pending entry", err, store.ErrConflict)
		err = s.CompleteOutbox(t.Context(), "ac_nope", 1, store.OutboxDone, "", at(3*time.Second))
		wantErr(t, "CompleteOutbox of an unknown entry", err, store.ErrNotFound)
		if err := s.CompleteOutbox(t.Context(), a.ID, 1, store.OutboxDone, "200 OK", at(3*time.Second)); err != nil {
			t.Fatalf("CompleteOutbox: %v", err)
		}
		e := checkOutbox(t, s, a.ID, store.OutboxDone, 1, a.Due)
		if e.Note != "200 OK" || !e.DoneAt.Equal(at(3*time.Second)) || !e.UpdatedAt.Equal(at(3*time.Second)) {
			t.Fatalf("done entry = %+v", e)
		}
		err = s.CompleteOutbox(t.Context(), a.ID, 1, store.OutboxDone, "", at(4*time.Second))
		wantErr(t, "CompleteOutbox twice", err, store.ErrConflict)
		checkDepth(t, s, 1)
		checkOutboxList(t, s, store.OutboxFilter{Status: store.OutboxDone}, a.ID)
		checkOutboxList(t, s, store.OutboxFilter{Status: store.OutboxRunning})
		// The later one comes due at its time; skipped is an end too.
		es = claim(t, s, at(10*time.Minute), 10, lease)
		if got := ids(es); !slices.Equal(got, []string{b.ID}) {
			t.Fatalf("claimed %q at b's time, want %s", got, b.ID)
		}
		if err := s.CompleteOutbox(t.Context(), b.ID, 1, store.OutboxSkipped, "item left the stage", at(11*time.Minute)); err != nil {
			t.Fatalf("CompleteOutbox skipped: %v", err)
		}
		checkOutbox(t, s, b.ID, store.OutboxSkipped, 1, b.Due)
		checkDepth(t, s, 0)
		checkOutboxList(t, s, store.OutboxFilter{ItemID: "deal-1"}, b.ID, a.ID)
	})

	t.Run("FailRetry", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		a := outboxEntry("deal-1", "m1", 0, 0)
		moveWithOutbox(t, s, 1, "m1", a)
		claim(t, s, at(0), 1, lease)
		if err := s.FailOutbox(t.Context(), a.ID, 1, "500 Internal Server Error", at(5*time.Second), at(time.Second)); err != nil {
			t.Fatalf("FailOutbox: %v", err)
		}
		e := checkOutbox(t, s, a.ID, store.OutboxPending, 1, at(5*time.Second))
		if e.LastError != "500 Internal Server Error" {
			t.Fatalf("last error = %q", e.LastError)
		}
		if next, ok, _ := s.NextOutboxDue(t.Context()); !ok || !next.Equal(at(5*time.Second)) {
			t.Fatalf("NextOutboxDue = %v, want the retry time", next)
		}
		if es := claim(t, s, at(4*time.Second), 1, lease); len(es) != 0 {
			t.Fatal("claimed before the retry time")
		}
		es := claim(t, s, at(5*time.Second), 1, lease)
		if len(es) != 1 || es[0].Attempts != 2 || es[0].Claim != 2 {
			t.Fatalf("second claim = %+v", es)
		}
		if err := s.FailOutbox(t.Context(), a.ID, 2, "404 Not Found", time.Time{}, at(6*time.Second)); err != nil {
			t.Fatalf("FailOutbox for good: %v", err)
		}
		checkOutbox(t, s, a.ID, store.OutboxFailed, 2, time.Time{})
		checkOutboxList(t, s, store.OutboxFilter{Status: store.OutboxFailed}, a.ID)
		checkDepth(t, s, 0)
		if es := claim(t, s, at(time.Hour), 1, lease); len(es) != 0 {
			t.Fatal("claimed a failed entry")
		}
		got, err := s.RetryOutbox(t.Context(), a.ID, at(time.Hour))
		if err != nil || got.Status != store.OutboxPending || got.Attempts != 0 || !got.Due.Equal(at(time.Hour)) || got.LastError != "404 Not Found" {
			t.Fatalf("RetryOutbox = %+v, %v", got, err)
		}
		_, err = s.RetryOutbox(t.Context(), a.ID, at(time.Hour))
		wantErr(t, "RetryOutbox of a pending entry", err, store.ErrConflict)
		_, err = s.RetryOutbox(t.Context(), "ac_nope", at(time.Hour))
		wantErr(t, "RetryOutbox of an unknown entry", err, store.ErrNotFound)
		checkOutboxList(t, s, store.OutboxFilter{Status: store.OutboxFailed})
		es = claim(t, s, at(time.Hour), 1, lease)
		if len(es) != 1 || es[0].Attempts != 1 || es[0].Claim != 3 {
			t.Fatalf("claim after retry = %+v", es)
		}
	})

	t.Run("LeaseEnds", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		a := outboxEntry("deal-1", "m1", 0, 0)
		moveWithOutbox(t, s, 1, "m1", a)
		claim(t, s, at(0), 1, time.Second)
		if es := claim(t, s, at(999*time.Millisecond), 1, time.Second); len(es) != 0 {
			t.Fatal("claimed before the lease ended")
		}
		es := claim(t, s, at(time.Second), 1, time.Second)
		if len(es) != 1 || es[0].Claim != 2 || es[0].Attempts != 2 {
			t.Fatalf("claim after the lease = %+v", es)
		}
		err := s.FailOutbox(t.Context(), a.ID, 1, "late", at(time.Minute), at(2*time.Second))
		wantErr(t, "FailOutbox under the expired claim", err, store.ErrConflict)
		if err := s.CompleteOutbox(t.Context(), a.ID, 2, store.OutboxDone, "", at(2*time.Second)); err != nil {
			t.Fatalf("CompleteOutbox under the new claim: %v", err)
		}
	})

	t.Run("ConcurrentClaims", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		var es []store.OutboxEntry
		for i := range 24 { // 24 stage entries: the claims may take them all at once
			es = append(es, outboxEntry("deal-1", fmt.Sprintf("m%d", i), 0, time.Duration(i)*time.Millisecond))
		}
		moveWithOutbox(t, s, 1, "m1", es...)
		var mu sync.Mutex
		seen := map[string]int{}
		together(8, func(int) {
			for range 4 {
				got, err := s.ClaimOutbox(t.Context(), at(time.Second), 3, lease)
				if err != nil {
					t.Errorf("ClaimOutbox: %v", err)
					return
				}
				mu.Lock()
				for _, e := range got {
					seen[e.ID]++
				}
				mu.Unlock()
			}
		})
		if len(seen) != 24 {
			t.Fatalf("claimed %d distinct entries, want 24", len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("entry %s claimed %d times", id, n)
			}
		}
	})

	t.Run("OneAtATimePerStageEntry", func(t *testing.T) {
		// Four actions of one stage entry, due in reverse order (so the
		// due index holds the last first), and one of another stage entry.
		s := open(t)
		mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		var chain []store.OutboxEntry
		for i := range 4 {
			chain = append(chain, outboxEntry("deal-1", "m1", i, time.Duration(3-i)*time.Millisecond))
		}
		other := outboxEntry("deal-1", "x1", 0, 0)
		moveWithOutbox(t, s, 1, "m1", append([]store.OutboxEntry{other}, chain...)...)
		if g := chain[2].Group(); g != "deal-1/m1" {
			t.Fatalf("Group() = %q, want deal-1/m1", g)
		}
		const short = 3 * time.Second
		t0 := at(10 * time.Millisecond)
		claimed := func(now time.Time, want ...string) []store.OutboxEntry {
			t.Helper()
			es := claim(t, s, now, 10, short)
			got := ids(es)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("claim at +%v = %q, want %q", now.Sub(t0), got, want)
			}
			return es
		}
		complete := func(e store.OutboxEntry, now time.Time) {
			t.Helper()
			if err := s.CompleteOutbox(t.Context(), e.ID, e.Claim, store.OutboxDone, "", now); err != nil {
				t.Fatalf("CompleteOutbox(%s): %v", e.ID, err)
			}
		}
		// The first of the chain (not the first due) and the other entry.
		es := claimed(t0, chain[0].ID, other.ID)
		for _, e := range es {
			if e.ID == other.ID {
				complete(e, t0.Add(time.Second))
			}
		}
		// Nothing while the first runs, though the others are due.
		claimed(t0.Add(time.Second))
		first := checkOutbox(t, s, chain[0].ID, store.OutboxRunning, 1, time.Time{})
		complete(first, t0.Add(1500*time.Millisecond))
		second := claimed(t0.Add(2*time.Second), chain[1].ID)[0]
		// One waiting for its retry does not hold back the next.
		if err := s.FailOutbox(t.Context(), second.ID, second.Claim, "503", t0.Add(time.Minute), t0.Add(2500*time.Millisecond)); err != nil {
			t.Fatalf("FailOutbox: %v", err)
		}
		claimed(t0.Add(3*time.Second), chain[2].ID)
		claimed(t0.Add(5 * time.Second))
		// A lease that ended gives the entry back, not the next one.
		third := claimed(t0.Add(6*time.Second), chain[2].ID)[0]
		if third.Attempts != 2 || third.Claim != 2 {
			t.Fatalf("claim after the lease = attempts %d claim %d, want 2 2", third.Attempts, third.Claim)
		}
		complete(third, t0.Add(7*time.Second))
		// At the retry time the earlier one goes first.
		second = claimed(t0.Add(time.Minute), chain[1].ID)[0]
		complete(second, t0.Add(time.Minute+time.Second))
		last := claimed(t0.Add(time.Minute+time.Second), chain[3].ID)[0]
		complete(last, t0.Add(time.Minute+2*time.Second))
		for i, want := range []int{1, 2, 2, 1} {
			checkOutbox(t, s, chain[i].ID, store.OutboxDone, want, time.Time{})
		}
		checkDepth(t, s, 0)
		claimed(t0.Add(time.Hour))
		// A failed one retried through the API joins its group again.
		moveWithOutbox(t, s, 2, "m2", outboxEntry("deal-1", "m2", 0, time.Hour), outboxEntry("deal-1", "m2", 1, time.Hour))
		a := claimed(at(time.Hour), "ac_deal-1_m2_0")[0]
		if err := s.FailOutbox(t.Context(), a.ID, a.Claim, "404", time.Time{}, at(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RetryOutbox(t.Context(), a.ID, at(time.Hour)); err != nil {
			t.Fatal(err)
		}
		claimed(at(time.Hour+time.Second), a.ID)
		claimed(at(time.Hour + 2*time.Second))
	})

	t.Run("UpdateItem", func(t *testing.T) {
		s := open(t)
		it := mustCreate(t, s, item("deal-1", "sales", "new", "c1", 0))
		u := store.ItemUpdate{
			ItemID: "deal-1", Fields: map[string]string{"bitrix24_id": "42"}, At: at(time.Minute),
			Entry: store.TimelineEntry{ID: "m1/a0", Kind: store.EntryAction, Action: "set_field", Message: "bitrix24_id = 42"},
		}
		got, applied, err := s.UpdateItem(t.Context(), u)
		if err != nil || !applied {
			t.Fatalf("UpdateItem = %v, %v", applied, err)
		}
		want := it
		want.Fields = maps.Clone(it.Fields)
		want.Fields["bitrix24_id"] = "42"
		want.Version, want.UpdatedAt = 2, at(time.Minute)
		checkItem(t, got, want)
		// The same entry again changes nothing.
		u2 := u
		u2.Fields, u2.Responsible = map[string]string{"bitrix24_id": "43"}, "carol"
		got, applied, err = s.UpdateItem(t.Context(), u2)
		if err != nil || applied {
			t.Fatalf("UpdateItem again = %v, %v; want not applied", applied, err)
		}
		checkItem(t, got, want)
		got, applied, err = s.UpdateItem(t.Context(), store.ItemUpdate{
			ItemID: "deal-1", Responsible: "carol", At: at(2 * time.Minute),
			Entry: store.TimelineEntry{ID: "m1/a1", Kind: store.EntryAction, Action: "set_responsible"},
		})
		if err != nil || !applied {
			t.Fatalf("UpdateItem responsible = %v, %v", applied, err)
		}
		want.Responsible, want.Version, want.UpdatedAt = "carol", 3, at(2*time.Minute)
		checkItem(t, got, want)
		if stored, err := s.GetItem(t.Context(), "deal-1"); err != nil {
			t.Fatal(err)
		} else {
			checkItem(t, stored, want)
		}
		es := checkTimeline(t, s, "deal-1", "created", "m1/a0", "m1/a1")
		if es[1].ItemID != "deal-1" || es[1].Action != "set_field" || !es[1].At.Equal(at(time.Minute)) {
			t.Fatalf("timeline entry = %+v", es[1])
		}
		_, _, err = s.UpdateItem(t.Context(), store.ItemUpdate{ItemID: "deal-9", Responsible: "x", Entry: store.TimelineEntry{ID: "e"}})
		wantErr(t, "UpdateItem of an unknown item", err, store.ErrNotFound)
	})

	// An update pinned to a version, removing a field, with one timeline
	// entry per change and its events appended to the log in the same step.
	t.Run("UpdateItemVersionAndEvents", func(t *testing.T) {
		s := open(t)
		it := item("deal-1", "sales", "new", "c1", 0)
		it.Fields = map[string]string{"a": "1", "b": "2"}
		mustCreate(t, s, it)
		ev := func(id string) normalize.Event {
			return normalize.Event{ID: id, Type: "item.field_changed", Connector: "item", Subject: normalize.Subject{ItemID: "deal-1"},
				Attrs: map[string]string{"field": "a"}, OccurredAt: at(0), ReceivedAt: at(0)}
		}
		u := store.ItemUpdate{
			ItemID: "deal-1", ExpectVersion: 1, Fields: map[string]string{"a": "9"}, Remove: []string{"b"}, At: at(time.Minute),
			Entry:  store.TimelineEntry{ID: "u:2:a", Kind: store.EntryFieldChanged, Field: "a", From: "1", To: "9"},
			More:   []store.TimelineEntry{{ID: "u:2:b", Kind: store.EntryFieldChanged, Field: "b", From: "2"}},
			Events: []normalize.Event{ev("item:deal-1:v2:a"), ev("item:deal-1:v2:b")},
		}
		got, applied, err := s.UpdateItem(t.Context(), u)
		if err != nil || !applied || got.Version != 2 || len(got.Fields) != 1 || got.Fields["a"] != "9" {
			t.Fatalf("UpdateItem = %+v, %v, %v", got, applied, err)
		}
		es := checkTimeline(t, s, "deal-1", "created", "u:2:a", "u:2:b")
		if es[2].Field != "b" || es[2].From != "2" || es[2].To != "" || es[2].ItemID != "deal-1" {
			t.Fatalf("entry = %+v", es[2])
		}
		log, err := s.ReadLog(t.Context(), "c1", 10, time.Second)
		if err != nil || len(log) != 2 || log[0].Event.ID != "item:deal-1:v2:a" || log[1].Event.ID != "item:deal-1:v2:b" {
			t.Fatalf("log after the update = %+v, %v", log, err)
		}
		if r, err := s.Append(t.Context(), &normalize.Event{ID: "item:deal-1:v2:a", Type: "item.field_changed"}); err != nil || !r.Duplicate {
			t.Fatalf("the update's event appended again = %+v, %v; want a duplicate", r, err)
		}
		// The same update again (a retry) is recognised before the version.
		if _, applied, err := s.UpdateItem(t.Context(), u); err != nil || applied {
			t.Fatalf("UpdateItem again = %v, %v; want not applied", applied, err)
		}
		// A stale version changes nothing.
		stale := store.ItemUpdate{ItemID: "deal-1", ExpectVersion: 1, Responsible: "carol",
			Entry: store.TimelineEntry{ID: "u:3:responsible"}, Events: []normalize.Event{ev("item:deal-1:v3:r")}}
		_, _, err = s.UpdateItem(t.Context(), stale)
		wantErr(t, "UpdateItem at a stale version", err, store.ErrConflict)
		if cur, err := s.GetItem(t.Context(), "deal-1"); err != nil || cur.Version != 2 || cur.Responsible == "carol" {
			t.Fatalf("item after a stale update = %+v, %v", cur, err)
		}
		if _, _, err := s.GetEvent(t.Context(), "item:deal-1:v3:r"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("event of a stale update: %v, want not found", err)
		}
		// Removing the last field leaves none.
		got, _, err = s.UpdateItem(t.Context(), store.ItemUpdate{ItemID: "deal-1", ExpectVersion: 2, Remove: []string{"a"},
			Entry: store.TimelineEntry{ID: "u:3:a"}})
		if err != nil || len(got.Fields) != 0 || got.Version != 3 {
			t.Fatalf("remove the last field = %+v, %v", got, err)
		}
	})
}

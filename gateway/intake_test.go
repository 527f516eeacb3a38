package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

func batchEvent(id string) *normalize.Event {
	now := time.Now().UTC()
	return &normalize.Event{ID: id, Type: normalize.WebhookReceive, Connector: "hooks", OccurredAt: now, ReceivedAt: now,
		Subject: normalize.Subject{Email: id + "@client.test"}}
}

// boltIntake opens a bolt file for t (closed at its end) and an intake
// over it.
func boltIntake(t *testing.T) (*bolt.Store, *intake) {
	t.Helper()
	st, err := bolt.Open(store.Config{Path: filepath.Join(t.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, newIntake(st)
}

// newIntake is an intake over st with fresh metrics and no log.
func newIntake(st store.Store) *intake {
	return &intake{st: st, m: newMetrics(), log: slog.New(slog.DiscardHandler)}
}

// TestIntakeSubmitBatch: a batch is recorded whole, each event once; an
// event already in the log and an id twice in the batch answer Duplicate,
// and the results follow the order of the events.
func TestIntakeSubmitBatch(t *testing.T) {
	st, in := boltIntake(t)
	ctx := context.Background()
	if _, err := in.Submit(ctx, batchEvent("ev-old")); err != nil {
		t.Fatal(err)
	}
	var evs []*normalize.Event
	for i := range 300 {
		evs = append(evs, batchEvent(fmt.Sprintf("ev-%03d", i)))
	}
	evs = append(evs, batchEvent("ev-old"), batchEvent("ev-007"))
	res, err := connectors.SubmitBatch(ctx, in, evs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(evs) {
		t.Fatalf("%d results for %d events", len(res), len(evs))
	}
	dups := 0
	for i, r := range res {
		if r.EventID != evs[i].ID {
			t.Fatalf("result %d is for %q, want %q", i, r.EventID, evs[i].ID)
		}
		if r.Duplicate {
			dups++
		}
	}
	if dups != 2 || !res[300].Duplicate {
		t.Fatalf("%d duplicates (ev-old: %v), want 2 (ev-old and one ev-007)", dups, res[300].Duplicate)
	}
	got := map[string]int{}
	for {
		entries, err := st.ReadLog(ctx, "test", 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			got[e.Event.ID]++
			if err := st.Ack(ctx, e, store.Outcome{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(got) != 301 {
		t.Fatalf("the log holds %d distinct events, want 301", len(got))
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("%s is %d times in the log", id, n)
		}
	}
}

// TestIntakeSubmitBatchInvalid: an invalid event fails the batch before
// anything is written.
func TestIntakeSubmitBatchInvalid(t *testing.T) {
	st, in := boltIntake(t)
	bad := batchEvent("ev-bad")
	bad.Type = "no such type"
	if _, err := in.SubmitBatch(context.Background(), []*normalize.Event{batchEvent("ev-good"), bad}); err == nil {
		t.Fatal("a batch with an invalid event was accepted")
	}
	if _, _, err := st.GetEvent(context.Background(), "ev-good"); err == nil {
		t.Fatal("the valid event of a refused batch was recorded")
	}
}

// TestIntakeSubmitWithPut: on bolt the events are recorded with the
// append and the put, and not on a lost version check (which is not an
// outage); an invalid event writes nothing; a closed store is an outage;
// a store that is not a store.EventsPutter answers errors.ErrUnsupported.
func TestIntakeSubmitWithPut(t *testing.T) {
	st, in := boltIntake(t)
	ctx := context.Background()
	app := func(id string) store.ListAppend {
		return store.ListAppend{Key: "call/1/cbs", ID: id, Value: []byte(id)}
	}
	put := func(expect int64) store.RecordPut {
		return store.RecordPut{Key: "call/1", Value: []byte("s"), Expect: expect}
	}

	res, err := in.SubmitWithPut(ctx, []*normalize.Event{batchEvent("ev-1")}, app("cb1"), put(0))
	if err != nil || res.Version != 1 || res.Seq != 1 || len(res.Events) != 1 || res.Events[0].EventID != "ev-1" || res.Events[0].Duplicate {
		t.Fatalf("first = %+v, %v", res, err)
	}
	res, err = in.SubmitWithPut(ctx, []*normalize.Event{batchEvent("ev-2")}, app("cb2"), put(0))
	if !errors.Is(err, store.ErrConflict) || errors.Is(err, connectors.ErrUnavailable) || res.Seq != 2 || len(res.Events) != 0 {
		t.Fatalf("stale version = %+v, %v; want the append, no events, ErrConflict and not an outage", res, err)
	}
	if _, err := in.SubmitWithPut(ctx, []*normalize.Event{{ID: "ev-3"}}, app("cb3"), put(1)); err == nil {
		t.Fatal("an event without a type was taken")
	}
	if elems, _ := st.ReadList(ctx, "call/1/cbs", 0, 10); len(elems) != 2 {
		t.Fatalf("%d callbacks, want 2: the invalid event's put wrote nothing", len(elems))
	}
	entries, err := st.ReadLog(ctx, "test", 10, 0)
	if err != nil || len(entries) != 1 || entries[0].Event.ID != "ev-1" {
		t.Fatalf("log = %d entries, %v; want ev-1 only", len(entries), err)
	}

	plain := newIntake(struct{ store.Store }{st})
	if _, err := plain.SubmitWithPut(ctx, []*normalize.Event{batchEvent("ev-4")}, app("cb4"), put(1)); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("store without EventsPutter: %v, want errors.ErrUnsupported", err)
	}

	st.Close()
	if _, err := in.SubmitWithPut(ctx, []*normalize.Event{batchEvent("ev-5")}, app("cb5"), put(1)); !errors.Is(err, connectors.ErrUnavailable) {
		t.Fatalf("closed store: %v, want ErrUnavailable", err)
	}
}

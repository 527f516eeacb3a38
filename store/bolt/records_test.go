package bolt

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// The sweeper deletes expired records and lists in chunks, and keeps the
// ones whose expiry was renewed or dropped.
func TestSweepRecordsAndLists(t *testing.T) {
	clk := &clock{t: t0}
	s := openTemp(t, filepath.Join(t.TempDir(), "sg.db"), Options{Now: clk.Now, SweepInterval: time.Hour})
	ctx := t.Context()
	const n = 2*sweepChunk + 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := s.PutRecord(ctx, fmt.Sprint("rec/", i), []byte("x"), 0, time.Minute)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("PutRecord: %v", err)
		}
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := s.PutRecord(ctx, "rec/persisted", nil, 0, time.Minute)
	must("PutRecord", err)
	_, err = s.PutRecord(ctx, "rec/persisted", nil, 1, 0)
	must("PutRecord without ttl", err)
	_, err = s.PutRecord(ctx, "rec/renewed", nil, 0, time.Minute)
	must("PutRecord", err)
	for _, id := range []string{"m1", "m2"} {
		_, _, err = s.AppendList(ctx, "list/short", id, nil, time.Minute)
		must("AppendList", err)
		_, _, err = s.AppendList(ctx, "list/renewed", id, nil, time.Minute)
		must("AppendList", err)
		_, _, err = s.AppendList(ctx, "list/none", id, nil, 0)
		must("AppendList", err)
	}
	clk.Add(30 * time.Second)
	_, err = s.PutRecord(ctx, "rec/renewed", nil, 1, time.Minute)
	must("PutRecord renewing", err)
	_, _, err = s.AppendList(ctx, "list/renewed", "m3", nil, time.Minute)
	must("AppendList renewing", err)
	clk.Add(31 * time.Second)

	before := s.c.commits.Load()
	swept, err := s.sweep()
	must("sweep", err)
	// Renewing moved the index entries, so n records and one list expired.
	if want := n + 1; swept != want {
		t.Errorf("sweep removed %d entries, want %d", swept, want)
	}
	if commits := s.c.commits.Load() - before; commits < 3 {
		t.Errorf("sweep used %d commits for %d entries, want chunks of %d", commits, swept, sweepChunk)
	}
	if got := count(t, s, bRecords); got != 2 {
		t.Errorf("%d records left, want rec/persisted and rec/renewed", got)
	}
	if got := count(t, s, bRecExpiry); got != 1 {
		t.Errorf("%d record expiry entries left, want the renewed one", got)
	}
	if got := count(t, s, bListExpiry); got != 1 {
		t.Errorf("%d list expiry entries left, want the renewed one", got)
	}
	for key, want := range map[string]int{"list/short": 0, "list/renewed": 3, "list/none": 2} {
		if es, err := s.ReadList(ctx, key, 0, 10); err != nil || len(es) != want {
			t.Errorf("ReadList(%s) = %d elements, %v; want %d", key, len(es), err, want)
		}
	}
	clk.Add(time.Hour)
	if _, err := s.sweep(); err != nil {
		t.Fatalf("second sweep: %v", err)
	}
	if a, b := count(t, s, bRecExpiry), count(t, s, bListExpiry); a+b != 0 {
		t.Errorf("expiry entries left after everything expired: %d, %d", a, b)
	}
	if _, err := s.GetRecord(ctx, "rec/persisted"); err != nil {
		t.Errorf("GetRecord(rec/persisted): %v", err)
	}
}

// Close closes the subscribers' channels; afterwards records, lists and
// the broadcaster fail with ErrUnavailable.
func TestRecordsAfterClose(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "sg.db"), Options{})
	ctx := t.Context()
	sub, err := s.Subscribe(ctx, "chat/1")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case _, ok := <-sub:
		if ok {
			t.Fatal("message after Close")
		}
	default:
		t.Fatal("subscriber channel still open after Close")
	}
	_, getErr := s.GetRecord(ctx, "k")
	_, putErr := s.PutRecord(ctx, "k", nil, 0, 0)
	_, _, appendErr := s.AppendList(ctx, "k", "m1", nil, 0)
	_, readErr := s.ReadList(ctx, "k", 0, 10)
	_, subErr := s.Subscribe(ctx, "chat/1")
	for name, err := range map[string]error{
		"GetRecord": getErr, "PutRecord": putErr, "DeleteRecord": s.DeleteRecord(ctx, "k", 1),
		"AppendList": appendErr, "ReadList": readErr,
		"Publish": s.Publish(ctx, "chat/1", nil), "Subscribe": subErr,
	} {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close: %v, want ErrUnavailable", name, err)
		}
	}
}

// A list's expiry moves in steps of ttl/1024 (an hour at most): appends
// within one step leave it, and its index entry, as they are; it is never
// earlier than the last append plus ttl.
func TestListExpiryStep(t *testing.T) {
	clk := &clock{t: t0.Add(17 * time.Second)} // not on a step boundary
	s := openTemp(t, filepath.Join(t.TempDir(), "sg.db"), Options{Now: clk.Now, SweepInterval: time.Hour})
	ctx := t.Context()
	const ttl = 2048 * time.Hour // step: an hour (ttl/1024 would be two)
	expiry := func() time.Time {
		t.Helper()
		var exp uint64
		if err := s.view(func(tx *bbolt.Tx) error {
			exp = listExpiry(tx.Bucket(bList), []byte("hits/m"))
			return nil
		}); err != nil {
			t.Fatalf("view: %v", err)
		}
		return keyTime(u64(exp))
	}
	appendAt := func(id string) time.Time {
		t.Helper()
		if _, _, err := s.AppendList(ctx, "hits/m", id, []byte(id), ttl); err != nil {
			t.Fatalf("AppendList(%s): %v", id, err)
		}
		got := clk.Now().Add(ttl)
		if exp := expiry(); exp.Before(got) || !exp.Before(got.Add(time.Hour)) {
			t.Fatalf("expiry after an append at %v = %v, want in [%v, +1h)", clk.Now(), exp, got)
		}
		return expiry()
	}
	first := appendAt("h1")
	clk.Add(10 * time.Minute)
	if again := appendAt("h2"); !again.Equal(first) {
		t.Errorf("expiry moved from %v to %v within one step", first, again)
	}
	if n := count(t, s, bListExpiry); n != 1 {
		t.Errorf("%d list expiry index entries, want 1", n)
	}
	clk.Add(time.Hour)
	if later := appendAt("h3"); !later.After(first) {
		t.Errorf("expiry %v after an append a step later, want after %v", later, first)
	}
	if n := count(t, s, bListExpiry); n != 1 {
		t.Errorf("%d list expiry index entries after the move, want 1", n)
	}
}

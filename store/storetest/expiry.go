package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

// shortTTL is the expiry the suite waits out (by Options.Wait).
const shortTTL = 500 * time.Millisecond

// testExpiry checks the ttls of records and lists: what expired is absent
// (and starts afresh), what got a longer or no ttl stays.
func testExpiry(t *testing.T, open Opener, opts Options) {
	if opts.NoExpiry {
		t.Skip("the driver's backend does not expire keys by itself")
	}
	s := open(t)
	ctx := t.Context()
	start := time.Now()
	put := func(k string, expect int64, ttl time.Duration) {
		t.Helper()
		if _, err := s.PutRecord(ctx, k, []byte(k), expect, ttl); err != nil {
			t.Fatalf("PutRecord(%q, expect %d, ttl %v): %v", k, expect, ttl, err)
		}
	}
	appendTTL := func(k, id string, ttl time.Duration, wantSeq int64, wantDup bool) {
		t.Helper()
		seq, dup, err := s.AppendList(ctx, k, id, []byte(id), ttl)
		if err != nil || seq != wantSeq || dup != wantDup {
			t.Fatalf("AppendList(%q, %q, ttl %v) = %d, %v, %v; want %d, %v", k, id, ttl, seq, dup, err, wantSeq, wantDup)
		}
	}
	put("rec/short", 0, shortTTL)
	put("rec/long", 0, time.Hour)
	put("rec/none", 0, 0)
	put("rec/persisted", 0, shortTTL)
	put("rec/persisted", 1, 0) // a put without ttl drops the expiry
	put("rec/shortened", 0, time.Hour)
	put("rec/shortened", 1, shortTTL) // each put sets its own expiry
	appendTTL("list/short", "m1", shortTTL, 1, false)
	appendTTL("list/short", "m2", shortTTL, 2, false)
	appendTTL("list/long", "m1", time.Hour, 1, false)
	appendTTL("list/none", "m1", 0, 1, false)
	appendTTL("list/refreshed", "m1", shortTTL, 1, false)
	appendTTL("list/refreshed", "m2", time.Hour, 2, false) // counted from the last append
	appendTTL("list/dup", "m1", shortTTL, 1, false)
	appendTTL("list/dup", "m1", time.Hour, 1, true) // a duplicate changes nothing
	appendTTL("list/kept", "m1", shortTTL, 1, false)
	appendTTL("list/kept", "m2", 0, 2, false) // no ttl: the expiry stays
	checkRecord(t, s, "rec/short", []byte("rec/short"), 1)
	checkElems(t, s, "list/short", 0, 10, 1, 2)
	if took := time.Since(start); took > shortTTL/2 {
		t.Skipf("setting up took %v, too long to check a %v ttl", took, shortTTL)
	}

	gone := map[string]bool{"rec/short": true, "rec/shortened": true, "list/short": true, "list/dup": true,
		"list/kept": true}
	opts.Wait(s, shortTTL)
	for deadline := time.Now().Add(10 * time.Second); ; opts.Wait(s, 50*time.Millisecond) {
		left := 0
		for k := range gone {
			if exists(t, s, k) {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records and lists with a %v ttl still there after 10s", left, len(gone), shortTTL)
		}
	}
	checkRecord(t, s, "rec/long", []byte("rec/long"), 1)
	checkRecord(t, s, "rec/none", []byte("rec/none"), 1)
	checkRecord(t, s, "rec/persisted", []byte("rec/persisted"), 2)
	checkElems(t, s, "list/long", 0, 10, 1)
	checkElems(t, s, "list/none", 0, 10, 1)
	checkElems(t, s, "list/refreshed", 0, 10, 1, 2)

	// Expired is absent: versions and sequence numbers start over.
	wantErr(t, "DeleteRecord of an expired record", s.DeleteRecord(ctx, "rec/short", 1), store.ErrNotFound)
	put("rec/short", 0, 0)
	checkRecord(t, s, "rec/short", []byte("rec/short"), 1)
	appendTTL("list/short", "m2", 0, 1, false)
	appendTTL("list/short", "m1", 0, 2, false)
}

// exists reports whether a record (key "rec/…") or a non-empty list
// (key "list/…") is at k.
func exists(t *testing.T, s store.Store, k string) bool {
	t.Helper()
	if k[:4] == "rec/" {
		_, err := s.GetRecord(t.Context(), k)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetRecord(%q): %v", k, err)
		}
		return err == nil
	}
	es, err := s.ReadList(t.Context(), k, 0, 10)
	if err != nil {
		t.Fatalf("ReadList(%q): %v", k, err)
	}
	return len(es) > 0
}

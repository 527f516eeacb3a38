package storetest

import (
	"bytes"
	"errors"
	"strconv"
	"testing"

	"github.com/stagegate/stagegate/store"
)

func testRecords(t *testing.T, open Opener) {
	t.Run("GetMissing", func(t *testing.T) {
		s := open(t)
		_, err := s.GetRecord(t.Context(), "tel/a/call/1")
		wantErr(t, "GetRecord of a missing key", err, store.ErrNotFound)
	})

	t.Run("CompareAndSet", func(t *testing.T) {
		s := open(t)
		ctx, k := t.Context(), "tel/a/call/1"
		v1, v2 := []byte("ringing \x00\xff"), []byte("answered")
		mustPut(t, s, k, v1, 0, 1)
		checkRecord(t, s, k, v1, 1)
		_, err := s.PutRecord(ctx, k, []byte("other"), 0, 0)
		wantErr(t, "second PutRecord with expect 0", err, store.ErrConflict)
		mustPut(t, s, k, v2, 1, 2)
		_, err = s.PutRecord(ctx, k, []byte("stale"), 1, 0)
		wantErr(t, "PutRecord with a stale version", err, store.ErrConflict)
		_, err = s.PutRecord(ctx, k, []byte("future"), 3, 0)
		wantErr(t, "PutRecord with a future version", err, store.ErrConflict)
		checkRecord(t, s, k, v2, 2)
		mustPut(t, s, k, nil, 2, 3) // an empty value is a value
		checkRecord(t, s, k, []byte{}, 3)
	})

	t.Run("ConcurrentIncrements", func(t *testing.T) {
		s := open(t)
		const n, k = 20, "counter"
		errs := make(chan error, n)
		together(n, func(int) {
			errs <- increment(t, s, k)
		})
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		checkRecord(t, s, k, []byte(strconv.Itoa(n)), n)
	})

	t.Run("Delete", func(t *testing.T) {
		s := open(t)
		ctx, k := t.Context(), "mail/box/cursor"
		mustPut(t, s, k, []byte("a"), 0, 1)
		mustPut(t, s, k, []byte("b"), 1, 2)
		wantErr(t, "DeleteRecord with a wrong version", s.DeleteRecord(ctx, k, 1), store.ErrConflict)
		checkRecord(t, s, k, []byte("b"), 2)
		if err := s.DeleteRecord(ctx, k, 2); err != nil {
			t.Fatalf("DeleteRecord with the right version: %v", err)
		}
		_, err := s.GetRecord(ctx, k)
		wantErr(t, "GetRecord after DeleteRecord", err, store.ErrNotFound)
		wantErr(t, "DeleteRecord of a missing key", s.DeleteRecord(ctx, k, 2), store.ErrNotFound)
		mustPut(t, s, k, []byte("c"), 0, 1) // absent again: versions start over
	})

	t.Run("SeparateKeys", func(t *testing.T) {
		s := open(t)
		keys := []string{"a", "a:b", "a/b", "rec:a", "list:a", "a b", "ä"}
		for i, k := range keys {
			mustPut(t, s, k, []byte(k), 0, 1)
			for range i % 3 {
				rec, err := s.GetRecord(t.Context(), k)
				if err != nil {
					t.Fatalf("GetRecord(%q): %v", k, err)
				}
				mustPut(t, s, k, []byte(k), rec.Version, rec.Version+1)
			}
		}
		if _, _, err := s.AppendList(t.Context(), "a", "e1", []byte("elem"), 0); err != nil {
			t.Fatalf("AppendList(a): %v", err)
		}
		for i, k := range keys {
			checkRecord(t, s, k, []byte(k), int64(1+i%3))
		}
	})
}

// increment adds one to the decimal counter at k, retrying on conflict.
func increment(t *testing.T, s store.Store, k string) error {
	ctx := t.Context()
	for range 1000 {
		n, version := 0, int64(0)
		rec, err := s.GetRecord(ctx, k)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			if n, err = strconv.Atoi(string(rec.Value)); err != nil {
				return err
			}
			version = rec.Version
		}
		_, err = s.PutRecord(ctx, k, []byte(strconv.Itoa(n+1)), version, 0)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return errors.New("increment: still conflicting after 1000 tries")
}

// mustPut puts value at k expecting version expect and fails unless the
// new version is want.
func mustPut(t *testing.T, s store.Store, k string, value []byte, expect, want int64) {
	t.Helper()
	got, err := s.PutRecord(t.Context(), k, value, expect, 0)
	if err != nil || got != want {
		t.Fatalf("PutRecord(%q, expect %d) = %d, %v; want version %d", k, expect, got, err, want)
	}
}

// checkRecord fails unless the record at k has value and version.
func checkRecord(t *testing.T, s store.Store, k string, value []byte, version int64) {
	t.Helper()
	rec, err := s.GetRecord(t.Context(), k)
	if err != nil {
		t.Fatalf("GetRecord(%q): %v", k, err)
	}
	if rec.Version != version || !bytes.Equal(rec.Value, value) {
		t.Fatalf("GetRecord(%q) = %q version %d, want %q version %d", k, rec.Value, rec.Version, value, version)
	}
}

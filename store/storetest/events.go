package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stagegate/stagegate/store"
)

func testEvents(t *testing.T, open Opener) {
	t.Run("GetUnknown", func(t *testing.T) {
		s := open(t)
		mustAppend(t, s, event("imap:1", 1))
		_, _, err := s.GetEvent(t.Context(), "imap:2")
		wantErr(t, "GetEvent(unknown)", err, store.ErrNotFound)
	})

	t.Run("ListUnmatched", func(t *testing.T) {
		s := open(t)
		if got, err := s.ListUnmatched(t.Context(), 10); err != nil || len(got) != 0 {
			t.Fatalf("ListUnmatched on an empty store = %d records, %v", len(got), err)
		}
		// Five events acknowledged in append order; 0, 2 and 3 are unmatched.
		unmatched := map[int]bool{0: true, 2: true, 3: true}
		for i := range 5 {
			mustAppend(t, s, event(fmt.Sprintf("call:%d", i), i))
		}
		for i, e := range readN(t, s, "c1", 5) {
			o := store.Outcome{Unmatched: unmatched[i], Note: fmt.Sprintf("note %d", i)}
			if err := s.Ack(t.Context(), e, o); err != nil {
				t.Fatalf("Ack: %v", err)
			}
		}
		// One more, read but not acknowledged: not applied, so not listed.
		mustAppend(t, s, event("call:5", 5))
		readN(t, s, "c1", 1)

		for _, tc := range []struct {
			limit int
			want  []string
		}{
			{10, []string{"call:3", "call:2", "call:0"}},
			{3, []string{"call:3", "call:2", "call:0"}},
			{2, []string{"call:3", "call:2"}},
			{1, []string{"call:3"}},
		} {
			recs, err := s.ListUnmatched(t.Context(), tc.limit)
			if err != nil {
				t.Fatalf("ListUnmatched(%d): %v", tc.limit, err)
			}
			var ids []string
			for _, r := range recs {
				ids = append(ids, r.Event.ID)
				if !r.Unmatched || !r.Applied || r.Note == "" {
					t.Errorf("ListUnmatched: %s applied %v unmatched %v note %q",
						r.Event.ID, r.Applied, r.Unmatched, r.Note)
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("ListUnmatched(%d) = %q, want %q (newest first)", tc.limit, ids, tc.want)
			}
		}
		recs, _ := s.ListUnmatched(t.Context(), 1)
		if len(recs) == 1 {
			checkEvent(t, recs[0].Event, *event("call:3", 3))
		}
	})
}

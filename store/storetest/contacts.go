package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"github.com/stagegate/stagegate/store"
)

func testContacts(t *testing.T, open Opener) {
	email := store.Identity{Kind: store.IdentityEmail, Value: "ann@example.com"}
	phone := store.Identity{Kind: store.IdentityPhone, Value: "+4930123456"}
	visitor := store.Identity{Kind: store.IdentityVisitor, Value: "v-42"}
	other := store.Identity{Kind: store.IdentityEmail, Value: "bob@example.com"}

	t.Run("CreateThenMerge", func(t *testing.T) {
		s := open(t)
		ann := store.Contact{ID: "contact-1", Name: "Ann", CreatedAt: base}
		c, created, err := s.EnsureContact(t.Context(), ann, []store.Identity{email, phone})
		if err != nil || !created {
			t.Fatalf("EnsureContact = created %v, %v; want created", created, err)
		}
		checkContact(t, c, ann, email, phone)

		// A second call sharing the phone finds contact-1 and adds the visitor id.
		c, created, err = s.EnsureContact(t.Context(),
			store.Contact{ID: "contact-2", Name: "Someone"}, []store.Identity{visitor, phone})
		if err != nil || created {
			t.Fatalf("second EnsureContact = created %v, %v; want existing", created, err)
		}
		checkContact(t, c, ann, email, phone, visitor)

		for _, id := range []store.Identity{email, phone, visitor} {
			c, err := s.FindContact(t.Context(), id)
			if err != nil {
				t.Fatalf("FindContact(%v): %v", id, err)
			}
			checkContact(t, c, ann, email, phone, visitor)
		}
		c, err = s.GetContact(t.Context(), "contact-1")
		if err != nil {
			t.Fatalf("GetContact: %v", err)
		}
		checkContact(t, c, ann, email, phone, visitor)
		_, err = s.GetContact(t.Context(), "contact-2")
		wantErr(t, "GetContact(never created)", err, store.ErrNotFound)
		_, err = s.FindContact(t.Context(), other)
		wantErr(t, "FindContact(unknown)", err, store.ErrNotFound)
		// Same value, other kind: a different identity.
		_, err = s.FindContact(t.Context(), store.Identity{Kind: store.IdentityVisitor, Value: email.Value})
		wantErr(t, "FindContact(other kind)", err, store.ErrNotFound)
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := open(t)
		const n = 20
		ids := make([]string, n)
		created := make([]bool, n)
		together(n, func(i int) {
			c, ok, err := s.EnsureContact(t.Context(),
				store.Contact{ID: fmt.Sprintf("cand-%d", i), CreatedAt: base},
				[]store.Identity{phone, {Kind: store.IdentityVisitor, Value: fmt.Sprintf("v-%d", i)}})
			if err != nil {
				t.Errorf("EnsureContact: %v", err)
			}
			ids[i], created[i] = c.ID, ok
		})
		winner := ids[0]
		nCreated := 0
		for i := range n {
			if ids[i] != winner {
				t.Fatalf("EnsureContact gave %q and %q for one identity", winner, ids[i])
			}
			if created[i] {
				nCreated++
			}
		}
		if nCreated != 1 {
			t.Fatalf("%d calls created a contact, want 1", nCreated)
		}
		for i := range n {
			c, err := s.FindContact(t.Context(), store.Identity{Kind: store.IdentityVisitor, Value: fmt.Sprintf("v-%d", i)})
			if err != nil || c.ID != winner {
				t.Fatalf("FindContact(v-%d) = %q, %v; want %q", i, c.ID, err, winner)
			}
		}
	})
}

// checkContact fails unless c is want with exactly the identities ids.
func checkContact(t *testing.T, c, want store.Contact, ids ...store.Identity) {
	t.Helper()
	if c.ID != want.ID || c.Name != want.Name || !c.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("contact = %q %q %v, want %q %q %v", c.ID, c.Name, c.CreatedAt, want.ID, want.Name, want.CreatedAt)
	}
	less := func(a, b store.Identity) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Value, b.Value))
	}
	got := slices.SortedFunc(slices.Values(c.Identities), less)
	exp := slices.SortedFunc(slices.Values(ids), less)
	if !slices.Equal(got, exp) {
		t.Fatalf("contact %s identities = %v, want %v", c.ID, got, exp)
	}
}

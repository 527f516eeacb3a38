package bolt

import (
	"context"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// EnsureContact returns the contact owning any of ids (the first owned id
// decides) and gives it those of ids that nobody owns yet. When none is
// owned, it creates c owning all of them; created is then true. Writes go
// through the single committer, so concurrent calls see each other.
func (s *Store) EnsureContact(ctx context.Context, c store.Contact, ids []store.Identity) (store.Contact, bool, error) {
	if c.ID == "" {
		return store.Contact{}, false, errors.New("bolt: ensure contact: contact id is required")
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	var out store.Contact
	var created bool
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		out, created = store.Contact{}, false
		idents, contacts := tx.Bucket(bIdentities), tx.Bucket(bContacts)
		owner := ""
		for _, id := range ids {
			if v := idents.Get(identityKey(id)); v != nil {
				owner = string(v)
				break
			}
		}
		if owner == "" && contacts.Get([]byte(c.ID)) != nil {
			owner = c.ID // the candidate id is taken: join that contact
		}
		if owner == "" {
			out, created = c, true
			out.Identities = nil
		} else if err := getJSON(contacts, []byte(owner), &out); err != nil {
			return fmt.Errorf("owner %s: %w", owner, err)
		}
		added := false
		for _, id := range ids {
			k := identityKey(id)
			if idents.Get(k) != nil {
				continue // owned already, by out or by another contact
			}
			if err := idents.Put(k, []byte(out.ID)); err != nil {
				return err
			}
			out.Identities = append(out.Identities, id)
			added = true
		}
		if !created && !added {
			return nil
		}
		return putJSON(contacts, []byte(out.ID), out)
	})
	if err != nil {
		return store.Contact{}, false, fmt.Errorf("bolt: ensure contact %s: %w", c.ID, err)
	}
	return out, created, nil
}

// FindContact returns the contact owning id.
func (s *Store) FindContact(ctx context.Context, id store.Identity) (store.Contact, error) {
	var out store.Contact
	err := s.view(func(tx *bbolt.Tx) error {
		owner := tx.Bucket(bIdentities).Get(identityKey(id))
		if owner == nil {
			return store.ErrNotFound
		}
		return getJSON(tx.Bucket(bContacts), owner, &out)
	})
	if err != nil {
		return store.Contact{}, fmt.Errorf("bolt: find contact %s %s: %w", id.Kind, id.Value, err)
	}
	return out, nil
}

// GetContact returns the contact with the given id.
func (s *Store) GetContact(ctx context.Context, id string) (store.Contact, error) {
	var out store.Contact
	err := s.view(func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bContacts), []byte(id), &out)
	})
	if err != nil {
		return store.Contact{}, fmt.Errorf("bolt: get contact %s: %w", id, err)
	}
	return out, nil
}

package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/store"
)

// identityMember is how an identity is listed under its contact.
func identityMember(id store.Identity) string { return id.Kind + ":" + id.Value }

func parseIdentity(m string) store.Identity {
	kind, value, _ := strings.Cut(m, ":")
	return store.Identity{Kind: kind, Value: value}
}

// identityKey is the key owning one identity.
func (s *Store) identityKey(id store.Identity) string {
	return s.key("identity", id.Kind, id.Value)
}

// decodeContact builds a contact from its record and identity list.
func decodeContact(data string, ids []string) (store.Contact, error) {
	var c store.Contact
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		return c, err
	}
	c.Identities = make([]store.Identity, 0, len(ids))
	for _, m := range ids {
		c.Identities = append(c.Identities, parseIdentity(m))
	}
	return c, nil
}

// EnsureContact returns the contact owning the first of ids that has an
// owner, giving it the unowned ones, or creates c owning all of them; the
// bool reports whether c was created. One script does it all, so
// concurrent calls for one identity yield one contact.
func (s *Store) EnsureContact(ctx context.Context, c store.Contact, ids []store.Identity) (store.Contact, bool, error) {
	defer s.hold()()
	if c.ID == "" {
		return store.Contact{}, false, errors.New("redis: ensure contact: contact has no id")
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	rec := c
	rec.Identities = nil // kept in the contact-ids list
	data, err := json.Marshal(rec)
	if err != nil {
		return store.Contact{}, false, fmt.Errorf("redis: ensure contact %s: %w", c.ID, err)
	}
	keys := make([]string, 0, 1+len(ids))
	args := make([]any, 0, 3+len(ids))
	keys = append(keys, s.key("contact", c.ID))
	args = append(args, s.prefix, c.ID, data)
	for _, id := range ids {
		if id.Kind == "" || id.Value == "" {
			return store.Contact{}, false, fmt.Errorf("redis: ensure contact %s: empty identity %+v", c.ID, id)
		}
		keys = append(keys, s.identityKey(id))
		args = append(args, identityMember(id))
	}
	res, err := ensureContactScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return store.Contact{}, false, wrap("ensure contact", c.ID, err)
	}
	if len(res) != 3 {
		return store.Contact{}, false, fmt.Errorf("redis: ensure contact %s: unexpected reply %v", c.ID, res)
	}
	created, _ := res[0].(int64)
	recData, ok := res[1].(string)
	if !ok {
		return store.Contact{}, false, fmt.Errorf("redis: ensure contact %s: owner record missing: %w", c.ID, store.ErrNotFound)
	}
	list, _ := res[2].([]any)
	members := make([]string, 0, len(list))
	for _, m := range list {
		if str, ok := m.(string); ok {
			members = append(members, str)
		}
	}
	got, err := decodeContact(recData, members)
	if err != nil {
		return store.Contact{}, false, fmt.Errorf("redis: ensure contact %s: %w", c.ID, err)
	}
	return got, created == 1, nil
}

// FindContact returns the contact owning id.
func (s *Store) FindContact(ctx context.Context, id store.Identity) (store.Contact, error) {
	owner, err := s.rdb.Get(ctx, s.identityKey(id)).Result()
	if err != nil {
		return store.Contact{}, wrap("find contact", identityMember(id), err)
	}
	return s.GetContact(ctx, owner)
}

// GetContact returns a contact by id, with its identities in the order they
// were added.
func (s *Store) GetContact(ctx context.Context, id string) (store.Contact, error) {
	var rec *redis.StringCmd
	var ids *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		rec = p.Get(ctx, s.key("contact", id))
		ids = p.LRange(ctx, s.key("contact-ids", id), 0, -1)
		return nil
	})
	if err != nil {
		return store.Contact{}, wrap("get contact", id, err)
	}
	c, err := decodeContact(rec.Val(), ids.Val())
	if err != nil {
		return store.Contact{}, fmt.Errorf("redis: get contact %s: %w", id, err)
	}
	return c, nil
}

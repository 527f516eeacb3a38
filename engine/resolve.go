package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// identities lists the subject's identities in lookup order.
func identities(s normalize.Subject) []store.Identity {
	var ids []store.Identity
	if em := normalize.NormalizeEmail(s.Email); em != "" {
		ids = append(ids, store.Identity{Kind: store.IdentityEmail, Value: em})
	}
	if s.Phone != "" {
		ids = append(ids, store.Identity{Kind: store.IdentityPhone, Value: s.Phone})
	}
	if s.VisitorID != "" {
		ids = append(ids, store.Identity{Kind: store.IdentityVisitor, Value: s.VisitorID})
	}
	return ids
}

// resolveIn finds the items an event concerns (architecture §4), from what the
// batch looked up: the item named by the subject; else the item a reply
// belongs to; else the items of the contact owning one of the subject's
// identities, in pipelines that have a trigger for the event's type; else a
// new contact and item when the connector is configured to create them
// (added to bs, so the next event of that customer in the batch finds
// them). The note explains an empty answer.
func (e *Engine) resolveIn(ctx context.Context, bs *batchState, ev *normalize.Event) ([]string, string, error) {
	if id := ev.Subject.ItemID; id != "" {
		if _, ok := bs.items[id]; !ok {
			return nil, fmt.Sprintf("item %q does not exist", id), nil
		}
		return []string{id}, "", nil
	}
	if it, ok, err := e.replyTarget(ctx, ev); err != nil || ok {
		if err != nil {
			return nil, "", err
		}
		if _, known := bs.items[it.ID]; !known {
			bs.items[it.ID] = it
		}
		return []string{it.ID}, "", nil
	}
	ids := identities(ev.Subject)
	if len(ids) == 0 {
		return nil, "event has no subject identity", nil
	}
	contactID := ""
	for _, id := range ids {
		if c, ok := bs.contacts[id]; ok {
			contactID = c
			break
		}
	}
	if contactID != "" {
		var items []string
		for _, id := range bs.contactItems[contactID] {
			it := bs.items[id]
			if p, ok := e.pipelines[it.Pipeline]; ok && p.listens[ev.Type] {
				items = append(items, id)
			}
		}
		if len(items) > 0 {
			return items, "", nil
		}
	}
	spec, ok := e.create[ev.Connector]
	if why := ev.Attrs[AttrNotCustomerMail]; ok && why != "" {
		return nil, "not customer mail (" + why + "): no contact or item is created for it", nil
	}
	if !ok {
		if contactID != "" {
			return nil, fmt.Sprintf("contact %s has no item in a pipeline with %s triggers", contactID, ev.Type), nil
		}
		return nil, "no contact has this subject's identities", nil
	}
	it, err := e.createFor(ctx, ev, ids, store.Contact{ID: contactID}, spec, bs.dry)
	if err != nil || it.ID == "" {
		return nil, "contact already has an open item in the create pipeline", err
	}
	note := ""
	if bs.dry {
		note = fmt.Sprintf("nothing matched: connector %s would create a contact and item %s at %s/%s", ev.Connector, it.ID, spec.Pipeline, spec.Stage)
	}
	for _, id := range ids {
		if _, ok := bs.contacts[id]; !ok {
			bs.contacts[id] = it.ContactID
		}
	}
	if _, known := bs.items[it.ID]; !known {
		bs.items[it.ID] = it
		bs.contactItems[it.ContactID] = append(bs.contactItems[it.ContactID], it.ID)
	}
	return []string{it.ID}, note, nil
}

// createFor creates (idempotently) a contact and an item for an event that
// matched nothing. The ids are derived from the identity and the number of
// items the contact already has in the pipeline, so concurrent first events
// of one new customer converge on one contact and one item. It returns a
// zero item when the contact already has an open item in the pipeline. A
// dry run only builds the item it would create (version 1), writing
// nothing.
func (e *Engine) createFor(ctx context.Context, ev *normalize.Event, ids []store.Identity, c store.Contact, spec CreateSpec, dry bool) (store.Item, error) {
	now := e.now()
	if c.ID == "" && dry {
		c.ID = "c_" + normalize.Hash(ids[0].Kind, ids[0].Value) // no identity has an owner: this one would be created
	} else if c.ID == "" {
		cand := store.Contact{ID: "c_" + normalize.Hash(ids[0].Kind, ids[0].Value), Name: ev.Subject.Name, CreatedAt: now}
		var err error
		if c, _, err = e.st.EnsureContact(ctx, cand, ids); err != nil {
			return store.Item{}, fmt.Errorf("engine: create contact: %w", err)
		}
	}
	existing, err := e.st.ListItems(ctx, store.ItemFilter{ContactID: c.ID, Pipeline: spec.Pipeline, Limit: 1000})
	if err != nil {
		return store.Item{}, fmt.Errorf("engine: items of contact %s: %w", c.ID, err)
	}
	for _, it := range existing {
		if !it.Closed {
			return store.Item{}, nil
		}
	}
	it := store.Item{
		ID:       "i_" + normalize.Hash(c.ID, spec.Pipeline, strconv.Itoa(len(existing))),
		Pipeline: spec.Pipeline, Stage: spec.Stage, ContactID: c.ID, Responsible: spec.Responsible,
		CreatedAt: now, UpdatedAt: now,
	}
	if dry {
		it.Version = 1
		return it, nil
	}
	entry := store.TimelineEntry{ID: "created", ItemID: it.ID, Kind: store.EntryCreated, To: spec.Stage,
		EventID: ev.ID, Actor: spec.Responsible, Message: "created from event " + ev.ID, At: now}
	it, _, err = e.st.CreateItem(ctx, it, entry)
	if err != nil {
		return store.Item{}, fmt.Errorf("engine: create item: %w", err)
	}
	return it, nil
}

// replyTarget finds the item a reply belongs to: the first Message-ID in
// In-Reply-To, then References (newest first), that we recorded as sent for
// an item that still exists (architecture §4: before any address lookup).
func (e *Engine) replyTarget(ctx context.Context, ev *normalize.Event) (store.Item, bool, error) {
	ids := strings.Fields(ev.Attrs["in_reply_to"])
	refs := strings.Fields(ev.Attrs["references"])
	for i := len(refs) - 1; i >= 0; i-- {
		ids = append(ids, refs[i])
	}
	for _, id := range ids {
		ref, err := store.GetMessageRef(ctx, e.st, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return store.Item{}, false, fmt.Errorf("engine: reply lookup %s: %w", id, err)
		}
		it, err := e.st.GetItem(ctx, ref.ItemID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return store.Item{}, false, fmt.Errorf("engine: get item %s: %w", ref.ItemID, err)
		}
		return it, true, nil
	}
	return store.Item{}, false, nil
}

// ItemsFor returns the items of the contacts that the subject's identities
// (email, phone, visitor id, in that order) belong to, each once, in the
// order the store lists them; it writes nothing. The live chat console
// shows them beside a conversation.
func (e *Engine) ItemsFor(ctx context.Context, s normalize.Subject) ([]store.Item, error) {
	ids := identities(s)
	if len(ids) == 0 {
		return nil, nil
	}
	res, err := e.st.Lookup(ctx, store.LookupRequest{Identities: ids})
	if err != nil {
		return nil, fmt.Errorf("engine: items for subject: %w", err)
	}
	var out []store.Item
	seen := map[string]bool{}
	for _, id := range ids {
		c, ok := res.Contacts[id]
		if !ok || seen[c] {
			continue
		}
		seen[c] = true
		for _, itemID := range res.ContactItems[c] {
			if it, ok := res.Items[itemID]; ok {
				out = append(out, it)
			}
		}
	}
	return out, nil
}

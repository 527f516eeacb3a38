package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// Attributes of item change events (item.field_changed,
// item.responsible_changed).
const (
	AttrField   = "field"   // the field that changed
	AttrFrom    = "from"    // its value before ("" when it was not set)
	AttrTo      = "to"      // its value now ("" when it was removed)
	AttrRemoved = "removed" // "true" when the field was removed
	AttrActor   = "actor"   // who changed it
	AttrVersion = "version" // the item's version after the change
)

// ItemChanger is what ChangeItem needs of the store.
type ItemChanger interface {
	GetItem(ctx context.Context, id string) (store.Item, error)
	UpdateItem(ctx context.Context, u store.ItemUpdate) (store.Item, bool, error)
}

// ItemChange changes an item's fields and responsible user: the API's
// PATCH, or a set_field or set_responsible action.
type ItemChange struct {
	ItemID string
	// Set are the fields to set, Remove the fields to delete.
	Set    map[string]string
	Remove []string
	// Responsible, when not empty, becomes the item's responsible user.
	Responsible string
	// ExpectVersion, when not 0, makes the change hold only at that version
	// of the item (the API's If-Match); else it is store.ErrConflict.
	// Without it a change that lost a race is computed again on a fresh
	// read.
	ExpectVersion int64
	// Actor is who makes the change (timeline and events); default the
	// item's responsible user before the change, as for a manual move.
	Actor string
	// Cause is the action run (outbox entry id) making the change; its
	// events carry it as CauseAttr, so that a move they cause counts as
	// one more link of that action chain (see Engine.stop).
	Cause string
	// Entry, when set, is the timeline entry of the action making the
	// change: it is written even when nothing changes, its id makes a
	// repeated attempt a no-op, and the change entries' ids derive from it.
	Entry *store.TimelineEntry
}

// ItemChangeResult is what ChangeItem did.
type ItemChangeResult struct {
	Item store.Item
	// Events are the events of the changes, appended to the log with the
	// change: one item.field_changed per field that changed, one
	// item.responsible_changed. Empty when nothing changed.
	Events []normalize.Event
	// Applied is false when nothing was written: nothing changed, or the
	// change's Entry was written before.
	Applied bool
}

// ChangeItem applies c in one atomic store step: the item's fields and
// responsible user, one timeline entry per change (from, to, actor) and one
// event per change in the log. A value equal to the current one is no
// change, and a change that changes nothing writes nothing (but an action's
// Entry). Event ids are derived from the item and its new version, so a
// change is emitted once.
func ChangeItem(ctx context.Context, st ItemChanger, c ItemChange, now time.Time) (ItemChangeResult, error) {
	for attempt := 1; ; attempt++ {
		it, err := st.GetItem(ctx, c.ItemID)
		if err != nil {
			return ItemChangeResult{}, fmt.Errorf("engine: change item %s: %w", c.ItemID, err)
		}
		if c.ExpectVersion != 0 && it.Version != c.ExpectVersion {
			return ItemChangeResult{Item: it}, fmt.Errorf("engine: change item %s: at version %d, not %d: %w", c.ItemID, it.Version, c.ExpectVersion, store.ErrConflict)
		}
		u, events := planChange(it, c, now)
		if u.Entry.ID == "" {
			return ItemChangeResult{Item: it}, nil // nothing to write
		}
		got, applied, err := st.UpdateItem(ctx, u)
		if errors.Is(err, store.ErrConflict) && c.ExpectVersion == 0 && attempt < maxMoveAttempts {
			continue
		}
		if err != nil {
			return ItemChangeResult{}, fmt.Errorf("engine: change item %s: %w", c.ItemID, err)
		}
		if !applied {
			events = nil
		}
		return ItemChangeResult{Item: got, Events: events, Applied: applied}, nil
	}
}

// planChange builds the store update of c on it and the events it emits.
// The update has no Entry when there is nothing to write.
func planChange(it store.Item, c ItemChange, now time.Time) (store.ItemUpdate, []normalize.Event) {
	ver := it.Version + 1
	if c.Actor == "" {
		c.Actor = it.Responsible
	}
	u := store.ItemUpdate{ItemID: it.ID, ExpectVersion: it.Version, At: now}
	base := "u:" + strconv.FormatInt(ver, 10)
	if c.Entry != nil {
		base = c.Entry.ID
	}
	var entries []store.TimelineEntry
	var events []normalize.Event
	add := func(typ normalize.Type, kind, field, from, to string, removed bool) {
		name := "responsible"
		if kind == store.EntryFieldChanged {
			name = "f:" + field
		}
		ev := normalize.Event{
			ID: normalize.MakeID(normalize.ItemConnector, it.ID, "v"+strconv.FormatInt(ver, 10), name), Type: typ,
			Connector: normalize.ItemConnector, OccurredAt: now, ReceivedAt: now, Subject: normalize.Subject{ItemID: it.ID},
			Attrs: map[string]string{AttrFrom: from, AttrTo: to, AttrVersion: strconv.FormatInt(ver, 10)},
		}
		if field != "" {
			ev.Attrs[AttrField] = field
		}
		if removed {
			ev.Attrs[AttrRemoved] = "true"
		}
		if c.Actor != "" {
			ev.Attrs[AttrActor] = c.Actor
		}
		if c.Cause != "" {
			ev.Attrs[CauseAttr] = c.Cause
		}
		events = append(events, ev)
		entries = append(entries, store.TimelineEntry{
			ID: base + "/" + name, ItemID: it.ID, Kind: kind, Field: field, From: from, To: to,
			EventID: ev.ID, Actor: c.Actor, At: now,
		})
	}
	for _, k := range slices.Sorted(maps.Keys(c.Set)) {
		v := c.Set[k]
		if old, had := it.Fields[k]; !had || old != v {
			if u.Fields == nil {
				u.Fields = map[string]string{}
			}
			u.Fields[k] = v
			add(normalize.ItemFieldChanged, store.EntryFieldChanged, k, old, v, false)
		}
	}
	for _, k := range slices.Sorted(slices.Values(c.Remove)) {
		if old, had := it.Fields[k]; had && !slices.Contains(u.Remove, k) {
			u.Remove = append(u.Remove, k)
			add(normalize.ItemFieldChanged, store.EntryFieldChanged, k, old, "", true)
		}
	}
	if c.Responsible != "" && c.Responsible != it.Responsible {
		u.Responsible = c.Responsible
		add(normalize.ItemResponsibleChanged, store.EntryResponsibleChanged, "", it.Responsible, c.Responsible, false)
	}
	switch {
	case c.Entry != nil:
		u.Entry, u.More = *c.Entry, entries
	case len(entries) > 0:
		u.Entry, u.More = entries[0], entries[1:]
	}
	u.Events = events
	return u, events
}

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// EventAction is an action of an event itself, not of a stage entry: a
// forms connector's autoreply. When the engine applies an event of
// Connector with this Type and Channel, it queues the action in the
// outbox in the same store step that acknowledges the event
// (store.BatchEntry.Outbox), whether or not the event reached an item, so
// a crash after the submission was accepted still runs it, and applying
// the event again queues nothing twice. It runs like a stage action (same
// runner, retries, backoff and failures); its idempotency key is
// "ev:<event id>/<Name>".
type EventAction struct {
	Connector string
	Type      normalize.Type // event type, e.g. form.submitted
	Channel   string         // the event's channel: the form id
	// Name names the action in its key and in the log, e.g. "autoreply".
	Name string
	// NeedsEmail queues the action only for an event whose subject has an
	// email address; without one the event's note says why it was not.
	NeedsEmail bool
	Action     ActionSpec
}

// hook names ea in an outbox entry's payload.
func (ea *EventAction) hook() string { return ea.Connector + "/" + ea.Channel + "/" + ea.Name }

// EventActionKey is the idempotency key of the event action name of the
// event eventID.
func EventActionKey(eventID, name string) string { return "ev:" + eventID + "/" + name }

// addEventActions checks the event actions and indexes them.
func (e *Engine) addEventActions(list []EventAction) error {
	e.eventActions = map[string]*EventAction{}
	for i := range list {
		ea := list[i]
		if ea.Name == "" || strings.Contains(ea.Name, "/") {
			return fmt.Errorf("engine: event action %d of %s: a name without / is required", i, ea.Connector)
		}
		if errs := ea.Action.validate("", e.actions.Kinds()); len(errs) > 0 {
			return fmt.Errorf("engine: %s: %w", ea.hook(), errs.Err())
		}
		if _, dup := e.eventActions[ea.hook()]; dup {
			return fmt.Errorf("engine: %s: configured twice", ea.hook())
		}
		e.eventActions[ea.hook()] = &ea
		e.aopts.Lease = max(e.aopts.Lease, ea.Action.Timeout*10/9+time.Second)
	}
	return nil
}

// eventOutbox builds the outbox entries of the event actions that answer
// ev (itemID is the first item it reached, "" for none) and the notes of
// those it does not queue.
func (e *Engine) eventOutbox(ev *normalize.Event, itemID string, c cause) ([]store.OutboxEntry, []string) {
	var out []store.OutboxEntry
	var notes []string
	for _, ea := range e.eventActions {
		if ea.Connector != ev.Connector || ea.Type != ev.Type || ea.Channel != ev.Channel {
			continue
		}
		if ea.NeedsEmail && ev.Subject.Email == "" {
			notes = append(notes, fmt.Sprintf("%s not sent: the submission has no email address", ea.Name))
			continue
		}
		now := e.now()
		key := EventActionKey(ev.ID, ea.Name)
		stripped := *ev
		stripped.Raw = nil
		run := actionRun{Hook: ea.hook(), Event: &stripped, Depth: c.depth, Chain: c.chain,
			Entry: store.TimelineEntry{ID: key, ItemID: itemID, Kind: store.EntryAction, EventID: ev.ID, At: now}}
		payload, err := json.Marshal(run)
		if err != nil {
			e.log.Error("event action not queued", "event_id", ev.ID, "action", ea.Name, "err", err)
			continue
		}
		out = append(out, store.OutboxEntry{
			ID: ActionID(key), Key: key, ItemID: itemID, Type: ea.Action.Type, Name: ea.Name,
			Payload: payload, Due: now.Add(ea.Action.After), CreatedAt: now,
		})
	}
	return out, notes
}

// prepareEvent builds the input of a claimed event action: the event, and
// the item (with its contact) the event reached, if it still exists. The
// default recipient is the email the event's subject has.
func (e *Engine) prepareEvent(ctx context.Context, en store.OutboxEntry, run actionRun) (ActionInput, error) {
	ea, ok := e.eventActions[run.Hook]
	if !ok || ea.Action.Type != en.Type || run.Event == nil {
		return ActionInput{}, Permanent(fmt.Errorf("event action %s (%s) is no longer configured", run.Hook, en.Type))
	}
	in := ActionInput{
		Action: ea.Action, Entry: run.Entry, Event: run.Event, ID: en.ID, Attempt: en.Attempts,
		EventKey: en.Key, DefaultTo: run.Event.Subject.Email,
	}
	if en.ItemID != "" {
		it, err := e.st.GetItem(ctx, en.ItemID)
		switch {
		case err == nil:
			in.Item = it
		case !errors.Is(err, store.ErrNotFound):
			return ActionInput{}, fmt.Errorf("load item %s: %w", en.ItemID, err)
		}
	}
	in.Data = ActionData{
		ID: en.ID, IdempotencyKey: en.Key, Type: string(run.Event.Type),
		Action: ActionRef{Type: ea.Action.Type, Name: ea.Name}, Pipeline: in.Item.Pipeline,
		Stage: StageRef{ID: in.Item.Stage}, EnteredAt: run.Entry.At, Item: in.Item, Event: *run.Event,
		ChainDepth: run.Depth,
	}
	if in.Item.ContactID != "" {
		c, err := e.st.GetContact(ctx, in.Item.ContactID)
		switch {
		case err == nil:
			in.Data.Contact = c
		case !errors.Is(err, store.ErrNotFound):
			return ActionInput{}, fmt.Errorf("load contact %s: %w", in.Item.ContactID, err)
		}
	}
	if in.Data.Contact.ID == "" {
		// No item (or no contact): the contact as the event names it.
		s := run.Event.Subject
		in.Data.Contact = store.Contact{Name: s.Name}
		if s.Email != "" {
			in.Data.Contact.Identities = append(in.Data.Contact.Identities, store.Identity{Kind: store.IdentityEmail, Value: s.Email})
		}
		if s.Phone != "" {
			in.Data.Contact.Identities = append(in.Data.Contact.Identities, store.Identity{Kind: store.IdentityPhone, Value: s.Phone})
		}
	}
	return in, nil
}

// queueEventActions puts the event actions that answer the event of p in
// p.outbox (ids are the items it reached) and notes those it does not
// queue on the event's outcome and in the log.
func (e *Engine) queueEventActions(bs *batchState, p *plan, ids []string) {
	itemID := ""
	if len(ids) > 0 {
		itemID = ids[0]
	}
	var notes []string
	p.outbox, notes = e.eventOutbox(p.ev, itemID, p.c)
	for _, n := range notes {
		if !bs.dry {
			e.log.Info("event action not queued", "event_id", p.ev.ID, "connector", p.ev.Connector, "reason", n)
		}
		p.res.Note = strings.TrimPrefix(p.res.Note+"; "+n, "; ")
	}
}

package actions

import (
	"context"
	"errors"
	"fmt"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/store"
)

// runSetField sets an item field to the action's value (a template over
// the action's data) and records it in the timeline, once per stage entry.
func (r *Runner) runSetField(ctx context.Context, in engine.ActionInput) error {
	v, err := r.render("value", in.Action.Value, in.Data)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("set field %s to %q", in.Action.Field, v)
	return r.update(ctx, in, store.ItemUpdate{Fields: map[string]string{in.Action.Field: v}}, msg)
}

// runSetResponsible makes the action's user (a template) responsible for
// the item and records it in the timeline, once per stage entry.
func (r *Runner) runSetResponsible(ctx context.Context, in engine.ActionInput) error {
	user, err := r.render("user", in.Action.User, in.Data)
	if err != nil {
		return err
	}
	if user == "" {
		return engine.Permanent(errors.New("set_responsible: the user template gave an empty name"))
	}
	return r.update(ctx, in, store.ItemUpdate{Responsible: user}, "responsible set to "+user)
}

// update applies u with the action's timeline entry, whose id makes a
// repeated attempt a no-op.
func (r *Runner) update(ctx context.Context, in engine.ActionInput, u store.ItemUpdate, msg string) error {
	if r.st == nil {
		return engine.Permanent(errors.New("no store to update items in"))
	}
	u.ItemID, u.Entry, u.At = in.Item.ID, engine.ActionEntry(in, msg), r.now()
	u.Entry.At = u.At
	if _, _, err := r.st.UpdateItem(ctx, u); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return engine.Permanent(err)
		}
		return err
	}
	return nil
}

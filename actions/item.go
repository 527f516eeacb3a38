package actions

import (
	"context"
	"errors"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/store"
)

// change applies c with the action's timeline entry, whose id makes a
// repeated attempt a no-op. The changes emit item.field_changed and
// item.responsible_changed events like the API's PATCH; they name this
// action run as their cause, so the moves they cause are links of the
// action chain that the engine bounds (max_chain_depth, loops).
func (r *Runner) change(ctx context.Context, in engine.ActionInput, c engine.ItemChange, msg string) error {
	if r.st == nil {
		return engine.Permanent(errors.New("no store to update items in"))
	}
	now := r.now()
	entry := engine.ActionEntry(in, msg)
	entry.At = now
	c.ItemID, c.Entry, c.Cause, c.Actor = in.Item.ID, &entry, in.ID, in.Entry.Actor
	if _, err := engine.ChangeItem(ctx, r.st, c, now); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return engine.Permanent(err)
		}
		return err
	}
	return nil
}

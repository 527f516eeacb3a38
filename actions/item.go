package actions

import (
	"context"
	"errors"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/store"
)

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

package telephony

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// errBusy: the call's record kept changing under us (many callbacks of one
// call at once, beyond store.UpdateAttempts); the provider is asked to retry.
var errBusy = errors.New("call state changed concurrently too often")

// Keys under a connector's namespace "telephony/<name>/": a call's state
// and its callback list.
func callKey(connector, id string) string { return "telephony/" + connector + "/call/" + id }
func callbacksKey(connector, id string) string {
	return "telephony/" + connector + "/call/" + id + "/callbacks"
}

// storedCallback is a callback as kept in the call's callback list: the
// parsed fields and the body as received.
type storedCallback struct {
	Callback
	Raw string `json:"raw,omitempty"`
}

// Answer is the body of a generic provider's 200 answer.
type Answer struct {
	CallID     string `json:"call_id"`
	CallbackID string `json:"callback_id"`
	// Duplicate: this callback had been received before (a retry).
	Duplicate bool   `json:"duplicate"`
	Outcome   string `json:"outcome"`
	// Events lists the events this callback produced (none for most).
	Events []AcceptedEvent `json:"events"`
}

// AcceptedEvent is one event a callback produced.
type AcceptedEvent struct {
	EventID   string         `json:"event_id"`
	Type      normalize.Type `json:"type"`
	Duplicate bool           `json:"duplicate"`
}

// record makes one valid callback durable: appended to its call's
// callback list, folded into the call, the events submitted, the call
// written back. A nil error means all of that is durable.
//
// A callback takes its call's turn (see turns), then folds into the state
// this process cached (see callCache). If that changes the call, the call
// is scheduled for its settle time when that is new (see schedule), then
// the append, the call's write expecting the cached version and the events
// the fold emits go to the store as one step: store.AppendAndPut when
// there is no event (one commit, one round trip), the intake's
// SubmitWithPut when there is (one commit on bolt; the events are recorded
// only if the version check proves the cached state current). Anything
// else — nothing to change, a lost version check, an intake that cannot
// put (Redis) — goes the safe way, apply, which reads the call and makes
// the append (if not done yet) in the same store step as the call's write.
func (c *Connector) record(ctx context.Context, cb *Callback) (Answer, error) {
	root := cb.RootID()
	val, err := json.Marshal(storedCallback{Callback: *cb, Raw: string(cb.Raw)})
	if err != nil {
		return Answer{}, fmt.Errorf("telephony %s: encode callback: %w", c.Name(), err)
	}
	app := store.ListAppend{Key: callbacksKey(c.Name(), root), ID: cb.ID, Value: val, TTL: c.retention}
	pending, dup := &app, false // pending: the append is still to be made
	done, err := c.takeTurn(ctx, root)
	if err != nil {
		return Answer{}, err
	}
	defer done()
	cur, version, known := c.calls.get(root, c.Now())
	canPut := connectors.CanPut(c.Intake())
	if !known && canPut {
		// Not cached: read it here (cheap on the stores that can put), so
		// that the write expects the stored version.
		cur = Call{ID: root}
		if version, err = store.GetJSON(ctx, c.records, callKey(c.Name(), root), &cur); err != nil {
			return Answer{}, fmt.Errorf("telephony %s: call %s: %w", c.Name(), root, err)
		}
		known = version == 0 || cur.ID == root // else apply says what is stored there
	}
	if known {
		ans, outcome, err := c.fromState(ctx, cb, app, cur, version, canPut)
		switch {
		case err != nil:
			return Answer{}, err
		case outcome == wrote:
			return ans, nil
		case outcome == appended:
			pending, dup = nil, ans.Duplicate
		}
	}
	call, accepted, adup, err := c.apply(ctx, root, cb, cb.ReceivedAt, pending)
	if err != nil {
		return Answer{}, err
	}
	return Answer{CallID: root, CallbackID: cb.ID, Duplicate: dup || adup, Outcome: call.Outcome, Events: accepted}, nil
}

// takeTurn waits for call root's turn in this process (see turns) and
// returns the function that ends it.
func (c *Connector) takeTurn(ctx context.Context, root string) (func(), error) {
	done, err := c.turns.take(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("telephony %s: call %s: wait for its other callbacks: %w", c.Name(), root, err)
	}
	return done, nil
}

// What fromState did.
type stateOutcome int

const (
	untouched stateOutcome = iota // nothing written: apply makes every step
	appended                      // the callback appended, the call's write refused: apply folds again
	wrote                         // the callback, the call and its events are durable
)

// fromState folds cb into cur, the call's state at version as this
// process knows it, and writes what that changes in one store step (see
// record). A fold that changes nothing, or emits events the intake cannot
// put with the call, is left to apply.
func (c *Connector) fromState(ctx context.Context, cb *Callback, app store.ListAppend, cur Call, version int64, canPut bool) (Answer, stateOutcome, error) {
	root := cur.ID
	next, events, changed := Fold(cur, cb, cb.ReceivedAt, c.opts)
	if !changed || len(events) > 0 && !canPut {
		return Answer{}, untouched, nil
	}
	if !next.SettleAt.IsZero() && !next.SettleAt.Equal(cur.SettleAt) {
		// Due first, written second: scheduling is idempotent, and a
		// schedule whose write then fails finds nothing to settle.
		if err := c.schedule(ctx, root, next.SettleAt, cb.ReceivedAt); err != nil {
			return Answer{}, untouched, err
		}
	}
	data, err := json.Marshal(next)
	if err != nil {
		return Answer{}, untouched, fmt.Errorf("telephony %s: call %s: encode: %w", c.Name(), root, err)
	}
	put := store.RecordPut{Key: callKey(c.Name(), root), Value: data, Expect: version, TTL: c.retention}
	ans := Answer{CallID: root, CallbackID: cb.ID, Outcome: next.Outcome, Events: []AcceptedEvent{}}
	var v int64
	if len(events) == 0 {
		_, ans.Duplicate, v, err = store.AppendAndPut(ctx, c.records, app, put)
	} else {
		var res connectors.PutResult
		res, err = connectors.SubmitWithPut(ctx, c.Intake(), events, app, put)
		ans.Duplicate, v = res.Duplicate, res.Version
		for i, r := range res.Events {
			ans.Events = append(ans.Events, AcceptedEvent{EventID: r.EventID, Type: events[i].Type, Duplicate: r.Duplicate})
		}
	}
	switch {
	case err == nil:
		c.calls.put(next, v, c.Now())
		return ans, wrote, nil
	case errors.Is(err, store.ErrConflict):
		c.refolds.Add(1) // the state was behind the store's
		return ans, appended, nil
	case errors.Is(err, errors.ErrUnsupported):
		return Answer{}, untouched, nil
	default:
		return Answer{}, untouched, fmt.Errorf("telephony %s: call %s: append callback: %w", c.Name(), root, err)
	}
}

// apply runs the state machine for the call root: read the call, fold cb
// in (cb nil: only the clock moved, at now), submit the new events, and
// write the call back if it changed, expecting the version read
// (store.UpdateJSON). When another writer got there first it starts over
// from the new version: the
// events it submitted are submitted again and are duplicates. If the
// intake fails nothing is written, so the next attempt derives them again.
//
// app, when not nil, is cb's append to the callback list, not made yet: it
// goes with the call's write (store.UpdateJSONAppend: one store step for
// both), or alone when the call does not change, and not at all when the
// intake fails (the provider's retry is then not taken for a duplicate).
// duplicate is that append's.
func (c *Connector) apply(ctx context.Context, root string, cb *Callback, now time.Time, app *store.ListAppend) (_ Call, _ []AcceptedEvent, duplicate bool, _ error) {
	var (
		result   Call
		accepted []AcceptedEvent
		written  bool
	)
	change := func(call *Call, version int64) (bool, error) {
		switch {
		case version == 0 && cb == nil:
			result, accepted, written = Call{}, nil, false // expired or never written
			return false, nil
		case version == 0:
			call.ID = root
		case call.ID != root:
			return false, fmt.Errorf("stored state is not a call (id %q)", call.ID)
		}
		cur := *call
		next, events, changed := Fold(cur, cb, now, c.opts)
		accepted = make([]AcceptedEvent, 0, len(events))
		for _, ev := range events {
			res, err := c.Intake().Submit(ctx, ev)
			if err != nil {
				return false, fmt.Errorf("submit %s: %w", ev.ID, err)
			}
			accepted = append(accepted, AcceptedEvent{EventID: ev.ID, Type: ev.Type, Duplicate: res.Duplicate})
		}
		if !next.SettleAt.IsZero() && (!next.SettleAt.Equal(cur.SettleAt) || cb == nil) {
			if err := c.schedule(ctx, root, next.SettleAt, now); err != nil {
				return false, err
			}
		}
		result, written = next, changed
		if !changed {
			c.calls.put(cur, version, c.Now())
			return false, nil
		}
		*call = next
		return true, nil
	}
	key := callKey(c.Name(), root)
	var (
		version int64
		err     error
	)
	if app != nil {
		_, version, duplicate, err = store.UpdateJSONAppend(ctx, c.records, *app, key, c.retention, change)
	} else {
		_, version, err = store.UpdateJSON(ctx, c.records, key, c.retention, change)
	}
	switch {
	case errors.Is(err, store.ErrConflict):
		return Call{}, nil, false, fmt.Errorf("telephony %s: call %s: %w", c.Name(), root, errBusy)
	case err != nil:
		return Call{}, nil, false, fmt.Errorf("telephony %s: call %s: %w", c.Name(), root, err)
	case written:
		c.calls.put(result, version, c.Now())
	}
	return result, accepted, duplicate, nil
}

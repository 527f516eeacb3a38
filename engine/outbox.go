package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// CauseAttr is the event attribute that names the action run (its id, or
// its idempotency key) that caused the event, for instance a webhook
// target that answers by posting an event back. The engine follows these
// links to stop loops and long chains of moves caused by actions.
const CauseAttr = "stagegate_cause"

// ActionOptions tune how the engine runs stage actions from the outbox.
type ActionOptions struct {
	// Workers is how many actions run at once (default 64).
	Workers int
	// MaxAttempts bounds the attempts of one action (default 10); then it
	// is failed and waits for a retry through the API.
	MaxAttempts int
	// BackoffMin and BackoffMax bound the delay before a retry: it doubles
	// from BackoffMin with each attempt, up to BackoffMax, and is drawn at
	// random from its upper half (defaults 1s and 10m). A Retry-After
	// answer waits longer when it asks to, up to RetryAfterMax (default 1h).
	BackoffMin, BackoffMax, RetryAfterMax time.Duration
	// Lease is how long a claimed action is held before another worker may
	// take it again (default 1m). It must exceed the longest attempt.
	Lease time.Duration
	// Poll is the longest pause between looks at the outbox when nothing
	// wakes the runner (default 1s).
	Poll time.Duration
	// MaxChainDepth bounds chains of moves caused by actions (default 5).
	MaxChainDepth int
	// Grace is how long RunActions lets running actions finish once its
	// context is done (default 10s).
	Grace    time.Duration
	Observer ActionObserver
}

func (o *ActionOptions) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Workers <= 0 {
		o.Workers = 64
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.MaxChainDepth <= 0 {
		o.MaxChainDepth = 5
	}
	def(&o.BackoffMin, time.Second)
	def(&o.BackoffMax, 10*time.Minute)
	def(&o.RetryAfterMax, time.Hour)
	def(&o.Lease, time.Minute)
	def(&o.Poll, time.Second)
	def(&o.Grace, 10*time.Second)
	o.BackoffMax = max(o.BackoffMax, o.BackoffMin)
	if o.Observer == nil {
		o.Observer = nopActionObserver{}
	}
}

// actionRun is the engine's payload of an outbox entry: the move as it was.
type actionRun struct {
	From   string              `json:"from"`
	Entry  store.TimelineEntry `json:"entry"`
	Event  *normalize.Event    `json:"event,omitempty"` // without Raw; nil for a manual move
	Manual bool                `json:"manual,omitempty"`
	Depth  int                 `json:"depth"`           // chain depth of the move
	Chain  []chainLink         `json:"chain,omitempty"` // stages entered along the chain, this one included
}

// chainLink is one stage entry of an action chain.
type chainLink struct {
	Item  string `json:"item"`
	Stage string `json:"stage"`
}

// cause is where an event's chain of action-caused moves stands.
type cause struct {
	id    string // the action run that caused the event; "" for none
	depth int
	chain []chainLink
}

// causeOf follows the event's CauseAttr to the action run that caused it.
// An unknown run (expired, or not ours) counts as no cause.
func (e *Engine) causeOf(ctx context.Context, ev *normalize.Event) (cause, error) {
	ref := ev.Attrs[CauseAttr]
	if ref == "" {
		return cause{}, nil
	}
	ob, err := e.st.GetOutbox(ctx, ref)
	if errors.Is(err, store.ErrNotFound) && !strings.HasPrefix(ref, "ac_") {
		ob, err = e.st.GetOutbox(ctx, ActionID(ref))
	}
	if errors.Is(err, store.ErrNotFound) {
		e.log.Debug("event names an unknown cause", "event", ev.ID, "cause", ref)
		return cause{}, nil
	}
	if err != nil {
		return cause{}, fmt.Errorf("engine: cause %s of event %s: %w", ref, ev.ID, err)
	}
	var run actionRun
	if err := json.Unmarshal(ob.Payload, &run); err != nil {
		return cause{}, nil
	}
	return cause{id: ob.ID, depth: run.Depth + 1, chain: run.Chain}, nil
}

// stop says why a move caused by c must not happen, or "" when it may.
func (e *Engine) stop(c cause, itemID, stage string) string {
	if c.id == "" {
		return ""
	}
	if c.depth > e.aopts.MaxChainDepth {
		return fmt.Sprintf("action chain stopped: move %d of a chain caused by actions (max_chain_depth %d; cause %s)",
			c.depth, e.aopts.MaxChainDepth, c.id)
	}
	if slices.Contains(c.chain, chainLink{itemID, stage}) {
		return fmt.Sprintf("action loop stopped: the item entered stage %s earlier in this chain of actions (cause %s)", stage, c.id)
	}
	return ""
}

// outboxFor builds the outbox entries of entering stage to: one per action,
// keyed by item, stage entry and index, due after the action's delay.
func (e *Engine) outboxFor(it store.Item, from string, to Stage, entry store.TimelineEntry, ev *normalize.Event, c cause) ([]store.OutboxEntry, error) {
	if len(to.Actions) == 0 {
		return nil, nil
	}
	run := actionRun{From: from, Entry: entry, Manual: ev == nil, Depth: c.depth,
		Chain: append(slices.Clip(c.chain), chainLink{it.ID, to.ID})}
	if ev != nil {
		stripped := *ev
		stripped.Raw = nil
		run.Event = &stripped
	}
	payload, err := json.Marshal(run)
	if err != nil {
		return nil, fmt.Errorf("engine: outbox payload: %w", err)
	}
	out := make([]store.OutboxEntry, len(to.Actions))
	for i, a := range to.Actions {
		key := ActionKey(it.ID, entry.ID, i)
		out[i] = store.OutboxEntry{
			ID: ActionID(key), Key: key, ItemID: it.ID, Pipeline: it.Pipeline, Stage: to.ID, Index: i,
			Type: a.Type, Name: a.Name, Payload: payload, Due: entry.At.Add(a.After), CreatedAt: entry.At,
		}
	}
	return out, nil
}

// enqueued tells the action runner that a move added entries, so that
// those due at once run without waiting for the next poll.
func (e *Engine) enqueued(entries []store.OutboxEntry, now time.Time) {
	for _, en := range entries {
		if !en.Due.After(now) {
			e.Wake()
			return
		}
	}
}

// Wake makes the action runner look at the outbox now (after a move, or a
// retry through the API).
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

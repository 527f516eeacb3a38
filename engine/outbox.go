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
	"github.com/stagegate/stagegate/validate"
)

// CauseAttr is the event attribute that names the action run (its id, or
// its idempotency key) that caused the event, for instance a webhook
// target that answers by posting an event back. The engine follows these
// links to stop loops and long chains of moves caused by actions.
const CauseAttr = "stagegate_cause"

// ActionPolicy is how stage actions are dispatched: the keys of the
// config file's actions section that every action type shares (package
// actions inlines it in its Config). Zero fields take the defaults below
// (SetDefaults); Validate checks the result.
type ActionPolicy struct {
	// Timeout bounds one attempt of an action that makes outbound calls
	// (an action's own timeout overrides it). Default 15s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts bounds the attempts of one action; then it is failed and
	// waits for POST /api/v1/actions/{id}/retry. Default 10.
	MaxAttempts int `yaml:"max_attempts"`
	// BackoffMin and BackoffMax bound the delay before a retry: it doubles
	// from BackoffMin with each attempt, up to BackoffMax, and is drawn at
	// random from its upper half (defaults 1s and 10m).
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// Workers is how many actions run at once. Default 64.
	Workers int `yaml:"workers"`
	// MaxChainDepth bounds chains of moves caused by actions. Default 5.
	MaxChainDepth int `yaml:"max_chain_depth"`
	// Lease is how long a worker holds a claimed action before another may
	// take it over (after a crash). Default Timeout plus 30s; the engine
	// lengthens it to outlast the longest timeout of a configured action.
	Lease time.Duration `yaml:"lease"`
	// Poll is the longest pause between looks at the outbox for due actions
	// (delays, retries, other processes' moves). Default 1s.
	Poll time.Duration `yaml:"poll"`
}

// Defaults of ActionPolicy.
const (
	DefaultActionTimeout = 15 * time.Second
	DefaultMaxAttempts   = 10
	DefaultBackoffMin    = time.Second
	DefaultBackoffMax    = 10 * time.Minute
	DefaultActionWorkers = 64
	DefaultMaxChainDepth = 5
	DefaultActionPoll    = time.Second
	// leaseMargin is the default lease beyond the attempt timeout.
	leaseMargin = 30 * time.Second
)

// SetDefaults fills the zero fields.
func (p *ActionPolicy) SetDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&p.Timeout, DefaultActionTimeout)
	def(&p.BackoffMin, DefaultBackoffMin)
	def(&p.BackoffMax, DefaultBackoffMax)
	def(&p.Poll, DefaultActionPoll)
	def(&p.Lease, p.Timeout+leaseMargin)
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.Workers == 0 {
		p.Workers = DefaultActionWorkers
	}
	if p.MaxChainDepth == 0 {
		p.MaxChainDepth = DefaultMaxChainDepth
	}
}

// Validate checks a policy with its defaults set; paths are relative to
// the actions section.
func (p *ActionPolicy) Validate() validate.Errors {
	var errs validate.Errors
	if p.Timeout < 10*time.Millisecond || p.Timeout > MaxActionTimeout {
		errs.Add("timeout", "must be between 10ms and 5m")
	}
	if p.MaxAttempts < 1 || p.MaxAttempts > 100 {
		errs.Add("max_attempts", "must be from 1 to 100")
	}
	if p.BackoffMin < time.Millisecond {
		errs.Add("backoff_min", "must be at least 1ms")
	}
	if p.BackoffMax < p.BackoffMin {
		errs.Add("backoff_max", "must not be less than backoff_min")
	}
	if p.Workers < 1 || p.Workers > 4096 {
		errs.Add("workers", "must be from 1 to 4096")
	}
	if p.MaxChainDepth < 1 || p.MaxChainDepth > 100 {
		errs.Add("max_chain_depth", "must be from 1 to 100")
	}
	if p.Lease <= p.Timeout {
		errs.Add("lease", "must be longer than timeout (%s)", p.Timeout)
	}
	if p.Poll < time.Millisecond || p.Poll > time.Minute {
		errs.Add("poll", "must be between 1ms and 1m")
	}
	return errs
}

// leaseFor is the lease that outlasts the longest attempt an action of ps
// may make (its own timeout, within the engine's tenth of the lease).
func (p *ActionPolicy) leaseFor(ps []Pipeline) time.Duration {
	lease := p.Lease
	for _, pl := range ps {
		for _, s := range pl.Stages {
			for _, a := range s.Actions {
				lease = max(lease, a.Timeout*10/9+time.Second)
			}
		}
	}
	return lease
}

// ActionOptions tune how the engine runs stage actions from the outbox.
type ActionOptions struct {
	ActionPolicy
	// RetryAfterMax bounds how long a Retry-After answer may delay a retry
	// (default 1h).
	RetryAfterMax time.Duration
	// Grace is how long RunActions lets running actions finish once its
	// context is done (default 10s).
	Grace    time.Duration
	Observer ActionObserver
}

func (o *ActionOptions) setDefaults(ps []Pipeline) {
	o.ActionPolicy.SetDefaults()
	o.Lease = o.leaseFor(ps)
	if o.RetryAfterMax <= 0 {
		o.RetryAfterMax = time.Hour
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
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
	// Hook names the event action (EventAction) of an entry queued with an
	// event rather than a move; empty for a stage action.
	Hook string `json:"hook,omitempty"`
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
		e.log.Debug("event names an unknown cause", "event_id", ev.ID, "cause", ref)
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

// Package engine is the stage engine: it receives normalized events, finds
// the items they concern, applies the trigger rules of docs/architecture.md §3 to each,
// moves items atomically through the store, records every decision so that
// it can be explained, and runs the actions of the stage entered: each move
// queues them in the store's outbox in the same atomic step, and RunActions
// runs them from there, at least once (actions.go, outbox.go, dispatch.go).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// CreateSpec says where to create a contact and an item for an event that
// matches nothing (per connector).
type CreateSpec struct {
	Pipeline    string
	Stage       string // empty: the pipeline's first stage
	Responsible string
}

// Observer is told about what the engine does, for metrics. Methods must be
// cheap and safe for concurrent use.
type Observer interface {
	Moved(pipeline, from, to string)
	// Applied is told each applied (or parked) event with what the engine
	// decided for it in this process; a redelivered event's decisions
	// say "already applied" where the store keeps the first verdict.
	Applied(ev *normalize.Event, lag time.Duration, res Result)
	// Batch is told the size of each batch the engine read from the log
	// and applied (before any narrowing down after a failure).
	Batch(size int)
}

// Options configure an Engine.
type Options struct {
	Store     store.Store
	Pipelines []Pipeline
	// Create maps a connector name to where it creates unknown contacts.
	Create map[string]CreateSpec
	// Actions runs stage actions; nil uses only the built-in "log" action.
	Actions ActionRunner
	// ActionOptions tune how actions are run from the outbox (RunActions).
	ActionOptions ActionOptions
	// DefaultRegion is used to normalize trigger line numbers (e.g. "US").
	DefaultRegion string
	Logger        *slog.Logger
	Now           func() time.Time
	Observer      Observer
	// BatchSize bounds how many log entries are applied in one batch
	// (default and maximum MaxBatch).
	BatchSize int
	// Consumer names this process in the store's log consumer group.
	Consumer string
	// EventActions are actions of events themselves (a form's autoreply),
	// queued with the event's acknowledgement (EventAction).
	EventActions []EventAction
}

// Engine applies events to items. Create it with New.
type Engine struct {
	st        store.Store
	batch     store.BatchApplier
	single    bool // the store has one process: waiters need not poll it
	pipelines map[string]*pipeline
	order     []*pipeline
	create    map[string]CreateSpec
	actions   ActionRunner
	aopts     ActionOptions
	wake      chan struct{} // a move added actions due now
	log       *slog.Logger
	now       func() time.Time
	obs       Observer
	batchSize int
	consumer  string
	waiters   *waiters
	// eventActions by hook (EventAction.hook)
	eventActions map[string]*EventAction
	drain        chan struct{}
	drainOnce    sync.Once
	done         chan struct{}
}

// maxMoveAttempts bounds retries of an item move that lost a version race.
const maxMoveAttempts = 16

// New checks the pipelines and builds an engine.
func New(o Options) (*Engine, error) {
	if o.Store == nil {
		return nil, errors.New("engine: no store")
	}
	e := &Engine{
		st: o.Store, batch: o.Store, pipelines: map[string]*pipeline{}, create: o.Create, actions: o.Actions,
		aopts: o.ActionOptions, wake: make(chan struct{}, 1), log: o.Logger, now: o.Now, obs: o.Observer, batchSize: o.BatchSize, consumer: o.Consumer,
		waiters: newWaiters(), drain: make(chan struct{}), done: make(chan struct{}),
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if sp, ok := o.Store.(interface{ SingleProcess() bool }); ok {
		e.single = sp.SingleProcess()
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.obs == nil {
		e.obs = nopObserver{}
	}
	if e.actions == nil {
		e.actions = LogAction{Store: o.Store, Logger: e.log}
	}
	e.aopts.setDefaults(o.Pipelines)
	if e.batchSize <= 0 || e.batchSize > MaxBatch {
		e.batchSize = MaxBatch
	}
	if e.consumer == "" {
		e.consumer = "engine"
	}
	for _, p := range o.Pipelines {
		// Actions first: checking them decodes their settings.
		if err := checkActions(p, e.actions.Kinds()); err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		cp, err := compilePipeline(p, o.DefaultRegion)
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		e.pipelines[p.ID] = cp
		e.order = append(e.order, cp)
	}
	if err := e.addEventActions(o.EventActions); err != nil {
		return nil, err
	}
	for name, c := range e.create {
		p, ok := e.pipelines[c.Pipeline]
		if !ok {
			return nil, fmt.Errorf("engine: connector %s: create: unknown pipeline %q", name, c.Pipeline)
		}
		if c.Stage == "" {
			c.Stage = p.Stages[0].ID
			e.create[name] = c
		} else if _, ok := p.stageIndex[c.Stage]; !ok {
			return nil, fmt.Errorf("engine: connector %s: create: unknown stage %q", name, c.Stage)
		}
	}
	return e, nil
}

// Pipeline returns a configured pipeline by id.
func (e *Engine) Pipeline(id string) (Pipeline, bool) {
	p, ok := e.pipelines[id]
	if !ok {
		return Pipeline{}, false
	}
	return p.Pipeline, true
}

// Pipelines returns the configured pipelines in config order.
func (e *Engine) Pipelines() []Pipeline {
	out := make([]Pipeline, len(e.order))
	for i, p := range e.order {
		out[i] = p.Pipeline
	}
	return out
}

// Result is what applying one event did.
type Result struct {
	Items     []store.ItemDecisions
	Unmatched bool
	Note      string
}

// Applied is what the store holds for an applied event, as its waiter is
// told (Watcher.Applied): the outcome and the decisions, by item id, as
// store.Store.GetEvent returns them.
type Applied struct {
	Unmatched bool
	Note      string
	Decisions []store.ItemDecisions
}

// Apply applies one event directly, not through the log: it resolves the
// items the event concerns (architecture §4), evaluates and moves each, and
// records the decisions, in one batch of one. Applying the same event again
// moves nothing: the store refuses a second move of one item by one event,
// and the first verdict recorded is kept.
func (e *Engine) Apply(ctx context.Context, ev *normalize.Event) (Result, error) {
	p := &plan{entry: store.LogEntry{Event: *ev}, ev: ev}
	if err := e.applyPlans(ctx, []*plan{p}); err != nil {
		return Result{}, err
	}
	if p.err != nil {
		return Result{}, p.err
	}
	return p.res, nil
}

// rememberSent records the Message-ID of a mail we sent (email.sent, from a
// sent folder or the API) for the item it reached, so that the customer's
// reply is routed to that item (architecture §4). The first item keeps it.
func (e *Engine) rememberSent(ctx context.Context, ev *normalize.Event, it store.Item) error {
	mid := ev.Attrs["message_id"]
	if ev.Type != normalize.EmailSent || mid == "" {
		return nil
	}
	ref := store.MessageRef{ItemID: it.ID, Source: ev.Connector, CreatedAt: e.now()}
	if err := store.PutMessageRef(ctx, e.st, mid, ref, 0); err != nil {
		return fmt.Errorf("engine: remember sent message of %s: %w", ev.ID, err)
	}
	return nil
}

type nopObserver struct{}

func (nopObserver) Moved(string, string, string)                    {}
func (nopObserver) Applied(*normalize.Event, time.Duration, Result) {}
func (nopObserver) Batch(int)                                       {}

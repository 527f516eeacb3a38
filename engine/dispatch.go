package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/stagegate/stagegate/internal/backoff"
	"github.com/stagegate/stagegate/store"
)

// RunActions runs stage actions from the outbox until ctx is done: it
// claims due entries (with a lease, so the entries of a crashed process
// come back), runs them on up to Workers goroutines, and records each
// outcome: done, skipped, retry later with backoff, or failed. The actions
// of one stage entry claimed together run one after the other, in order.
// Once ctx is done it stops claiming and gives running actions Grace to
// finish before cancelling them; an interrupted action is due again.
func (e *Engine) RunActions(ctx context.Context) error {
	o := &e.aopts
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	slots := make(chan struct{}, o.Workers) // one token per running action
	freed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer e.finishRunning(&wg, cancelWork)
	bo := backoff.New(100*time.Millisecond, 5*time.Second)
	// While there is a backlog (the last claim got all it asked for),
	// claim in batches of a few freed workers: one claim per freed worker
	// would cost a store write per action.
	batch, backlog := max(1, o.Workers/8), false
	for ctx.Err() == nil {
		free := o.Workers - len(slots)
		if free == 0 || (backlog && free < batch) {
			select {
			case <-freed:
			case <-ctx.Done():
			}
			continue
		}
		entries, err := e.st.ClaimOutbox(ctx, e.now(), free, o.Lease)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("claim actions failed", "err", err)
				backoff.Sleep(ctx, bo.Next())
			}
			continue
		}
		bo.Reset()
		backlog = len(entries) == free
		for _, group := range byStageEntry(entries) {
			for range group {
				slots <- struct{}{}
			}
			wg.Go(func() {
				for _, en := range group {
					e.runEntry(work, en)
					<-slots
					select {
					case freed <- struct{}{}:
					default:
					}
				}
			})
		}
		if len(entries) < free { // nothing else is due now
			e.pause(ctx, freed)
		}
	}
	return nil
}

// finishRunning waits for the running actions, Grace at most, then
// interrupts the rest (they record themselves as due again).
func (e *Engine) finishRunning(wg *sync.WaitGroup, interrupt context.CancelFunc) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(e.aopts.Grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		e.log.Warn("actions still running after the grace period: interrupting them")
		interrupt()
		<-done
	}
}

// pause waits for the next due entry (at most Poll), a wake-up, an action
// that ended (it may have scheduled a retry sooner), or ctx.
func (e *Engine) pause(ctx context.Context, ended <-chan struct{}) {
	wait := e.aopts.Poll
	if next, ok, err := e.st.NextOutboxDue(ctx); err == nil && ok {
		wait = min(wait, max(next.Sub(e.now()), time.Millisecond))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-e.wake:
	case <-ended:
	case <-ctx.Done():
	}
}

// DeliverDue runs every action that is due now, one after the other, and
// returns how many it ran. Tests use it instead of RunActions to run the
// outbox synchronously.
func (e *Engine) DeliverDue(ctx context.Context) (int, error) {
	n := 0
	for {
		entries, err := e.st.ClaimOutbox(ctx, e.now(), e.aopts.Workers, e.aopts.Lease)
		if err != nil || len(entries) == 0 {
			return n, err
		}
		for _, group := range byStageEntry(entries) {
			for _, en := range group {
				e.runEntry(ctx, en)
				n++
			}
		}
	}
}

// byStageEntry groups claimed entries by the stage entry that queued them,
// in the order of the first of each, and sorts each group by action index.
func byStageEntry(entries []store.OutboxEntry) [][]store.OutboxEntry {
	var groups [][]store.OutboxEntry
	at := map[string]int{}
	for _, en := range entries {
		k := en.Key[:len(en.Key)-len(strconv.Itoa(en.Index))]
		if i, ok := at[k]; ok {
			groups[i] = append(groups[i], en)
			continue
		}
		at[k] = len(groups)
		groups = append(groups, []store.OutboxEntry{en})
	}
	for _, g := range groups {
		slices.SortStableFunc(g, func(a, b store.OutboxEntry) int { return a.Index - b.Index })
	}
	return groups
}

// checkActions checks a pipeline's actions against the runner's types.
func checkActions(p Pipeline, types map[string]bool) error {
	for _, s := range p.Stages {
		for k := range s.Actions {
			if errs := s.Actions[k].validate(s.ID, types); len(errs) > 0 {
				return fmt.Errorf("pipeline %s stage %s action %d: %w", p.ID, s.ID, k, errs.Err())
			}
		}
	}
	return nil
}

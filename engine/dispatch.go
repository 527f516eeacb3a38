package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/stagegate/stagegate/internal/backoff"
)

// RunActions runs stage actions from the outbox until ctx is done: it
// claims due entries (with a lease, so the entries of a crashed process
// come back), runs them on up to Workers goroutines, and records each
// outcome: done, skipped, retry later with backoff, or failed. The store
// hands out the actions of one stage entry one at a time, in order (see
// store.Outbox.ClaimOutbox): the next is claimed when the one before ended,
// so no action outlives its lease waiting for the ones before it.
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
		for _, en := range entries {
			slots <- struct{}{}
			wg.Go(func() {
				e.runEntry(work, en)
				<-slots
				select {
				case freed <- struct{}{}:
				default:
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
// that ended (it may have scheduled a retry sooner, or let the next action
// of its stage entry go), or ctx. Entries already due that the claim left
// wait behind a running action of their stage entry: one that ends here
// ends the pause, one of another process within Poll.
func (e *Engine) pause(ctx context.Context, ended <-chan struct{}) {
	wait := e.aopts.Poll
	if next, ok, err := e.st.NextOutboxDue(ctx); err == nil && ok && next.After(e.now()) {
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

// DeliverDue runs every action that is due now, one after the other (each
// stage entry's in order), and returns how many it ran. Tests use it instead of RunActions to run the
// outbox synchronously.
func (e *Engine) DeliverDue(ctx context.Context) (int, error) {
	n := 0
	for {
		entries, err := e.st.ClaimOutbox(ctx, e.now(), e.aopts.Workers, e.aopts.Lease)
		if err != nil || len(entries) == 0 {
			return n, err
		}
		for _, en := range entries {
			e.runEntry(ctx, en)
			n++
		}
	}
}

// checkActions checks a pipeline's actions against the runner's kinds.
func checkActions(p Pipeline, kinds map[string]ActionKind) error {
	for _, s := range p.Stages {
		for k := range s.Actions {
			if errs := s.Actions[k].validate(s.ID, kinds); len(errs) > 0 {
				return fmt.Errorf("pipeline %s stage %s action %d: %w", p.ID, s.ID, k, errs.Err())
			}
		}
	}
	return nil
}

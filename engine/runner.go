package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stagegate/stagegate/internal/backoff"
	"github.com/stagegate/stagegate/store"
)

// Run consumes the store's log and applies it a batch at a time (up to
// MaxBatch entries, what the log holds) until ctx is done or Drain is
// called. Events are decided in log order, so events of one subject are
// applied in order. An event is acknowledged only in the same store step
// that applied it, so a crash at any point leads to redelivery, and
// applying again changes nothing (at least once in delivery, exactly once
// in effect).
func (e *Engine) Run(ctx context.Context) error {
	defer close(e.done)
	draining := false
	bo := backoff.New(100*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		block := time.Second
		if !draining {
			select {
			case <-e.drain:
				draining = true
			default:
			}
		}
		if draining {
			block = 50 * time.Millisecond
		}
		entries, err := e.st.ReadLog(ctx, e.consumer, e.batchSize, block)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			e.log.Warn("read log failed", "err", err)
			if !backoff.Sleep(ctx, bo.Next()) {
				break
			}
			continue
		}
		bo.Reset()
		if draining && len(entries) == 0 {
			return nil
		}
		if len(entries) > 0 {
			e.obs.Batch(len(entries))
			e.processBatch(ctx, entries)
		}
	}
	return nil
}

// Drain asks Run to apply what the log still holds and return, and waits
// for that or for ctx. The gateway calls it on shutdown after it stopped
// taking input.
func (e *Engine) Drain(ctx context.Context) error {
	e.drainOnce.Do(func() { close(e.drain) })
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Failure handling of a batch. A store outage retries the batch with
// backoff for as long as it lasts (nothing is lost; the entries stay in
// the log). Any other failure is narrowed down to its event — a failing
// batch is applied again one event at a time — and an event that fails
// MaxApplyFailures times in a row is parked: acknowledged as failed with
// its error (listed by the API, retried on request), so it blocks neither
// its subject nor the rest of the log.
const (
	// MaxApplyFailures is how often an event may fail before it is parked.
	MaxApplyFailures  = 5
	failureBackoffMin = 50 * time.Millisecond
)

// processBatch applies entries until each is acknowledged or parked, or ctx
// is done (the rest is then delivered again later).
func (e *Engine) processBatch(ctx context.Context, entries []store.LogEntry) {
	plans := make([]*plan, len(entries))
	for i := range entries {
		plans[i] = &plan{entry: entries[i], ev: &entries[i].Event}
	}
	outage := backoff.New(100*time.Millisecond, 5*time.Second)
	failing := backoff.New(failureBackoffMin, time.Second)
	failures := map[string]int{}
	for len(plans) > 0 && ctx.Err() == nil {
		for _, p := range plans {
			p.err, p.held, p.done = nil, false, false
		}
		err := e.applyPlans(ctx, plans)
		switch {
		case err == nil:
		case errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil:
			e.log.Warn("apply failed, will retry", "events", len(plans), "err", err)
			if !backoff.Sleep(ctx, outage.Next()) {
				return
			}
			continue
		case len(plans) > 1:
			// Narrow it down: one event at a time, in order.
			e.log.Warn("batch failed, applying its events one by one", "events", len(plans), "err", err)
			for _, p := range plans {
				e.processBatch(ctx, p.entries())
			}
			return
		default:
			plans[0].err = err
		}
		outage.Reset()
		e.finished(plans)
		var rest []*plan
		for _, p := range plans {
			switch {
			case p.done:
			case p.err != nil:
				failures[p.ev.ID]++
				if failures[p.ev.ID] >= MaxApplyFailures {
					e.park(ctx, p, failures[p.ev.ID])
					continue
				}
				e.log.Warn("apply failed, will retry", "event_id", p.ev.ID, "failures", failures[p.ev.ID], "err", p.err)
				rest = append(rest, p)
			default: // held behind a failing event of its subject
				rest = append(rest, p)
			}
		}
		plans = rest
		if len(plans) > 0 && !backoff.Sleep(ctx, failing.Next()) {
			return
		}
	}
}

// entries is the log entry of p as a batch of one.
func (p *plan) entries() []store.LogEntry { return []store.LogEntry{p.entry} }

// finished tells the observer and the waiters about the applied plans.
func (e *Engine) finished(plans []*plan) {
	now := e.now()
	for _, p := range plans {
		if !p.done {
			continue
		}
		e.obs.Applied(p.ev, now.Sub(p.ev.ReceivedAt), p.res)
		e.waiters.notify(p.ev.ID, p.applied)
	}
}

// park acknowledges an event that keeps failing as failed, with its error,
// so that the rest of the log flows; RetryEvent puts it back.
func (e *Engine) park(ctx context.Context, p *plan, failures int) {
	note := fmt.Sprintf("apply failed %d times: %v", failures, p.err)
	e.log.Error("event parked as failed", "event_id", p.ev.ID, "failures", failures, "err", p.err)
	bo := backoff.New(100*time.Millisecond, 5*time.Second)
	for {
		err := e.st.Ack(ctx, p.entry, store.Outcome{Failed: true, Note: note})
		if err == nil {
			e.obs.Applied(p.ev, e.now().Sub(p.ev.ReceivedAt), Result{Note: note})
			e.waiters.notify(p.ev.ID, nil)
			return
		}
		e.log.Warn("park failed, will retry", "event_id", p.ev.ID, "err", err)
		if !backoff.Sleep(ctx, bo.Next()) {
			return
		}
	}
}

// Wait blocks until the event is applied (by this process or, on a shared
// store, by another), or ctx is done. It checks the store first, since the
// event may be applied already (Watch skips that for an event it watched
// from before its append).
func (e *Engine) Wait(ctx context.Context, eventID string) error {
	w := e.Watch(eventID)
	defer w.Close()
	return w.Wait(ctx, false)
}

// Watcher is a wait for one event, registered before the event is
// submitted (Watch), so that the wait for a new event costs no read of the
// store on a single-process store.
type Watcher struct {
	e  *Engine
	id string
	w  *waiter
}

// Watch registers a wait for eventID; call Close when done with it.
func (e *Engine) Watch(eventID string) *Watcher {
	return &Watcher{e: e, id: eventID, w: e.waiters.add(eventID)}
}

// Close unregisters the wait.
func (w *Watcher) Close() { w.e.waiters.remove(w.id, w.w) }

// Applied returns, after Wait returned nil, what the store holds for the
// event when this process's engine applied it and knows that exactly (on
// bolt, an event applied at its first try); nil means: read it from the
// store (GetEvent).
func (w *Watcher) Applied() *Applied {
	select {
	case <-w.w.ch:
		return w.w.out
	default:
		return nil
	}
}

// Wait blocks until the event is applied or ctx is done. This process's
// engine wakes the waiter at once; the store is polled only as a fallback
// for events another process applies, at a growing interval (250 ms up to
// 2 s) so that many waiters do not turn into a read storm. fresh says the
// event was appended after Watch (not a duplicate): it cannot have been
// applied before the watch began, so the first look at the store is
// skipped (on a single-process store, every look).
func (w *Watcher) Wait(ctx context.Context, fresh bool) error {
	e := w.e
	if fresh && e.single {
		return w.woken(ctx)
	}
	poll := 250 * time.Millisecond
	first := time.Duration(0)
	if fresh {
		first, poll = poll, 2*poll
	}
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-w.w.ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		rec, _, err := e.st.GetEvent(ctx, w.id)
		if err != nil && !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			e.log.Debug("wait: get event", "event_id", w.id, "err", err)
		}
		if err == nil && rec.Applied {
			return nil
		}
		if e.single {
			// Only this process applies this store's log: after the one
			// check above (the event may have been applied before the
			// waiter was added), its engine's wake-up is enough.
			return w.woken(ctx)
		}
		timer.Reset(poll)
		poll = min(2*poll, 2*time.Second)
	}
}

// woken waits for this process's engine to wake the watcher.
func (w *Watcher) woken(ctx context.Context) error {
	select {
	case <-w.w.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waiter is one registered wait: ch is closed when the event is applied,
// after out is set (nil when the engine does not know exactly what was
// stored).
type waiter struct {
	ch  chan struct{}
	out *Applied
}

// waiters lets API calls wait for an event to be applied.
type waiters struct {
	mu sync.Mutex
	m  map[string][]*waiter
}

func newWaiters() *waiters { return &waiters{m: map[string][]*waiter{}} }

func (w *waiters) add(id string) *waiter {
	x := &waiter{ch: make(chan struct{})}
	w.mu.Lock()
	w.m[id] = append(w.m[id], x)
	w.mu.Unlock()
	return x
}

func (w *waiters) remove(id string, x *waiter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.m[id]
	for i, c := range list {
		if c == x {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(w.m, id)
	} else {
		w.m[id] = list
	}
}

// notify wakes the waiters of id, telling each what applied returns
// (shared: read only). applied (nil for nothing) runs only when id has
// waiters: most events have none.
func (w *waiters) notify(id string, applied func() *Applied) {
	w.mu.Lock()
	list := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if len(list) == 0 {
		return
	}
	var out *Applied
	if applied != nil {
		out = applied()
	}
	for _, x := range list {
		x.out = out
		close(x.ch)
	}
}

package engine

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/stagegate/stagegate/internal/backoff"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// Run consumes the store's log and applies each event until ctx is done or
// Drain is called. Events of one subject go to one worker, so they are
// applied in log order; different subjects are applied concurrently. An
// event is acknowledged only after it was applied, so a crash at any point
// leads to redelivery, and applying again changes nothing (at least once in
// delivery, exactly once in effect).
func (e *Engine) Run(ctx context.Context) error {
	defer close(e.done)
	chans := make([]chan store.LogEntry, e.workers)
	var wg sync.WaitGroup
	for i := range chans {
		chans[i] = make(chan store.LogEntry, 16)
		wg.Add(1)
		go func(ch <-chan store.LogEntry) {
			defer wg.Done()
			for entry := range ch {
				e.process(ctx, entry)
			}
		}(chans[i])
	}
	defer func() {
		for _, ch := range chans {
			close(ch)
		}
		wg.Wait()
	}()
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
		entries, err := e.st.ReadLog(ctx, e.consumer, 256, block)
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
		for _, entry := range entries {
			select {
			case chans[shard(&entry.Event, len(chans))] <- entry:
			case <-ctx.Done():
				return nil
			}
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

// process applies one log entry and acknowledges it, retrying with backoff
// while the store fails. It gives up only when ctx is done; the entry then
// stays in the log and is delivered again.
func (e *Engine) process(ctx context.Context, entry store.LogEntry) {
	ev := &entry.Event
	bo := backoff.New(100*time.Millisecond, 5*time.Second)
	for {
		res, err := e.Apply(ctx, ev)
		if err == nil {
			err = e.st.Ack(ctx, entry, store.Outcome{Unmatched: res.Unmatched, Note: res.Note})
		}
		if err == nil {
			e.obs.Applied(ev, e.now().Sub(ev.ReceivedAt), res.Unmatched)
			e.waiters.notify(ev.ID)
			return
		}
		if ctx.Err() != nil {
			return
		}
		e.log.Warn("apply failed, will retry", "event", ev.ID, "err", err)
		if !backoff.Sleep(ctx, bo.Next()) {
			return
		}
	}
}

// Wait blocks until the event is applied (by this process or, on a shared
// store, by another), or ctx is done. This process's engine wakes the waiter
// at once; the store is polled only as a fallback for events another
// process applies, at a growing interval (250 ms up to 2 s) so that many
// waiters do not turn into a read storm.
func (e *Engine) Wait(ctx context.Context, eventID string) error {
	ch := e.waiters.add(eventID)
	defer e.waiters.remove(eventID, ch)
	poll := 250 * time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		rec, _, err := e.st.GetEvent(ctx, eventID)
		if err != nil && !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			e.log.Debug("wait: get event", "event", eventID, "err", err)
		}
		if err == nil && rec.Applied {
			return nil
		}
		timer.Reset(poll)
		poll = min(2*poll, 2*time.Second)
	}
}

// shard picks the worker for an event from its subject, so that events of
// one customer are applied in order.
func shard(ev *normalize.Event, n int) int {
	s := ev.Subject
	key := firstNonEmpty(s.ItemID, normalize.NormalizeEmail(s.Email), s.Phone, s.VisitorID, ev.ID)
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// waiters lets API calls wait for an event to be applied.
type waiters struct {
	mu sync.Mutex
	m  map[string][]chan struct{}
}

func newWaiters() *waiters { return &waiters{m: map[string][]chan struct{}{}} }

func (w *waiters) add(id string) chan struct{} {
	ch := make(chan struct{})
	w.mu.Lock()
	w.m[id] = append(w.m[id], ch)
	w.mu.Unlock()
	return ch
}

func (w *waiters) remove(id string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.m[id]
	for i, c := range list {
		if c == ch {
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

func (w *waiters) notify(id string) {
	w.mu.Lock()
	list := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	for _, ch := range list {
		close(ch)
	}
}

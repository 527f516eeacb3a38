package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// The engine applies events in batches (what the log holds, up to
// MaxBatch): one Lookup reads every item and identity the batch names, the
// rules run in memory in log order — a move planned for an event is what
// the next event of the same item sees — and one ApplyBatch writes all
// moves, decisions, timeline and outbox entries and acknowledgements. A
// write that lost a race (another writer changed the item) is decided
// again on a fresh read of that item only; nothing else of the batch is
// written twice.

// MaxBatch bounds the events applied in one batch.
const MaxBatch = 256

// batchState is what the engine knows of the store while it decides a
// batch: the items (as the moves planned so far leave them), the owners of
// identities and the contacts' items.
type batchState struct {
	// dry marks a dry run (Explain): deciding writes nothing, not even the
	// contact and item a connector's create would add.
	dry          bool
	items        map[string]store.Item
	contacts     map[store.Identity]string
	contactItems map[string][]string
}

// plan is one event of a batch on its way through deciding and writing.
type plan struct {
	entry  store.LogEntry
	ev     *normalize.Event
	c      cause
	res    Result
	writes []store.ItemWrite // parallel to res.Items
	// sent lists the indexes of writes still to be written: all of them at
	// first, the conflicting ones on a retry.
	sent []int
	err  error // deciding failed (not a store outage): the event is not applied
	held bool  // an earlier event of the same subject failed: wait for it
	// outbox are the event's own actions (EventAction), queued with its ack.
	outbox []store.OutboxEntry
	done   bool // written and acknowledged
	// sends counts the ApplyBatch calls that carried this plan; exact: the
	// first one acknowledged it with every write OK, on a store of one
	// process whose failed calls write nothing (bolt), so the store holds
	// exactly this plan's outcome and decisions (applied).
	sends int
	exact bool
}

// applied is what the store holds for p's event once p is done, if the
// engine knows it exactly (p.exact): its outcome and its decisions in
// store.Store.GetEvent's order (by item id). Else nil: read the store.
func (p *plan) applied() *Applied {
	if !p.exact {
		return nil
	}
	a := &Applied{Unmatched: p.res.Unmatched, Note: p.res.Note}
	for _, w := range p.writes {
		a.Decisions = append(a.Decisions, w.Decisions)
	}
	slices.SortFunc(a.Decisions, func(x, y store.ItemDecisions) int { return strings.Compare(x.ItemID, y.ItemID) })
	for i := 1; i < len(a.Decisions); i++ {
		if a.Decisions[i].ItemID == a.Decisions[i-1].ItemID {
			return nil // one verdict per item is stored: not this plan's list
		}
	}
	return a
}

// lookupBatch reads what the events of plans name.
func (e *Engine) lookupBatch(ctx context.Context, plans []*plan) (*batchState, error) {
	var req store.LookupRequest
	seen := map[store.Identity]bool{}
	for _, p := range plans {
		if id := p.ev.Subject.ItemID; id != "" {
			req.ItemIDs = append(req.ItemIDs, id)
			continue
		}
		for _, id := range identities(p.ev.Subject) {
			if !seen[id] {
				seen[id] = true
				req.Identities = append(req.Identities, id)
			}
		}
	}
	r, err := e.batch.Lookup(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("engine: lookup: %w", err)
	}
	return &batchState{items: r.Items, contacts: r.Contacts, contactItems: r.ContactItems}, nil
}

// applyPlans decides and writes plans, in order. It returns an error only
// when nothing can be known of the batch (the store failed); an event whose
// deciding failed carries its own error, and the later events of its
// subject in the batch are held back for it.
func (e *Engine) applyPlans(ctx context.Context, plans []*plan) error {
	bs, err := e.lookupBatch(ctx, plans)
	if err != nil {
		return err
	}
	failed := map[string]bool{} // subjects with a failed event
	for _, p := range plans {
		key := subjectKey(p.ev)
		if failed[key] {
			p.held = true
			continue
		}
		if err := e.decide(ctx, bs, p); err != nil {
			if errors.Is(err, store.ErrUnavailable) {
				return err
			}
			p.err, failed[key] = err, true
		}
	}
	return e.write(ctx, bs, plans)
}

// allOK reports whether every write of an event succeeded.
func allOK(ws []store.WriteStatus) bool {
	for _, w := range ws {
		if w != store.WriteOK {
			return false
		}
	}
	return true
}

// write sends the decided plans in one ApplyBatch, then decides again the
// writes that conflicted and sends those, until every plan is acknowledged
// or maxMoveAttempts rounds are spent.
func (e *Engine) write(ctx context.Context, bs *batchState, plans []*plan) error {
	send := make([]*plan, 0, len(plans))
	for _, p := range plans {
		if p.err == nil && !p.held {
			send = append(send, p)
		}
	}
	for attempt := 1; len(send) > 0; attempt++ {
		entries := make([]store.BatchEntry, len(send))
		for i, p := range send {
			p.sends++
			be := store.BatchEntry{Entry: p.entry, Outcome: store.Outcome{Unmatched: p.res.Unmatched, Note: p.res.Note}, Outbox: p.outbox}
			for _, k := range p.sent {
				be.Writes = append(be.Writes, p.writes[k])
			}
			entries[i] = be
		}
		r, err := e.batch.ApplyBatch(ctx, e.now(), entries)
		if err != nil {
			return fmt.Errorf("engine: apply batch: %w", err)
		}
		var again []*plan
		conflicted := map[string]bool{}
		for i, p := range send {
			var retry []int
			for j, k := range p.sent {
				switch r.Writes[i][j] {
				case store.WriteOK:
					e.written(p, k)
				case store.WriteAlreadyApplied:
					d := &p.res.Items[k]
					d.Moved, d.To, d.Note = false, "", "event already applied to this item"
				case store.WriteNotFound:
					d := &p.res.Items[k]
					d.Moved, d.To, d.Note = false, "", "item no longer exists"
				case store.WriteConflict:
					retry = append(retry, k)
					conflicted[p.writes[k].ItemID] = true
				}
			}
			p.exact = e.single && p.sends == 1 && r.Acked[i] && allOK(r.Writes[i])
			p.sent = retry
			if r.Acked[i] {
				p.done = true
				e.enqueued(p.outbox, e.now())
			} else {
				again = append(again, p)
			}
		}
		if len(again) == 0 {
			return nil
		}
		if attempt >= maxMoveAttempts {
			for _, p := range again {
				p.err = fmt.Errorf("engine: items of event %s kept changing concurrently (%d attempts): %w", p.ev.ID, attempt, store.ErrConflict)
			}
			return nil
		}
		if err := e.refresh(ctx, bs, conflicted); err != nil {
			return err
		}
		for _, p := range again {
			for _, k := range p.sent {
				it, ok := bs.items[p.writes[k].ItemID]
				if !ok {
					p.writes[k] = store.ItemWrite{ItemID: p.writes[k].ItemID, ExpectVersion: -1}
					continue
				}
				e.decideItem(bs, p, k, it)
			}
		}
		send = again
	}
	return nil
}

// refresh reads the conflicting items again.
func (e *Engine) refresh(ctx context.Context, bs *batchState, ids map[string]bool) error {
	req := store.LookupRequest{}
	for id := range ids {
		req.ItemIDs = append(req.ItemIDs, id)
		delete(bs.items, id)
	}
	r, err := e.batch.Lookup(ctx, req)
	if err != nil {
		return fmt.Errorf("engine: reload items: %w", err)
	}
	for id, it := range r.Items {
		bs.items[id] = it
	}
	return nil
}

// written reports a move that was written to the observer and the action
// runner.
func (e *Engine) written(p *plan, k int) {
	w := p.writes[k]
	if w.Move == nil {
		return
	}
	d := p.res.Items[k]
	e.obs.Moved(d.Pipeline, d.From, d.To)
	e.enqueued(w.Move.Outbox, e.now())
}

// decide resolves the event's items and decides each of them in memory.
func (e *Engine) decide(ctx context.Context, bs *batchState, p *plan) error {
	ids, note, err := e.resolveIn(ctx, bs, p.ev)
	if err != nil {
		return err
	}
	p.res = Result{Note: note}
	p.writes, p.sent, p.outbox = nil, nil, nil
	if p.c, err = e.causeOf(ctx, p.ev); err != nil {
		return err
	}
	if len(e.eventActions) > 0 {
		e.queueEventActions(bs, p, ids)
	}
	if len(ids) == 0 {
		p.res.Unmatched = true
		return nil
	}
	p.res.Items = make([]store.ItemDecisions, len(ids))
	p.writes = make([]store.ItemWrite, len(ids))
	for k, id := range ids {
		p.sent = append(p.sent, k)
		e.decideItem(bs, p, k, bs.items[id])
	}
	if bs.dry {
		return nil
	}
	return e.rememberSent(ctx, p.ev, bs.items[ids[0]])
}

// decideItem applies the rules to item it for the event of p and puts the
// write and the decisions at index k; a planned move updates bs, so the
// next event of the item in this batch sees it. A move that would continue
// an action loop, or a chain of action-caused moves past its depth, is
// refused instead and recorded on the timeline.
func (e *Engine) decideItem(bs *batchState, p *plan, k int, it store.Item) {
	ev := p.ev
	now := e.now()
	d := store.ItemDecisions{ItemID: it.ID, Pipeline: it.Pipeline, From: it.Stage, At: now, Decisions: []store.Decision{}}
	w := store.ItemWrite{ItemID: it.ID, ExpectVersion: it.Version}
	defer func() {
		w.Decisions = d
		p.writes[k], p.res.Items[k] = w, d
	}()
	pl, ok := e.pipelines[it.Pipeline]
	if !ok {
		d.Note = "pipeline is not configured"
		return
	}
	verdict := pl.evaluate(it, ev)
	if verdict.decisions != nil {
		d.Decisions = verdict.decisions
	}
	t := verdict.winner
	if t == nil {
		return
	}
	to := pl.Stages[t.stage]
	actor := t.AsUser
	if actor == "" {
		actor = it.Responsible
	}
	if reason := e.stop(p.c, it.ID, to.ID); reason != "" {
		d.Note = reason
		if !bs.dry {
			e.log.Warn("move refused", "item", it.ID, "stage", to.ID, "event_id", ev.ID, "reason", reason)
		}
		w.Entry = &store.TimelineEntry{
			ID: "chain:" + ev.ID, ItemID: it.ID, Kind: store.EntryChainStopped, From: it.Stage, To: to.ID,
			Trigger: t.name, EventID: ev.ID, Message: reason, At: now,
		}
		return
	}
	d.To, d.Moved = to.ID, true
	entry := store.TimelineEntry{
		ID: "ev:" + ev.ID, ItemID: it.ID, Kind: store.EntryMove, From: it.Stage, To: to.ID,
		Trigger: t.name, EventID: ev.ID, Actor: actor, At: now,
	}
	outbox, err := e.outboxFor(it, it.Stage, to, entry, ev, p.c)
	if err != nil {
		// Only a payload that cannot be encoded fails here; the move goes
		// on without actions rather than never.
		e.log.Error("stage actions not queued", "item", it.ID, "event_id", ev.ID, "err", err)
	}
	w.Move = &store.ItemMove{To: to.ID, Closed: to.Final != "", Entry: entry, Outbox: outbox}
	it.Stage, it.Closed, it.UpdatedAt = to.ID, to.Final != "", now
	it.Version++
	bs.items[it.ID] = it
}

// subjectKey is what orders events: those with one key are applied in log
// order.
func subjectKey(ev *normalize.Event) string {
	s := ev.Subject
	return firstNonEmpty(s.ItemID, normalize.NormalizeEmail(s.Email), s.Phone, s.VisitorID, ev.ID)
}

// Explain is a dry run of ev: it resolves the items the event would reach
// and decides each of them exactly as applying it would (the same lookup
// and rules, architecture §3 and §4), but writes nothing — no move, decision,
// timeline or outbox entry, and no contact or item a connector would
// create (such an item is decided as created, version 1). The verdicts'
// To and Moved say where each item would go. It does not know whether the
// event was applied to an item before.
func (e *Engine) Explain(ctx context.Context, ev *normalize.Event) (Result, error) {
	p := &plan{entry: store.LogEntry{Event: *ev}, ev: ev}
	bs, err := e.lookupBatch(ctx, []*plan{p})
	if err != nil {
		return Result{}, err
	}
	bs.dry = true
	if err := e.decide(ctx, bs, p); err != nil {
		return Result{}, fmt.Errorf("engine: explain %s: %w", ev.ID, err)
	}
	return p.res, nil
}

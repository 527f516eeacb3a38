package board

import (
	"time"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// What a change message says changed; the page fetches again what it shows
// of those.
const (
	changeItems   = "items"   // an item moved, was created, or an event reached it
	changeEvents  = "events"  // an event was applied, unmatched or parked
	changeActions = "actions" // an action ran
)

// Observer returns an engine.Observer that tells next everything and the
// board that something changed.
func (b *Board) Observer(next engine.Observer) engine.Observer {
	return &observer{next: next, b: b}
}

// ActionObserver returns an engine.ActionObserver that tells next every
// attempt and the board that an action ran.
func (b *Board) ActionObserver(next engine.ActionObserver) engine.ActionObserver {
	return &actionObserver{next: next, b: b}
}

// Changed tells the boards of every process sharing the store that items
// changed (the API's create and update call it: the engine does not see
// those).
func (b *Board) Changed() { b.notify.poke(changeItems) }

type observer struct {
	next engine.Observer
	b    *Board
}

var _ engine.Observer = (*observer)(nil)

func (o *observer) Moved(pipeline, from, to string) {
	if o.next != nil {
		o.next.Moved(pipeline, from, to)
	}
	o.b.notify.poke(changeItems)
}

func (o *observer) Applied(ev *normalize.Event, lag time.Duration, res engine.Result) {
	if o.next != nil {
		o.next.Applied(ev, lag, res)
	}
	o.b.notify.poke(changeEvents)
	if !res.Unmatched && !movedAll(res.Items) {
		o.b.nonMoves.add(ev.ID)
	}
}

// movedAll reports whether the event moved every item it reached: then no
// item has a non-move to list, and the index need not read the event back.
// Otherwise the index reads the stored decisions, which keep the first
// verdict of a redelivered event.
func movedAll(ds []store.ItemDecisions) bool {
	for _, d := range ds {
		if !d.Moved {
			return false
		}
	}
	return true
}

func (o *observer) Batch(size int) {
	if o.next != nil {
		o.next.Batch(size)
	}
}

type actionObserver struct {
	next engine.ActionObserver
	b    *Board
}

var _ engine.ActionObserver = (*actionObserver)(nil)

func (o *actionObserver) ActionRan(typ, result string, took, sinceEntry time.Duration) {
	if o.next != nil {
		o.next.ActionRan(typ, result, took, sinceEntry)
	}
	o.b.notify.poke(changeActions)
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/stagegate/stagegate/store"
)

// Errors of manual moves.
var (
	ErrUnknownStage = errors.New("unknown stage")
	ErrSameStage    = errors.New("item is already at that stage")
)

// MoveManual moves an item to a stage by hand (the API's move): any stage of
// the item's pipeline, forward or back. Entering the stage queues its
// actions (in the same atomic step as the move) and writes a timeline entry
// with the actor (default: the responsible user).
func (e *Engine) MoveManual(ctx context.Context, itemID, stage, actor string) (store.Item, error) {
	for attempt := 1; ; attempt++ {
		it, err := e.st.GetItem(ctx, itemID)
		if err != nil {
			return store.Item{}, fmt.Errorf("engine: move %s: %w", itemID, err)
		}
		p, ok := e.pipelines[it.Pipeline]
		if !ok {
			return store.Item{}, fmt.Errorf("engine: move %s: pipeline %q: %w", itemID, it.Pipeline, ErrUnknownStage)
		}
		idx, ok := p.stageIndex[stage]
		if !ok {
			return store.Item{}, fmt.Errorf("engine: move %s: stage %q of pipeline %s: %w", itemID, stage, it.Pipeline, ErrUnknownStage)
		}
		if it.Stage == stage {
			return it, fmt.Errorf("engine: move %s: %w", itemID, ErrSameStage)
		}
		if actor == "" {
			actor = it.Responsible
		}
		to := p.Stages[idx]
		now := e.now()
		entry := store.TimelineEntry{
			ID: "m:" + strconv.FormatInt(it.Version+1, 10), ItemID: it.ID, Kind: store.EntryMove,
			From: it.Stage, To: stage, Actor: actor, At: now, Message: "manual move",
		}
		outbox, err := e.outboxFor(it, it.Stage, to, entry, nil, cause{})
		if err != nil {
			return store.Item{}, err
		}
		moved, err := e.st.Move(ctx, store.MoveRequest{
			ItemID: it.ID, ExpectVersion: it.Version, To: stage, Closed: to.Final != "", Entry: entry, At: now,
			Outbox: outbox,
		})
		if errors.Is(err, store.ErrConflict) && attempt < maxMoveAttempts {
			continue
		}
		if err != nil {
			return store.Item{}, fmt.Errorf("engine: move %s: %w", itemID, err)
		}
		e.obs.Moved(it.Pipeline, it.Stage, stage)
		e.enqueued(outbox, now)
		return moved, nil
	}
}

// CreateItem creates an item by hand (the API), at the given stage or the
// pipeline's first. It does not run the stage's actions: nothing was entered.
func (e *Engine) CreateItem(ctx context.Context, it store.Item, actor string) (store.Item, error) {
	p, ok := e.pipelines[it.Pipeline]
	if !ok {
		return store.Item{}, fmt.Errorf("engine: create item: pipeline %q: %w", it.Pipeline, ErrUnknownStage)
	}
	if it.Stage == "" {
		it.Stage = p.Stages[0].ID
	}
	idx, ok := p.stageIndex[it.Stage]
	if !ok {
		return store.Item{}, fmt.Errorf("engine: create item: stage %q of pipeline %s: %w", it.Stage, it.Pipeline, ErrUnknownStage)
	}
	now := e.now()
	it.Closed = p.final(idx)
	it.CreatedAt, it.UpdatedAt = now, now
	if actor == "" {
		actor = it.Responsible
	}
	entry := store.TimelineEntry{ID: "created", ItemID: it.ID, Kind: store.EntryCreated, To: it.Stage, Actor: actor, At: now}
	created, _, err := e.st.CreateItem(ctx, it, entry)
	if err != nil {
		return store.Item{}, fmt.Errorf("engine: create item: %w", err)
	}
	return created, nil
}

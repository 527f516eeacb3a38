package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/stagegate/stagegate/internal/backoff"
	"github.com/stagegate/stagegate/store"
)

// runEntry runs one claimed entry and records the outcome.
func (e *Engine) runEntry(ctx context.Context, en store.OutboxEntry) {
	in, skip, err := e.prepare(ctx, en)
	if err == nil && skip != "" {
		e.finish(ctx, en, store.OutboxSkipped, skip)
		e.aopts.Observer.ActionRan(en.Type, ActionSkipped, 0, 0)
		return
	}
	start := time.Now()
	if err == nil {
		// Stay within the lease, so that no other worker starts this entry
		// while it runs.
		actx, cancel := context.WithTimeout(ctx, e.aopts.Lease-e.aopts.Lease/10)
		err = e.actions.RunAction(actx, in)
		cancel()
	}
	took := time.Since(start)
	switch {
	case err == nil:
		e.finish(ctx, en, store.OutboxDone, "")
		e.aopts.Observer.ActionRan(en.Type, ActionOK, took, e.now().Sub(en.CreatedAt))
	case errors.Is(err, ErrSkip):
		e.finish(ctx, en, store.OutboxSkipped, err.Error())
		e.aopts.Observer.ActionRan(en.Type, ActionSkipped, took, 0)
	default:
		e.failed(ctx, en, in, err, took)
	}
}

// prepare builds the input of a claimed entry, or says why it is skipped.
// A configuration that no longer has the action is a permanent error.
func (e *Engine) prepare(ctx context.Context, en store.OutboxEntry) (ActionInput, string, error) {
	var run actionRun
	if err := json.Unmarshal(en.Payload, &run); err != nil {
		return ActionInput{}, "", Permanent(fmt.Errorf("outbox entry %s: bad payload: %w", en.ID, err))
	}
	if run.Hook != "" {
		in, err := e.prepareEvent(ctx, en, run)
		return in, "", err
	}
	p, ok := e.pipelines[en.Pipeline]
	si, ok2 := 0, false
	if ok {
		si, ok2 = p.stageIndex[en.Stage]
	}
	if !ok2 || en.Index >= len(p.Stages[si].Actions) || p.Stages[si].Actions[en.Index].Type != en.Type {
		return ActionInput{}, "", Permanent(fmt.Errorf("action %d (%s) of stage %s/%s is no longer configured", en.Index, en.Type, en.Pipeline, en.Stage))
	}
	stage := p.Stages[si]
	spec := stage.Actions[en.Index]
	it, err := e.st.GetItem(ctx, en.ItemID)
	if err != nil {
		return ActionInput{}, "", fmt.Errorf("load item %s: %w", en.ItemID, err)
	}
	if spec.After > 0 && spec.SkipsIfLeft() {
		if left, err := e.leftStage(ctx, it, en.Stage, run.Entry.ID); err != nil || left {
			return ActionInput{}, "the item left the stage before the action was due", err
		}
	}
	in := ActionInput{
		Item: it, From: run.From, Stage: stage, Action: spec, Index: en.Index, Entry: run.Entry, Event: run.Event,
		ID: en.ID, Attempt: en.Attempts,
	}
	in.Data = ActionData{
		ID: en.ID, IdempotencyKey: en.Key, Type: "stage.entered",
		Action:   ActionRef{Type: spec.Type, Name: spec.Name, Index: en.Index},
		Pipeline: en.Pipeline, Stage: StageRef{ID: stage.ID, Name: stage.Name, Final: stage.Final},
		PreviousStage: run.From, Trigger: run.Entry.Trigger, Manual: run.Manual, Actor: run.Entry.Actor,
		EnteredAt: run.Entry.At, Item: it, ChainDepth: run.Depth,
	}
	if run.Event != nil {
		in.Data.Event = *run.Event
	}
	if it.ContactID != "" {
		c, err := e.st.GetContact(ctx, it.ContactID)
		switch {
		case err == nil:
			in.Data.Contact = c
		case !errors.Is(err, store.ErrNotFound):
			return ActionInput{}, "", fmt.Errorf("load contact %s: %w", it.ContactID, err)
		}
	}
	return in, "", nil
}

// leftStage reports whether the item is no longer in the stage entry
// entryID: it is at another stage, or its latest move is another one.
func (e *Engine) leftStage(ctx context.Context, it store.Item, stage, entryID string) (bool, error) {
	if it.Stage != stage {
		return true, nil
	}
	tl, err := e.st.Timeline(ctx, it.ID)
	if err != nil {
		return false, fmt.Errorf("load timeline of %s: %w", it.ID, err)
	}
	for i := len(tl) - 1; i >= 0; i-- {
		if tl[i].Kind == store.EntryMove {
			return tl[i].ID != entryID, nil
		}
	}
	return true, nil
}

// failed handles a failed attempt: retry after a backoff (or the target's
// Retry-After), or, after the last attempt or a permanent error, fail the
// entry for good with a timeline entry on the item.
func (e *Engine) failed(ctx context.Context, en store.OutboxEntry, in ActionInput, err error, took time.Duration) {
	var ae *ActionError
	permanent := errors.As(err, &ae) && ae.Permanent
	msg := err.Error()
	if ctx.Err() != nil { // shutting down: the attempt was cut short, not failed
		if ferr := e.fail(en, msg, e.now()); ferr != nil {
			e.log.Warn("release interrupted action", "action", en.ID, "err", ferr)
		}
		return
	}
	if !permanent && en.Attempts < e.aopts.MaxAttempts {
		delay := backoff.Delay(en.Attempts, e.aopts.BackoffMin, e.aopts.BackoffMax, rand.Float64)
		if ae != nil && ae.RetryAfter > delay {
			delay = min(ae.RetryAfter, e.aopts.RetryAfterMax)
		}
		e.log.Info("action failed, will retry", "action", en.ID, "type", en.Type, "item", en.ItemID,
			"attempt", en.Attempts, "retry_in", delay, "err", msg)
		if ferr := e.fail(en, msg, e.now().Add(delay)); ferr != nil {
			e.log.Warn("record action retry", "action", en.ID, "err", ferr)
		}
		e.aopts.Observer.ActionRan(en.Type, ActionRetry, took, 0)
		return
	}
	e.log.Error("action failed", "action", en.ID, "type", en.Type, "item", en.ItemID,
		"attempts", en.Attempts, "permanent", permanent, "err", msg)
	if ferr := e.fail(en, msg, time.Time{}); ferr != nil {
		e.log.Warn("record action failure", "action", en.ID, "err", ferr)
	}
	e.aopts.Observer.ActionRan(en.Type, ActionFailed, took, 0)
	var run actionRun
	if json.Unmarshal(en.Payload, &run) == nil && en.ItemID != "" {
		note := fmt.Sprintf("action %s failed after %d attempt(s): %s", en.Type, en.Attempts, msg)
		terr := e.st.AppendTimeline(ctx, store.TimelineEntry{
			ID: fmt.Sprintf("%s/a%d/failed/%d", run.Entry.ID, en.Index, en.Claim), ItemID: en.ItemID,
			Kind: store.EntryAction, Action: en.Type, Message: note, EventID: run.Entry.EventID, At: e.now(),
		})
		if terr != nil && !errors.Is(terr, store.ErrNotFound) {
			e.log.Warn("timeline entry for failed action", "action", en.ID, "err", terr)
		}
	}
}

// finish records a final outcome; a store that cannot take it leaves the
// entry to come back when its lease ends.
func (e *Engine) finish(ctx context.Context, en store.OutboxEntry, status, note string) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := e.st.CompleteOutbox(sctx, en.ID, en.Claim, status, note, e.now()); err != nil {
		e.log.Warn("record action outcome", "action", en.ID, "status", status, "err", err)
	}
}

// fail records a failed attempt (retryAt zero: for good), even while the
// runner shuts down.
func (e *Engine) fail(en store.OutboxEntry, msg string, retryAt time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.st.FailOutbox(ctx, en.ID, en.Claim, msg, retryAt, e.now())
}

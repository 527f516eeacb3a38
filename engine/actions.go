package engine

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// ActionInput is what an action gets when an item enters its stage.
type ActionInput struct {
	Item   store.Item          // the item after the move
	From   string              // the stage left
	Stage  Stage               // the stage entered
	Action ActionSpec          // this action's config
	Index  int                 // position of the action on the stage
	Entry  store.TimelineEntry // the move's timeline entry
	Event  *normalize.Event    // the event that caused the move; nil for a manual move
}

// Key is a stable identifier of this run of this action: the same on every
// retry, different for each stage entry.
func (in ActionInput) Key() string {
	return in.Item.ID + "/" + in.Entry.ID + "/" + strconv.Itoa(in.Index)
}

// ActionRunner runs a stage's actions. The gateway provides one that knows
// every action type; the engine's default knows only "log".
type ActionRunner interface {
	// RunAction runs one action. An error is logged; it does not undo the move.
	RunAction(ctx context.Context, in ActionInput) error
	// Types lists the action types this runner knows, for config validation.
	Types() map[string]bool
}

// LogAction is the built-in "log" action: it writes a timeline entry (and a
// log line) saying that the stage was entered.
type LogAction struct {
	Store  store.Store
	Logger *slog.Logger
}

// Types implements ActionRunner.
func (LogAction) Types() map[string]bool { return map[string]bool{"log": true} }

// RunAction implements ActionRunner.
func (a LogAction) RunAction(ctx context.Context, in ActionInput) error {
	if in.Action.Type != "log" {
		return fmt.Errorf("action %s: unknown type", in.Action.Type)
	}
	msg := in.Action.Message
	if msg == "" {
		msg = fmt.Sprintf("entered stage %s from %s", in.Stage.ID, in.From)
	}
	if a.Logger != nil {
		a.Logger.Info("action log", "item", in.Item.ID, "stage", in.Stage.ID, "message", msg)
	}
	if a.Store == nil {
		return nil
	}
	return a.Store.AppendTimeline(ctx, store.TimelineEntry{
		ID: in.Entry.ID + "/a" + strconv.Itoa(in.Index), ItemID: in.Item.ID, Kind: store.EntryAction,
		Action: "log", Message: msg, EventID: in.Entry.EventID, Actor: in.Entry.Actor, At: in.Entry.At,
	})
}

// runActions runs the actions of the stage entered, in order. A failing
// action is logged and does not stop the others.
func (e *Engine) runActions(ctx context.Context, it store.Item, from string, to Stage, entry store.TimelineEntry, ev *normalize.Event) {
	for i, a := range to.Actions {
		in := ActionInput{Item: it, From: from, Stage: to, Action: a, Index: i, Entry: entry, Event: ev}
		if err := e.actions.RunAction(ctx, in); err != nil {
			e.log.Error("action failed", "item", it.ID, "stage", to.ID, "action", a.Type, "index", i, "err", err)
		}
	}
}

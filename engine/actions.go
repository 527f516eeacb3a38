package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/validate"
)

// ActionInput is what an action gets when it runs: some time after its item
// entered the stage (at once, or after the action's delay or a retry).
type ActionInput struct {
	Item   store.Item          // the item as it is when the action runs
	From   string              // the stage left
	Stage  Stage               // the stage entered
	Action ActionSpec          // this action's config
	Index  int                 // position of the action on the stage
	Entry  store.TimelineEntry // the move's timeline entry
	Event  *normalize.Event    // the event that caused the move; nil for a manual move
	// ID is the outbox entry's id, Attempt counts from 1.
	ID      string
	Attempt int
	// Data is what a webhook sends and what templates see.
	Data ActionData
	// EventKey, for an action of an event (EventAction), is its
	// idempotency key; empty for a stage action.
	EventKey string
	// DefaultTo, for an event action, is the email address the event's
	// subject has (a form's): the default recipient of send_email.
	DefaultTo string
}

// Key is a stable identifier of this run of this action: the same on every
// retry, different for each stage entry. Actions send it as the
// Idempotency-Key.
func (in ActionInput) Key() string {
	if in.EventKey != "" {
		return in.EventKey
	}
	return ActionKey(in.Item.ID, in.Entry.ID, in.Index)
}

// ActionKey is the idempotency key of action index of the stage entry
// entryID (the move's timeline entry id) of an item.
func ActionKey(itemID, entryID string, index int) string {
	return itemID + "/" + entryID + "/" + strconv.Itoa(index)
}

// ActionID is the outbox entry id of the run with idempotency key key: short,
// and safe in a URL path.
func ActionID(key string) string { return "ac_" + normalize.Hash(key) }

// ActionData describes a stage entry to the outside: it is a webhook's JSON
// body and the data of action templates.
type ActionData struct {
	ID             string          `json:"id"`              // the action run (outbox entry) id
	IdempotencyKey string          `json:"idempotency_key"` // same on every retry
	Type           string          `json:"type"`            // always "stage.entered"
	Action         ActionRef       `json:"action"`
	Pipeline       string          `json:"pipeline"`
	Stage          StageRef        `json:"stage"`          // the stage entered
	PreviousStage  string          `json:"previous_stage"` // the stage left
	Trigger        string          `json:"trigger,omitempty"`
	Manual         bool            `json:"manual"` // moved through the API
	Actor          string          `json:"actor,omitempty"`
	EnteredAt      time.Time       `json:"entered_at"`
	Item           store.Item      `json:"item"`
	Contact        store.Contact   `json:"contact,omitzero"`
	Event          normalize.Event `json:"event,omitzero"` // without its raw input
	ChainDepth     int             `json:"chain_depth"`    // moves caused by actions before this one
}

// ActionRef names the action in ActionData.
type ActionRef struct {
	Type  string `json:"type"`
	Name  string `json:"name,omitempty"`
	Index int    `json:"index"`
}

// StageRef names a stage in ActionData.
type StageRef struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Final string `json:"final,omitempty"`
}

// ActionRunner runs stage actions. The gateway provides one that knows
// every action type (package actions); the engine's default knows only
// "log".
type ActionRunner interface {
	// RunAction runs one attempt of one action. It must be idempotent for
	// in.Key(): a crash can make the engine run an attempt again. An error
	// is retried with backoff unless it is permanent (see ActionError).
	RunAction(ctx context.Context, in ActionInput) error
	// Kinds lists the action types this runner knows, for config
	// validation.
	Kinds() map[string]ActionKind
}

// ActionError is a failed attempt that says how to go on: Permanent
// failures are not retried; RetryAfter, when set, is the earliest time to
// try again (an HTTP Retry-After).
type ActionError struct {
	Err        error
	Permanent  bool
	RetryAfter time.Duration
}

func (e *ActionError) Error() string { return e.Err.Error() }
func (e *ActionError) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return &ActionError{Err: err, Permanent: true} }

// ErrSkip, returned (wrapped) by an action, ends the run as skipped: there
// was nothing to do.
var ErrSkip = errors.New("skipped")

// LogAction is the built-in "log" action: it writes a timeline entry (and a
// log line) saying that the stage was entered.
type LogAction struct {
	Store  store.Store
	Logger *slog.Logger
}

// LogSettings are the log action's settings.
type LogSettings struct {
	// Message is the timeline entry's text; default "entered stage X from Y".
	Message string `yaml:"message" json:"message,omitempty"`
}

// Validate implements ActionSettings.
func (*LogSettings) Validate(string) validate.Errors { return nil }

// LogKind is the built-in log action type.
func LogKind() ActionKind {
	return ActionKind{NewSettings: func() ActionSettings { return new(LogSettings) }}
}

// Kinds implements ActionRunner.
func (LogAction) Kinds() map[string]ActionKind { return map[string]ActionKind{"log": LogKind()} }

// RunAction implements ActionRunner.
func (a LogAction) RunAction(ctx context.Context, in ActionInput) error {
	if in.Action.Type != "log" {
		return Permanent(fmt.Errorf("action %s: unknown type", in.Action.Type))
	}
	var msg string
	if ls, ok := in.Action.Settings.(*LogSettings); ok {
		msg = ls.Message
	}
	if msg == "" {
		msg = fmt.Sprintf("entered stage %s from %s", in.Stage.ID, in.From)
	}
	if a.Logger != nil {
		a.Logger.Info("action log", "item", in.Item.ID, "stage", in.Stage.ID, "message", msg)
	}
	if a.Store == nil {
		return nil
	}
	return a.Store.AppendTimeline(ctx, ActionEntry(in, msg))
}

// ActionEntry is the timeline entry an action writes about itself: its id
// is derived from the move's, so writing it again is a no-op.
func ActionEntry(in ActionInput, msg string) store.TimelineEntry {
	return store.TimelineEntry{
		ID: in.Entry.ID + "/a" + strconv.Itoa(in.Index), ItemID: in.Item.ID, Kind: store.EntryAction,
		Action: in.Action.Type, Message: msg, EventID: in.Entry.EventID, Actor: in.Entry.Actor, At: in.Entry.At,
	}
}

// Action results reported to an ActionObserver.
const (
	ActionOK      = "ok"      // done
	ActionRetry   = "retry"   // failed, will be tried again
	ActionFailed  = "failed"  // failed for good
	ActionSkipped = "skipped" // not run: the item left the stage, or nothing to do
)

// ActionObserver is told about every action attempt, for metrics. Methods
// must be cheap and safe for concurrent use.
type ActionObserver interface {
	// ActionRan reports one attempt: its result, how long it took, and for
	// a success how long after the stage entry it happened.
	ActionRan(typ, result string, took, sinceEntry time.Duration)
}

type nopActionObserver struct{}

func (nopActionObserver) ActionRan(string, string, time.Duration, time.Duration) {}

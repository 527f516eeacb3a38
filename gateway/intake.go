package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// intake records events in the store's durable log and counts what it did.
// It implements connectors.Intake.
type intake struct {
	st  store.Store
	m   *metrics
	log *slog.Logger
}

var _ connectors.BatchIntake = (*intake)(nil)

// Submit implements connectors.Intake: a nil error means durable.
func (in *intake) Submit(ctx context.Context, ev *normalize.Event) (connectors.Result, error) {
	if ev.ID == "" || !ev.Type.Valid() {
		return connectors.Result{}, fmt.Errorf("intake: event %q of type %q is not valid", ev.ID, ev.Type)
	}
	res, err := in.st.Append(ctx, ev)
	if err != nil {
		in.refused(ev, err)
		return connectors.Result{}, fmt.Errorf("intake %s: %w: %w", ev.ID, connectors.ErrUnavailable, err)
	}
	return in.count(ev, res), nil
}

// refused counts and logs the store's refusal of ev.
func (in *intake) refused(ev *normalize.Event, err error) {
	in.m.unavailable.WithLabelValues(ev.Connector).Inc()
	in.log.Warn("intake: store refused event", "connector", ev.Connector, "event_id", ev.ID, "err", err)
}

// count counts what the store did with ev.
func (in *intake) count(ev *normalize.Event, res store.AppendResult) connectors.Result {
	if res.Duplicate {
		in.m.duplicate.WithLabelValues(ev.Connector).Inc()
	} else {
		in.m.received.WithLabelValues(ev.Connector).Inc()
	}
	return connectors.Result{EventID: ev.ID, Duplicate: res.Duplicate}
}

var _ connectors.PutIntake = (*intake)(nil)

// CanPut implements connectors.PutIntake: true when the store is a
// store.EventsPutter.
func (in *intake) CanPut() bool {
	_, ok := in.st.(store.EventsPutter)
	return ok
}

// SubmitWithPut implements connectors.PutIntake when the store is a
// store.EventsPutter (bolt), and answers errors.ErrUnsupported otherwise
// (Redis: the connector makes the steps one by one).
func (in *intake) SubmitWithPut(ctx context.Context, evs []*normalize.Event, a store.ListAppend, p store.RecordPut) (connectors.PutResult, error) {
	ep, ok := in.st.(store.EventsPutter)
	if !ok {
		return connectors.PutResult{}, errors.ErrUnsupported
	}
	if err := valid(evs); err != nil {
		return connectors.PutResult{}, err
	}
	r, err := ep.AppendListPutRecordEvents(ctx, a, p, evs)
	out := connectors.PutResult{Seq: r.Seq, Duplicate: r.Duplicate, Version: r.Version}
	switch {
	case errors.Is(err, store.ErrConflict):
		return out, fmt.Errorf("intake: %w", err)
	case err != nil:
		for _, ev := range evs {
			in.refused(ev, err)
		}
		return connectors.PutResult{}, fmt.Errorf("intake: %w: %w", connectors.ErrUnavailable, err)
	}
	out.Events = make([]connectors.Result, len(evs))
	for i, ev := range evs {
		out.Events[i] = in.count(ev, r.Events[i])
	}
	return out, nil
}

// valid refuses a batch with an event that has no id or no known type.
func valid(evs []*normalize.Event) error {
	for _, ev := range evs {
		if ev.ID == "" || !ev.Type.Valid() {
			return fmt.Errorf("intake: event %q of type %q is not valid", ev.ID, ev.Type)
		}
	}
	return nil
}

// SubmitBatch implements connectors.BatchIntake. Every event is appended
// at once: both stores group concurrent appends (bolt's group committer,
// Redis's grouping appender), so a batch costs a few store writes, not
// one each. An invalid event fails the batch before anything is written.
func (in *intake) SubmitBatch(ctx context.Context, evs []*normalize.Event) ([]connectors.Result, error) {
	if err := valid(evs); err != nil {
		return nil, err
	}
	return connectors.SubmitEach(ctx, in, evs)
}

// Reject implements connectors.Intake.
func (in *intake) Reject(connector, reason string) {
	in.m.rejected.WithLabelValues(connector, reason).Inc()
}

// unavailable reports whether err means the store could not be reached.
func unavailable(err error) bool {
	return errors.Is(err, connectors.ErrUnavailable) || errors.Is(err, store.ErrUnavailable) ||
		errors.Is(err, context.DeadlineExceeded)
}

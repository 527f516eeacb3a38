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
		in.m.unavailable.WithLabelValues(ev.Connector).Inc()
		in.log.Warn("intake: store refused event", "connector", ev.Connector, "event_id", ev.ID, "err", err)
		return connectors.Result{}, fmt.Errorf("intake %s: %w: %w", ev.ID, connectors.ErrUnavailable, err)
	}
	if res.Duplicate {
		in.m.duplicate.WithLabelValues(ev.Connector).Inc()
	} else {
		in.m.received.WithLabelValues(ev.Connector).Inc()
	}
	return connectors.Result{EventID: ev.ID, Duplicate: res.Duplicate}, nil
}

// SubmitBatch implements connectors.BatchIntake. Every event is appended
// at once: both stores group concurrent appends (bolt's group committer,
// Redis's grouping appender), so a batch costs a few store writes, not
// one each. An invalid event fails the batch before anything is written.
func (in *intake) SubmitBatch(ctx context.Context, evs []*normalize.Event) ([]connectors.Result, error) {
	for _, ev := range evs {
		if ev.ID == "" || !ev.Type.Valid() {
			return nil, fmt.Errorf("intake: event %q of type %q is not valid", ev.ID, ev.Type)
		}
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

package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/stagegate/stagegate/store"
)

// Defaults of the store outage log.
const (
	outageRemindEvery = time.Minute     // "store still unavailable" while it lasts
	outageProbeEvery  = time.Second     // how often a down store is pinged
	outageProbeWait   = 2 * time.Second // one ping's timeout
)

// outageLog keeps a store outage from flooding the log. Every component
// (engine, actions, intake, connectors, readyz) warns on its own when a
// store call fails, several times a second in all while the store is down.
// Its handler (wrap) turns those warnings — records at warn level carrying
// an error that is store.ErrUnavailable — into debug records, and logs
// instead one warning when the outage starts, a reminder every
// outageRemindEvery while it lasts, and one "store recovered" line when a
// ping answers again.
type outageLog struct {
	log    *slog.Logger // the unwrapped logger: the outage's own lines
	now    func() time.Time
	ping   func(context.Context) error // set once the store is open
	remind time.Duration
	probe  time.Duration

	wake chan struct{} // an outage started: the prober starts pinging

	mu         sync.Mutex
	down       bool
	since      time.Time
	suppressed int // warnings turned into debug records during the outage
}

func newOutageLog(log *slog.Logger, now func() time.Time) *outageLog {
	return &outageLog{log: log, now: now, remind: outageRemindEvery, probe: outageProbeEvery, wake: make(chan struct{}, 1)}
}

// wrap returns h with the outage's rate limit in front of it.
func (o *outageLog) wrap(h slog.Handler) slog.Handler { return outageHandler{next: h, o: o} }

// failed records a warning caused by the outage and reports whether it
// started the outage.
func (o *outageLog) failed() (started bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.suppressed++
	if o.down {
		return false
	}
	o.down, o.since = true, o.now()
	return true
}

// run pings the store while an outage lasts, reminds of it every remind,
// and logs its end. It returns when ctx is done.
func (o *outageLog) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		}
		o.watch(ctx)
	}
}

// watch pings the store every probe until it answers (or ctx is done).
func (o *outageLog) watch(ctx context.Context) {
	t := time.NewTicker(o.probe)
	defer t.Stop()
	o.mu.Lock()
	nextRemind := o.since.Add(o.remind)
	o.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, outageProbeWait)
		err := o.ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		o.mu.Lock()
		since, n := o.since, o.suppressed
		if err == nil {
			o.down, o.suppressed = false, 0
		}
		o.mu.Unlock()
		now := o.now()
		if err == nil {
			o.log.Info("store recovered", "down_for", now.Sub(since).Round(time.Millisecond), "warnings_at_debug", n)
			return
		}
		if !now.Before(nextRemind) {
			o.log.Warn("store still unavailable", "down_for", now.Sub(since).Round(time.Second),
				"warnings_at_debug", n, "err", err)
			nextRemind = now.Add(o.remind)
		}
	}
}

// outageHandler is the slog.Handler of outageLog.wrap.
type outageHandler struct {
	next slog.Handler
	o    *outageLog
}

func (h outageHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h outageHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn || r.Level >= slog.LevelError {
		return h.next.Handle(ctx, r)
	}
	err := unavailableErr(r)
	if err == nil {
		return h.next.Handle(ctx, r)
	}
	if h.o.failed() {
		h.o.log.Warn("store unavailable: the warnings it causes are logged at debug until it recovers",
			"first", r.Message, "err", err)
		select {
		case h.o.wake <- struct{}{}:
		default:
		}
	}
	if !h.next.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	r = r.Clone()
	r.Level = slog.LevelDebug
	return h.next.Handle(ctx, r)
}

func (h outageHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return outageHandler{next: h.next.WithAttrs(as), o: h.o}
}

func (h outageHandler) WithGroup(name string) slog.Handler {
	return outageHandler{next: h.next.WithGroup(name), o: h.o}
}

// unavailableErr returns the first of r's attributes that is an error
// wrapping store.ErrUnavailable, or nil.
func unavailableErr(r slog.Record) error {
	var found error
	r.Attrs(func(a slog.Attr) bool {
		if e, ok := a.Value.Any().(error); ok && errors.Is(e, store.ErrUnavailable) {
			found = e
		}
		return found == nil
	})
	return found
}

package tracking

import (
	"context"
	"net/http"
	"time"

	"github.com/stagegate/stagegate/connectors"
)

// hitFacts is what a hit keeps of its request. A hit may be recorded after
// its answer, when the handler has returned and the request is not read
// again, so everything recording needs is copied here first.
type hitFacts struct {
	at           time.Time
	method       string
	ua, ip       string
	remote, path string // for refusal logs
}

func (t *Tracker) factsOf(r *http.Request) hitFacts {
	return hitFacts{at: t.Now(), method: r.Method, ua: userAgent(r), ip: t.clientIP(r),
		remote: r.RemoteAddr, path: r.URL.Path}
}

// pendingHits runs the recording of hits answered before they are stored
// (pending_hits): each in its own goroutine holding one of the slots, so
// that at most cap(slots) hits are answered and not yet stored, and the
// hit writer groups their writes as it groups those of waiting requests.
// With no slot free the caller records the hit itself, before its answer.
type pendingHits struct {
	slots   chan struct{}
	timeout time.Duration
}

func newPendingHits(n int, timeout time.Duration) *pendingHits {
	return &pendingHits{slots: make(chan struct{}, n), timeout: timeout}
}

// later runs record in the background and reports true, or reports false
// (and runs nothing) when no slot is free. record gets a context bounded
// by the store timeout, as a request's recording does.
func (p *pendingHits) later(record func(ctx context.Context)) bool {
	select {
	case p.slots <- struct{}{}:
	default:
		return false
	}
	go func() {
		defer func() { <-p.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		defer cancel()
		record(ctx)
	}()
	return true
}

// pending is the number of hits answered and not yet stored.
func (p *pendingHits) pending() int { return len(p.slots) }

// wait returns when every hit answered before it was called has been
// recorded (or has failed and been counted), or when ctx ends. It holds
// every slot for a moment: hits arriving meanwhile are recorded before
// their answer.
func (p *pendingHits) wait(ctx context.Context) error {
	held := 0
	defer func() {
		for range held {
			<-p.slots
		}
	}()
	for held < cap(p.slots) {
		select {
		case p.slots <- struct{}{}:
			held++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

var _ connectors.Service = (*Tracker)(nil)

// Run implements connectors.Service: when ctx ends (the gateway has stopped
// taking requests), it waits for the hits answered before they were stored,
// so that a graceful stop loses none. Each is bounded by store_timeout.
func (t *Tracker) Run(ctx context.Context) error {
	<-ctx.Done()
	wctx, cancel := context.WithTimeout(context.Background(), 2*t.cfg.StoreTimeout+time.Second)
	defer cancel()
	if n := t.later.pending(); n > 0 {
		t.Logger().Info("tracking: storing the hits answered before a stop", "pending", n)
	}
	if err := t.later.wait(wctx); err != nil {
		t.Logger().Warn("tracking: hits still pending at stop", "pending", t.later.pending(), "err", err)
	}
	return nil
}

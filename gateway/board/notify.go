package board

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/store"
)

// Topic is the Broadcaster topic of the board's change messages.
const Topic = "board/changes"

// notifyDelay is how long a change waits for others to be published with
// it: a burst of events costs one message per process and delay, and a
// card still moves well within a second.
const notifyDelay = 100 * time.Millisecond

// heartbeat is how often an idle stream sends a comment, so that proxies
// keep it open and a browser notices a dead one.
const heartbeat = 15 * time.Second

// change is the message on Topic: what kinds of things changed.
type change struct {
	Kinds []string `json:"kinds"`
}

// notifier publishes coalesced change messages. poke never blocks the
// engine: it marks what changed and, if no publication is pending, starts
// a timer.
type notifier struct {
	bc     store.Broadcaster
	log    *slog.Logger
	closed <-chan struct{}

	mu      sync.Mutex
	pending map[string]bool
	timer   bool
}

func newNotifier(bc store.Broadcaster, log *slog.Logger, closed <-chan struct{}) *notifier {
	return &notifier{bc: bc, log: log, closed: closed, pending: map[string]bool{}}
}

func (n *notifier) poke(kind string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pending[kind] = true
	if !n.timer {
		n.timer = true
		time.AfterFunc(notifyDelay, n.flush)
	}
}

func (n *notifier) flush() {
	n.mu.Lock()
	var c change
	for k := range n.pending {
		c.Kinds = append(c.Kinds, k)
	}
	clear(n.pending)
	n.timer = false
	n.mu.Unlock()
	select {
	case <-n.closed:
		return // shutting down: the store may be closing
	default:
	}
	slices.Sort(c.Kinds)
	msg, _ := json.Marshal(c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := n.bc.Publish(ctx, Topic, msg); err != nil {
		n.log.Debug("board: publish change", "err", err)
	}
}

// hub shares one subscription to Topic among the open streams of this
// process: it subscribes when the first stream opens and unsubscribes when
// the last one closes.
type hub struct {
	bc  store.Broadcaster
	log *slog.Logger

	mu     sync.Mutex
	subs   map[chan []byte]struct{}
	cancel context.CancelFunc
}

func newHub(bc store.Broadcaster, log *slog.Logger) *hub {
	return &hub{bc: bc, log: log, subs: map[chan []byte]struct{}{}}
}

// join returns a channel of change messages and the function that leaves.
// Once it returns, every message published is delivered (best effort, as
// the Broadcaster promises).
func (h *hub) join() (<-chan []byte, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) == 0 {
		ctx, cancel := context.WithCancel(context.Background())
		in, err := h.bc.Subscribe(ctx, Topic)
		if err != nil {
			cancel()
			return nil, nil, fmt.Errorf("board: subscribe %s: %w", Topic, err)
		}
		h.cancel = cancel
		go h.pump(in)
	}
	ch := make(chan []byte, 16)
	h.subs[ch] = struct{}{}
	return ch, func() { h.leave(ch) }, nil
}

func (h *hub) leave(ch chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, ch)
	if len(h.subs) == 0 && h.cancel != nil {
		h.cancel()
		h.cancel = nil
	}
}

// pump hands every message to every stream without waiting on a slow one:
// a full stream loses the message, and the next one makes its page fetch
// everything anyway.
func (h *hub) pump(in <-chan []byte) {
	for msg := range in {
		h.mu.Lock()
		for ch := range h.subs {
			select {
			case ch <- msg:
			default:
			}
		}
		h.mu.Unlock()
	}
}

// apiStream answers GET /api/v1/board/stream: Server-Sent Events. The
// first event, "hello", says the stream is subscribed (the page then
// fetches what it shows, so it misses nothing from before); each "change"
// event carries a change message. The page reads it with fetch() so the
// token travels in the Authorization header, never in the URL.
func (b *Board) apiStream(w http.ResponseWriter, r *http.Request) {
	ch, leave, err := b.hub.join()
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "store unavailable, try again")
			return
		}
		b.log.Error("board: stream", "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	defer leave()
	ctx, cancel := b.ctx(r.Context())
	defer cancel()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(format string, args ...any) bool {
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("retry: 1000\nevent: hello\ndata: {}\n\n") {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-ch:
			if !send("event: change\ndata: %s\n\n", msg) {
				return
			}
		case <-tick.C:
			if !send(": ping\n\n") {
				return
			}
		}
	}
}

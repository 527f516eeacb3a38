package livechat

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/stagegate/stagegate/store"
)

// The hub delivers, in each gateway process, what happens in a
// conversation to the local connections watching it. Every change is first
// made durable in the store, then published on the connector's topic of
// the store's Broadcaster; every process (this one included) receives it.
// Broadcasts are best effort, so the hub never trusts them to be complete:
// per conversation it forwards messages strictly in sequence order,
// reading from the store whatever sequence numbers it did not receive, and
// it compares recently active conversations with the store every
// limits.resync, in case the last message of a burst was lost.

// activeWindow is how long after its last message a conversation is still
// compared with the store.
const activeWindow = time.Minute

// maxPending bounds the broadcasts kept for a conversation whose first
// watcher is still reading its history.
const maxPending = 1024

// bcast is one broadcast on the connector's topic.
type bcast struct {
	Kind  string   `json:"k"` // m: message, s: summary, t: typing
	Msg   *Message `json:"m,omitempty"`
	Sum   *Summary `json:"s,omitempty"`
	Conv  string   `json:"c,omitempty"`
	From  string   `json:"f,omitempty"`
	Agent string   `json:"a,omitempty"`
}

// convWatch is one conversation that local sessions watch.
type convWatch struct {
	id       string
	mu       sync.Mutex // guards the fields below; taken before a session's mu
	ready    bool       // last is known
	last     int64      // every message up to last was forwarded
	pending  []Message
	overflow bool
	watchers map[*session]struct{}
	active   time.Time
}

type hub struct {
	st      *state
	log     *slog.Logger
	history int

	mu     sync.Mutex
	convs  map[string]*convWatch
	agents map[*session]struct{}
}

func newHub(st *state, log *slog.Logger, history int) *hub {
	return &hub{st: st, log: log, history: history, convs: map[string]*convWatch{}, agents: map[*session]struct{}{}}
}

// add makes s a watcher of conversation id.
func (h *hub) add(id string, s *session) *convWatch {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.convs[id]
	if w == nil {
		w = &convWatch{id: id, watchers: map[*session]struct{}{}}
		h.convs[id] = w
	}
	w.mu.Lock()
	w.watchers[s] = struct{}{}
	w.active = time.Now()
	w.mu.Unlock()
	return w
}

// remove stops s watching conversation id.
func (h *hub) remove(id string, s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.convs[id]
	if w == nil {
		return
	}
	w.mu.Lock()
	delete(w.watchers, s)
	empty := len(w.watchers) == 0
	w.mu.Unlock()
	if empty {
		delete(h.convs, id)
	}
}

func (h *hub) addAgent(s *session) {
	h.mu.Lock()
	h.agents[s] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) removeAgent(s *session) {
	h.mu.Lock()
	delete(h.agents, s)
	h.mu.Unlock()
}

// markReady tells the hub that a watcher of w has read the conversation
// up to last, after it started watching. The first such report fixes where
// forwarding starts; broadcasts received meanwhile are then processed.
func (h *hub) markReady(ctx context.Context, w *convWatch, last int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ready {
		return
	}
	w.ready, w.last = true, last
	pending, overflow := w.pending, w.overflow
	w.pending, w.overflow = nil, false
	if overflow {
		h.fill(ctx, w, 0)
		return
	}
	slices.SortFunc(pending, func(a, b Message) int { return int(a.Seq - b.Seq) })
	for _, m := range pending {
		h.advance(ctx, w, m)
	}
}

// dispatch handles one broadcast.
func (h *hub) dispatch(ctx context.Context, b bcast) {
	switch b.Kind {
	case "m":
		if b.Msg == nil {
			return
		}
		if w := h.watch(b.Msg.ConversationID); w != nil {
			w.mu.Lock()
			if !w.ready {
				if len(w.pending) < maxPending {
					w.pending = append(w.pending, *b.Msg)
				} else {
					w.overflow = true
				}
			} else {
				h.advance(ctx, w, *b.Msg)
			}
			w.mu.Unlock()
		}
	case "s":
		if b.Sum == nil {
			return
		}
		frame := encode(Out{Type: TypeConversation, Conversation: b.Sum})
		for _, s := range h.agentList() {
			s.summary(frame)
		}
	case "t":
		w := h.watch(b.Conv)
		if w == nil {
			return
		}
		frame := encode(Out{Type: TypeTyping, ConversationID: b.Conv, From: b.From, Agent: b.Agent})
		w.mu.Lock()
		for s := range w.watchers {
			if (s.agent == "") == (b.From == FromAgent) && s.agent != b.Agent {
				s.typing(b.Conv, frame)
			}
		}
		w.mu.Unlock()
	}
}

func (h *hub) watch(id string) *convWatch {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.convs[id]
}

func (h *hub) agentList() []*session {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*session, 0, len(h.agents))
	for s := range h.agents {
		out = append(out, s)
	}
	return out
}

// advance forwards m when it is the next message of w, or fills the gap
// before it from the store. Called with w.mu held.
func (h *hub) advance(ctx context.Context, w *convWatch, m Message) {
	switch {
	case m.Seq <= w.last:
	case m.Seq == w.last+1:
		h.forward(w, m)
	default:
		h.fill(ctx, w, m.Seq-w.last)
	}
}

// fill reads the messages after w.last from the store (at most n; 0 means
// up to the history limit) and forwards them. Called with w.mu held.
func (h *hub) fill(ctx context.Context, w *convWatch, n int64) {
	if n <= 0 || n > int64(h.history)+16 {
		n = int64(h.history) + 16
	}
	msgs, err := h.st.readMessages(ctx, w.id, w.last, int(n))
	if err != nil {
		h.log.Warn("livechat: reading missed messages failed; retrying at the next resync",
			"conversation", w.id, "err", err)
		return
	}
	for _, m := range msgs {
		if m.Seq == w.last+1 {
			h.forward(w, m)
		}
	}
}

func (h *hub) forward(w *convWatch, m Message) {
	w.last = m.Seq
	w.active = time.Now()
	frame := encodeMessage(m)
	for s := range w.watchers {
		s.deliver(m, frame)
	}
}

// resync compares with the store each conversation that was active in
// the last activeWindow but quiet for the last half interval: a lost
// broadcast in a conversation that goes on shows as a gap at the next
// message, so only the last one before a pause needs this.
func (h *hub) resync(ctx context.Context, interval time.Duration) {
	h.mu.Lock()
	ws := make([]*convWatch, 0, len(h.convs))
	for _, w := range h.convs {
		ws = append(ws, w)
	}
	h.mu.Unlock()
	now := time.Now()
	oldest, newest := now.Add(-activeWindow), now.Add(-interval/2)
	for _, w := range ws {
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		if w.ready && len(w.watchers) > 0 && w.active.After(oldest) && w.active.Before(newest) {
			h.fill(ctx, w, 0)
		}
		w.mu.Unlock()
	}
}

// run receives the connector's broadcasts until ctx is done, subscribing
// again after a failure, and resyncs every interval.
func (h *hub) run(ctx context.Context, bc store.Broadcaster, topic string, interval time.Duration) {
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				h.resync(ctx, interval)
			}
		}
	}()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		ch, err := bc.Subscribe(ctx, topic)
		if err != nil {
			h.log.Warn("livechat: subscribe failed; retrying", "topic", topic, "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for raw := range ch {
			var b bcast
			if err := json.Unmarshal(raw, &b); err != nil {
				h.log.Warn("livechat: bad broadcast ignored", "err", err)
				continue
			}
			h.dispatch(ctx, b)
		}
	}
}

// localBroadcaster is the in-process Broadcaster used when the store has
// none: one gateway process.
type localBroadcaster struct {
	mu   sync.Mutex
	subs map[string][]chan []byte
}

// Publish implements store.Broadcaster.
func (l *localBroadcaster) Publish(_ context.Context, topic string, msg []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ch := range l.subs[topic] {
		select {
		case ch <- msg:
		default:
		}
	}
	return nil
}

// Subscribe implements store.Broadcaster.
func (l *localBroadcaster) Subscribe(ctx context.Context, topic string) (<-chan []byte, error) {
	ch := make(chan []byte, 1024)
	l.mu.Lock()
	if l.subs == nil {
		l.subs = map[string][]chan []byte{}
	}
	l.subs[topic] = append(l.subs[topic], ch)
	l.mu.Unlock()
	go func() {
		<-ctx.Done()
		l.mu.Lock()
		defer l.mu.Unlock()
		l.subs[topic] = slices.DeleteFunc(l.subs[topic], func(c chan []byte) bool { return c == ch })
		close(ch)
	}()
	return ch, nil
}

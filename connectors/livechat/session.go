package livechat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
)

// session is one authenticated (agent) or identified (visitor) websocket.
// Each conversation it watches goes through two phases: while the session
// reads the history, messages forwarded by the hub are kept aside; once the
// history frame is queued they follow it, each message exactly once and in
// order. A hole in the sequence (which the hub does not produce) drops the
// connection, and the client resumes from its cursor.
type session struct {
	*conn
	c     *Connector
	agent string // the agent's name; "" for a visitor

	mu      sync.Mutex // guards the fields below
	watches map[string]*watchState
	// visitors
	visitorID string
	channel   string
	page      string
	ident     identity
	conv      *Conversation // the visitor's current conversation
	// agents: conversation frames wait until the welcome was queued
	welcomed bool
	early    [][]byte
}

type watchState struct {
	ready   bool
	last    int64
	pending []Message
}

type identity struct{ Name, Email, Phone string }

func (c *Connector) newSession(ws *websocket.Conn, agent string) *session {
	return &session{conn: newConn(ws, &c.cfg.Limits), c: c, agent: agent}
}

// deliver is called by the hub, in sequence order, for each message of a
// watched conversation.
func (s *session) deliver(m Message, frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.watches[m.ConversationID]
	if w == nil {
		return
	}
	if !w.ready {
		if len(w.pending) >= maxPending {
			s.kill()
			return
		}
		w.pending = append(w.pending, m)
		return
	}
	s.send(w, m, frame)
}

// send queues m after the messages already sent. Called with s.mu held.
func (s *session) send(w *watchState, m Message, frame []byte) {
	switch {
	case m.Seq <= w.last:
		return
	case m.Seq > w.last+1:
		s.c.log.Warn("livechat: sequence gap; dropping the connection so that it resumes",
			"conversation", m.ConversationID, "have", w.last, "got", m.Seq)
		s.kill()
		return
	}
	w.last = m.Seq
	if s.conv != nil && s.conv.ID == m.ConversationID && m.From == FromSystem {
		switch m.Event {
		case EventAccepted:
			s.conv.Status, s.conv.Agent = StatusOpen, m.Agent
		case EventClosed:
			s.conv.Status = StatusClosed
		}
	}
	if frame == nil {
		frame = encodeMessage(m)
	}
	s.enqueue(frame)
}

// watch starts watching conversation id from after: it registers with the
// hub, reads the messages after the cursor, queues frame(messages) — or
// each message as a message frame when frame is nil — and then whatever
// arrived meanwhile. A cursor beyond the end of the conversation counts as
// no cursor.
func (s *session) watch(ctx context.Context, id string, after int64, frame func([]Message) []byte) error {
	s.mu.Lock()
	if s.watches == nil {
		s.watches = map[string]*watchState{}
	}
	s.watches[id] = &watchState{}
	s.mu.Unlock()
	w := s.c.hub.add(id, s)
	msgs, err := s.c.st.readMessages(ctx, id, after, s.c.cfg.Limits.History+16)
	if err == nil && len(msgs) == 0 && after > 0 {
		var probe []Message
		if probe, err = s.c.st.readMessages(ctx, id, after-1, 1); err == nil && len(probe) == 0 {
			after = 0
			msgs, err = s.c.st.readMessages(ctx, id, 0, s.c.cfg.Limits.History+16)
		}
	}
	if err != nil {
		s.unwatch(id)
		return err
	}
	last := after
	if len(msgs) > 0 {
		last = msgs[len(msgs)-1].Seq
	}
	s.c.hub.markReady(ctx, w, last)

	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.watches[id]
	if ws == nil {
		return nil
	}
	ws.ready, ws.last = true, last
	if frame != nil {
		s.enqueue(frame(msgs))
	} else {
		ws.last = after
		for _, m := range msgs {
			s.send(ws, m, nil)
		}
	}
	pending := ws.pending
	ws.pending = nil
	slices.SortFunc(pending, func(a, b Message) int { return int(a.Seq - b.Seq) })
	for _, m := range pending {
		s.send(ws, m, nil)
	}
	return nil
}

// unwatch stops watching conversation id.
func (s *session) unwatch(id string) {
	s.c.hub.remove(id, s)
	s.mu.Lock()
	delete(s.watches, id)
	s.mu.Unlock()
}

// summary queues a conversation frame for an agent.
func (s *session) summary(frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.welcomed {
		s.early = append(s.early, frame)
		return
	}
	s.enqueue(frame)
}

// typing queues a typing frame when the conversation's history was sent.
func (s *session) typing(id string, frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.watches[id]; w != nil && w.ready {
		s.enqueue(frame)
	}
}

// end releases everything the session holds in the hub.
func (s *session) end() {
	s.finish()
	s.mu.Lock()
	ids := make([]string, 0, len(s.watches))
	for id := range s.watches {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.c.hub.remove(id, s)
	}
	if s.agent != "" {
		s.c.hub.removeAgent(s)
	}
}

// fail answers a frame that could not be handled: an error frame, with
// retryable for store trouble.
func (s *session) fail(ref string, err error) {
	var ce *codedError
	switch {
	case errors.As(err, &ce):
		s.enqueue(errorFrame(ce.code, ce.msg, ref, false))
	case errors.Is(err, errUnavailable):
		s.enqueue(errorFrame(CodeUnavailable, "the message could not be recorded; send it again", ref, true))
	default:
		s.c.log.Error("livechat: frame failed", "ref", ref, "err", err)
		s.enqueue(errorFrame(CodeInternal, "the message could not be recorded; send it again", ref, true))
	}
}

// codedError is a refusal with an error code and a message for the client.
type codedError struct{ code, msg string }

func (e *codedError) Error() string { return e.code + ": " + e.msg }

func refusal(code, msg string) error { return &codedError{code, msg} }

// errUnavailable marks store or intake trouble: the client should retry.
var errUnavailable = errors.New("livechat: store unavailable")

// publish broadcasts b on the connector's topic; a failure only delays
// delivery until the next resync.
func (c *Connector) publish(ctx context.Context, b bcast) {
	if err := c.bc.Publish(ctx, c.topic, encode(b)); err != nil {
		c.log.Warn("livechat: publish failed; receivers catch up at the next resync", "err", err)
	}
}

func (c *Connector) publishMessage(ctx context.Context, m Message) {
	c.publish(ctx, bcast{Kind: "m", Msg: &m})
}

func (c *Connector) publishSummary(ctx context.Context, conv Conversation) {
	sum := conv.Summary()
	c.publish(ctx, bcast{Kind: "s", Sum: &sum})
}

// submit hands the events to the intake, in order; an unavailable intake
// is errUnavailable.
func (c *Connector) submit(ctx context.Context, evs ...*normalize.Event) error {
	for _, ev := range evs {
		res, err := c.intake.Submit(ctx, ev)
		if errors.Is(err, connectors.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			c.log.Warn("livechat: event not recorded", "event_id", ev.ID, "err", err)
			return errors.Join(errUnavailable, err)
		}
		if err != nil {
			return fmt.Errorf("submit %s: %w", ev.ID, err)
		}
		c.log.Debug("event accepted", "event_id", ev.ID, "type", ev.Type, "duplicate", res.Duplicate)
	}
	return nil
}

package livechat

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gorilla/websocket"
)

// serveAgent runs one agent websocket: hello with the agent's token (or an
// Authorization: Bearer header on the upgrade), then queue and
// conversation work.
func (c *Connector) serveAgent(w http.ResponseWriter, r *http.Request) {
	if !c.agentOrigin(r) {
		c.Refuse(w, r, http.StatusForbidden, "forbidden_origin", "this origin may not open the agent console")
		return
	}
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s, ok := c.upgrade(w, r, "")
	if !ok {
		return
	}
	// The handler returns and the connection lives on in a goroutine of
	// its own: net/http's goroutine has grown a stack that an idle
	// connection does not need.
	helloed := false
	go c.runSession(s, func(f Frame) bool {
		if !helloed {
			helloed = s.agentAuth(f, bearer)
			return helloed
		}
		ctx, cancel := c.opContext()
		defer cancel()
		if err := s.agentFrame(ctx, f); err != nil {
			ref := f.ID
			if ref == "" {
				ref = f.ConversationID
			}
			s.fail(ref, err)
		}
		return true
	})
}

// agentAuth handles the first frame of an agent connection: a hello with
// a valid token (or the bearer token of the upgrade request).
func (s *session) agentAuth(f Frame, bearer string) bool {
	c := s.c
	if f.Type != TypeHello {
		s.enqueue(errorFrame(CodeNotHello, "the first frame must be hello", f.ID, false))
		s.closeWith(websocket.ClosePolicyViolation, CodeNotHello)
		return false
	}
	token := f.Token
	if token == "" {
		token = bearer
	}
	agent, ok := c.cfg.agentByToken(token)
	if !ok {
		c.intake.Reject(c.name, CodeUnauthorized)
		s.enqueue(errorFrame(CodeUnauthorized, "unknown agent token", "", false))
		s.closeWith(websocket.ClosePolicyViolation, CodeUnauthorized)
		return false
	}
	s.agent = agent.Name
	if err := s.agentHello(f); err != nil {
		s.fail("", err)
		s.closeWith(websocket.CloseTryAgainLater, "try again")
		return false
	}
	return true
}

// agentHello queues the welcome with the queue, then the history of each
// conversation named by a resume cursor.
func (s *session) agentHello(f Frame) error {
	c := s.c
	ctx, cancel := c.opContext()
	defer cancel()
	c.hub.addAgent(s)
	queue, err := c.st.queue(ctx, c.now(), c.cfg.QueueWindow)
	if err != nil {
		return errors.Join(errUnavailable, err)
	}
	s.mu.Lock()
	s.enqueue(encode(Out{Type: TypeWelcome, Agent: s.agent, Queue: queue, Title: c.cfg.Title}))
	for _, fr := range s.early {
		s.enqueue(fr)
	}
	s.welcomed, s.early = true, nil
	s.mu.Unlock()
	for _, cur := range f.Cursors {
		if err := s.open(ctx, cur.ConversationID, cur.LastSeq); err != nil {
			s.fail(cur.ConversationID, err)
		}
	}
	return nil
}

func (s *session) agentFrame(ctx context.Context, f Frame) error {
	if f.ConversationID == "" {
		return refusal(CodeBadField, "conversation_id: required")
	}
	switch f.Type {
	case TypeOpen:
		return s.open(ctx, f.ConversationID, f.LastSeq)
	case TypeAccept:
		_, err := s.accept(ctx, f.ConversationID, f.LastSeq)
		return err
	case TypeMessage:
		return s.reply(ctx, f)
	case TypeClose:
		_, err := s.c.closeConversation(ctx, f.ConversationID, s.agent)
		return err
	case TypeTyping:
		s.c.publish(ctx, bcast{Kind: "t", Conv: f.ConversationID, From: FromAgent, Agent: s.agent})
		return nil
	}
	return refusal(CodeBadFrame, "agents cannot send "+f.Type)
}

// open starts watching a conversation: a history frame with the messages
// after lastSeq, then each new message.
func (s *session) open(ctx context.Context, id string, lastSeq int64) error {
	conv, found, err := s.c.st.getConversation(ctx, id)
	if err != nil {
		return errors.Join(errUnavailable, err)
	}
	if !found {
		return refusal(CodeNotFound, "no conversation "+id)
	}
	return s.openConv(ctx, conv, lastSeq)
}

// openConv sends the history after lastSeq and then each new message; a
// conversation the session already watches only gets a conversation
// frame, since its messages are on their way.
func (s *session) openConv(ctx context.Context, conv Conversation, lastSeq int64) error {
	sum := conv.Summary()
	s.mu.Lock()
	_, watching := s.watches[conv.ID]
	s.mu.Unlock()
	if watching {
		s.enqueue(encode(Out{Type: TypeConversation, Conversation: &sum}))
		return nil
	}
	err := s.watch(ctx, conv.ID, lastSeq, func(msgs []Message) []byte {
		return encode(Out{Type: TypeHistory, Conversation: &sum, Messages: msgs})
	})
	if err == nil {
		s.sendItems(ctx, conv)
	}
	return err
}

// sendItems tells the agent the CRM items of the conversation's contact
// (found by its email, phone or visitor id), after its history. Best
// effort: a lookup that fails is logged and shows no items.
func (s *session) sendItems(ctx context.Context, conv Conversation) {
	if s.c.finder == nil {
		return
	}
	items, err := s.c.finder.ItemsFor(ctx, conv.subject())
	if err != nil {
		s.c.log.Debug("livechat: items of a conversation", "conversation", conv.ID, "err", err)
		return
	}
	refs := make([]ItemRef, 0, len(items))
	for _, it := range items {
		refs = append(refs, ItemRef{ID: it.ID, Pipeline: it.Pipeline, Stage: it.Stage, Closed: it.Closed})
	}
	s.enqueue(encode(Out{Type: TypeItems, ConversationID: conv.ID, Items: refs}))
}

// accept makes the agent the conversation's agent, records chat.accepted
// with the reaction time, tells everyone and opens the conversation for
// the agent. Accepting again is harmless; a conversation another agent
// accepted is refused.
func (s *session) accept(ctx context.Context, id string, lastSeq int64) (Conversation, error) {
	c := s.c
	now := c.now()
	conv, err := c.st.updateConversation(ctx, id, func(cv *Conversation) (bool, error) {
		switch {
		case cv.Status == StatusClosed:
			return false, refusal(CodeClosed, "the conversation is closed")
		case cv.Status == StatusOpen && cv.Agent != s.agent:
			return false, refusal(CodeTaken, "agent "+cv.Agent+" accepted the conversation")
		case cv.Status == StatusOpen:
			return false, nil
		}
		cv.Status, cv.Agent, cv.AcceptedAt, cv.UpdatedAt = StatusOpen, s.agent, now, now
		return true, nil
	})
	if errors.Is(err, errGone) {
		return conv, refusal(CodeNotFound, "no conversation "+id)
	}
	if err != nil {
		return conv, storeErr(err)
	}
	if err := c.submit(ctx, AcceptedEvent(c.name, conv)); err != nil {
		return conv, err
	}
	m, _, err := c.st.appendMessage(ctx, "s:"+EventAccepted, Message{ConversationID: id, ID: EventAccepted,
		From: FromSystem, Event: EventAccepted, Agent: s.agent, At: conv.AcceptedAt})
	if err != nil {
		return conv, storeErr(err)
	}
	if err := c.st.queueChange(ctx, conv, now); err != nil {
		return conv, storeErr(err)
	}
	if !conv.AcceptRecorded {
		if conv, err = c.st.updateConversation(ctx, id, func(cv *Conversation) (bool, error) {
			cv.AcceptRecorded = true
			return true, nil
		}); err != nil {
			return conv, storeErr(err)
		}
	}
	c.publishMessage(ctx, m)
	c.publishSummary(ctx, conv)
	return conv, s.openConv(ctx, conv, lastSeq)
}

// reply stores an agent's message and acks it. Replying to a waiting
// conversation accepts it first ("an agent accepts or first replies").
func (s *session) reply(ctx context.Context, f Frame) error {
	c := s.c
	conv, found, err := c.st.getConversation(ctx, f.ConversationID)
	switch {
	case err != nil:
		return storeErr(err)
	case !found:
		return refusal(CodeNotFound, "no conversation "+f.ConversationID)
	case conv.Status == StatusClosed:
		return refusal(CodeClosed, "the conversation is closed")
	case conv.Status == StatusWaiting || (conv.Agent == s.agent && !conv.AcceptRecorded):
		if conv, err = s.accept(ctx, f.ConversationID, f.LastSeq); err != nil {
			return err
		}
	}
	m, dup, err := c.st.appendMessage(ctx, "a:"+s.agent+":"+f.ID, Message{ConversationID: conv.ID, ID: f.ID,
		From: FromAgent, Agent: s.agent, Text: f.Text, At: c.now()})
	if err != nil {
		return storeErr(err)
	}
	s.enqueue(encode(Out{Type: TypeAck, ID: f.ID, ConversationID: conv.ID, Seq: m.Seq, Duplicate: dup}))
	c.publishMessage(ctx, m)
	if m.Seq >= int64(c.cfg.Limits.History) {
		_, err := c.closeConversation(ctx, conv.ID, FromSystem)
		return err
	}
	return nil
}

// closeConversation closes a conversation (by a visitor, an agent or the
// history limit), appends the closed message and updates the queue.
// Closing twice is harmless.
func (c *Connector) closeConversation(ctx context.Context, id, by string) (Conversation, error) {
	now := c.now()
	conv, err := c.st.updateConversation(ctx, id, func(cv *Conversation) (bool, error) {
		if cv.Status == StatusClosed {
			return false, nil
		}
		cv.Status, cv.ClosedAt, cv.UpdatedAt = StatusClosed, now, now
		return true, nil
	})
	if errors.Is(err, errGone) {
		return conv, refusal(CodeNotFound, "no conversation "+id)
	}
	if err != nil {
		return conv, storeErr(err)
	}
	m, _, err := c.st.appendMessage(ctx, "s:"+EventClosed, Message{ConversationID: id, ID: EventClosed,
		From: FromSystem, Event: EventClosed, By: by, At: conv.ClosedAt})
	if err != nil {
		return conv, storeErr(err)
	}
	if err := c.st.queueChange(ctx, conv, now); err != nil {
		return conv, storeErr(err)
	}
	c.publishMessage(ctx, m)
	c.publishSummary(ctx, conv)
	return conv, nil
}

// storeErr marks a store failure as retryable, keeping refusals as they are.
func storeErr(err error) error {
	var ce *codedError
	if errors.As(err, &ce) {
		return err
	}
	return errors.Join(errUnavailable, err)
}

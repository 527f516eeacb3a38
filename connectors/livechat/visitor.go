package livechat

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/stagegate/stagegate/normalize"
)

// maxPreview bounds the first message shown in the agents' queue.
const maxPreview = 140

// serveVisitor runs one visitor websocket: hello first, then messages.
func (c *Connector) serveVisitor(w http.ResponseWriter, r *http.Request) {
	if !c.visitorOrigin(r) {
		c.Refuse(w, r, http.StatusForbidden, "forbidden_origin", "this origin may not open the chat")
		return
	}
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
			if f.Type != TypeHello {
				s.enqueue(errorFrame(CodeNotHello, "the first frame must be hello", f.ID, false))
				s.closeWith(websocket.ClosePolicyViolation, CodeNotHello)
				return false
			}
			if err := s.visitorHello(f); err != nil {
				s.fail("", err)
				s.closeWith(websocket.CloseTryAgainLater, "try again")
				return false
			}
			helloed = true
			return true
		}
		ctx, cancel := c.opContext()
		defer cancel()
		var err error
		switch f.Type {
		case TypeMessage:
			err = s.visitorMessage(ctx, f)
		case TypeIdentify:
			err = s.identify(ctx, f)
		case TypeTyping:
			if conv := s.current(); conv != nil && conv.Status != StatusClosed {
				c.publish(ctx, bcast{Kind: "t", Conv: conv.ID, From: FromVisitor})
			}
		case TypeClose:
			if conv := s.current(); conv != nil {
				_, err = c.closeConversation(ctx, conv.ID, FromVisitor)
			}
		default:
			err = refusal(CodeBadFrame, "visitors cannot send "+f.Type)
		}
		if err != nil {
			s.fail(f.ID, err)
		}
		return true
	})
}

// visitorHello identifies the visitor (a valid token keeps the visitor id,
// anything else starts a new visitor), resumes the current conversation
// from the cursor and queues the welcome.
func (s *session) visitorHello(f Frame) error {
	c := s.c
	ctx, cancel := c.opContext()
	defer cancel()
	vid, ok := c.signer.Verify(f.VisitorToken)
	if !ok {
		vid = newID("v_")
	}
	ch, ok := c.cfg.channel(f.Channel)
	if !ok {
		s.enqueue(errorFrame(CodeUnknownChannel, "no channel "+f.Channel+"; using the default", "", false))
		ch = c.cfg.Channels[0]
	}
	rec, err := c.st.getVisitor(ctx, vid)
	if err != nil {
		return errors.Join(errUnavailable, err)
	}
	s.mu.Lock()
	s.visitorID, s.channel, s.page = vid, ch.ID, f.Page
	s.ident = identity{rec.Name, rec.Email, rec.Phone}
	s.mu.Unlock()
	var conv Conversation
	found := false
	if rec.Conversation != "" {
		if conv, found, err = c.st.getConversation(ctx, rec.Conversation); err != nil {
			return errors.Join(errUnavailable, err)
		}
		if found {
			s.setCurrent(conv)
		}
	}
	if f.Name != "" || f.Email != "" || f.Phone != "" {
		if err := s.identify(ctx, f); err != nil {
			s.fail("", err)
		}
	}
	welcome := Out{Type: TypeWelcome, VisitorID: vid, VisitorToken: c.signer.Sign(vid), Ask: c.cfg.Ask, Title: c.cfg.Title}
	if !found {
		s.enqueue(encode(welcome))
		return nil
	}
	var after int64
	if f.Cursor != nil && f.Cursor.ConversationID == conv.ID {
		after = f.Cursor.LastSeq
	}
	sum := visitorSummary(*s.current())
	err = s.watch(ctx, conv.ID, after, func(msgs []Message) []byte {
		welcome.Conversation, welcome.Messages = &sum, msgs
		return encode(welcome)
	})
	if err != nil {
		return errors.Join(errUnavailable, err)
	}
	return nil
}

// visitorSummary is what a visitor is told of its conversation.
func visitorSummary(c Conversation) Summary {
	return Summary{ID: c.ID, Channel: c.Channel, Status: c.Status, Agent: c.Agent, UpdatedAt: c.UpdatedAt}
}

// visitorMessage stores a visitor's message, records its events and acks
// it, in that order: the ack means the message and its events are durable.
// A message re-sent with the same id is stored once and acked again.
func (s *session) visitorMessage(ctx context.Context, f Frame) error {
	c := s.c
	conv, err := s.ensureConversation(ctx)
	if err != nil {
		return err
	}
	now := c.now()
	m, dup, err := c.st.appendMessage(ctx, "v:"+f.ID,
		Message{ConversationID: conv.ID, ID: f.ID, From: FromVisitor, Text: f.Text, At: now})
	if err != nil {
		return errors.Join(errUnavailable, err)
	}
	if !dup && conv.FirstSeq != 0 {
		// The conversation was open just before the message was stored;
		// if it is closed now, the close crossed the message and nobody
		// will answer it there: it goes into a new conversation too.
		after, found, err := c.st.getConversation(ctx, conv.ID)
		if err != nil {
			return errors.Join(errUnavailable, err)
		}
		if !found || after.Status == StatusClosed {
			if found {
				s.setCurrent(after)
			}
			if conv, err = s.ensureConversation(ctx); err != nil {
				return err
			}
			m, dup, err = c.st.appendMessage(ctx, "v:"+f.ID,
				Message{ConversationID: conv.ID, ID: f.ID, From: FromVisitor, Text: f.Text, At: now})
			if err != nil {
				return errors.Join(errUnavailable, err)
			}
		}
	}
	if conv.FirstSeq == 0 {
		conv, err = c.st.updateConversation(ctx, conv.ID, func(cv *Conversation) (bool, error) {
			if cv.FirstSeq != 0 {
				return false, nil
			}
			cv.FirstSeq, cv.FirstAt, cv.Preview, cv.UpdatedAt = m.Seq, m.At, cut(m.Text, maxPreview), now
			return true, nil
		})
		if err != nil {
			return errors.Join(errUnavailable, err)
		}
		s.setCurrent(conv)
	}
	first := conv.FirstSeq == m.Seq
	if first {
		if err := c.st.queueChange(ctx, conv, now); err != nil {
			return errors.Join(errUnavailable, err)
		}
	}
	evs := []*normalize.Event{MessageEvent(c.name, conv, m)}
	if first {
		evs = []*normalize.Event{StartedEvent(c.name, conv, m), evs[0]}
	}
	if err := c.submit(ctx, evs...); err != nil {
		return err
	}
	s.enqueue(encode(Out{Type: TypeAck, ID: f.ID, ConversationID: conv.ID, Seq: m.Seq, Duplicate: dup}))
	c.publishMessage(ctx, m)
	if first {
		c.publishSummary(ctx, conv)
	}
	if m.Seq >= int64(c.cfg.Limits.History) {
		_, err := c.closeConversation(ctx, conv.ID, FromSystem)
		return err
	}
	return nil
}

// ensureConversation returns the visitor's current conversation, starting
// a new one when there is none or it is closed. Two tabs of one visitor
// that start one at the same time end up in the same one. Whether the
// conversation is still going on is read from the store: the session's
// copy learns of a close only when its broadcast arrives, after it.
func (s *session) ensureConversation(ctx context.Context) (Conversation, error) {
	c := s.c
	cur := s.current()
	if cur != nil && cur.Status != StatusClosed {
		stored, found, err := c.st.getConversation(ctx, cur.ID)
		if err != nil {
			return *cur, errors.Join(errUnavailable, err)
		}
		if !found {
			cur.Status = StatusClosed // expired: start another
		} else {
			s.setCurrent(stored)
			cur = s.current()
		}
		if cur.Status != StatusClosed {
			return *cur, nil
		}
	}
	s.mu.Lock()
	vid, ch, page, id := s.visitorID, s.channel, s.page, s.ident
	s.mu.Unlock()
	now := c.now()
	conv := Conversation{ID: newID("c"), VisitorID: vid, Channel: ch, Status: StatusWaiting, Page: page,
		Name: id.Name, Email: id.Email, Phone: id.Phone, CreatedAt: now, UpdatedAt: now}
	if err := c.st.createConversation(ctx, conv); err != nil {
		return conv, errors.Join(errUnavailable, err)
	}
	var known string
	if cur != nil {
		known = cur.ID
	}
	// Point the visitor at the new conversation, unless another tab did
	// so with one of its own that is still going on: then use that one.
	for range 3 {
		var other string
		_, err := c.st.updateVisitor(ctx, vid, func(v *visitorRecord) bool {
			other = ""
			if v.Conversation != "" && v.Conversation != known {
				other = v.Conversation
				return false
			}
			v.Conversation, v.UpdatedAt = conv.ID, now
			v.Name, v.Email, v.Phone = id.Name, id.Email, id.Phone
			return true
		})
		if err != nil {
			return conv, errors.Join(errUnavailable, err)
		}
		if other == "" {
			break
		}
		theirs, found, err := c.st.getConversation(ctx, other)
		if err != nil {
			return conv, errors.Join(errUnavailable, err)
		}
		if found && theirs.Status != StatusClosed {
			conv = theirs
			break
		}
		known = other // closed or expired: replace it with ours
	}
	if cur != nil {
		s.unwatch(cur.ID)
	}
	s.setCurrent(conv)
	if err := s.watch(ctx, conv.ID, 0, nil); err != nil {
		return conv, errors.Join(errUnavailable, err)
	}
	return conv, nil
}

// identify records the name, email and phone a visitor gave, on the
// visitor and on its open conversation, so that the next events carry
// them and the engine links the visitor to a contact.
func (s *session) identify(ctx context.Context, f Frame) error {
	c := s.c
	var id identity
	id.Name = cut(strings.TrimSpace(f.Name), 200)
	if f.Email != "" {
		if id.Email = normalize.NormalizeEmail(f.Email); id.Email == "" {
			return refusal(CodeBadField, "email: not an address")
		}
	}
	if f.Phone != "" {
		p, err := normalize.NormalizePhone(f.Phone, c.region)
		if err != nil {
			return refusal(CodeBadField, "phone: not a phone number")
		}
		id.Phone = p
	}
	s.mu.Lock()
	vid := s.visitorID
	merged := s.ident
	if id.Name != "" {
		merged.Name = id.Name
	}
	if id.Email != "" {
		merged.Email = id.Email
	}
	if id.Phone != "" {
		merged.Phone = id.Phone
	}
	changed := merged != s.ident
	s.ident = merged
	s.mu.Unlock()
	if !changed {
		return nil
	}
	now := c.now()
	if _, err := c.st.updateVisitor(ctx, vid, func(v *visitorRecord) bool {
		v.Name, v.Email, v.Phone, v.UpdatedAt = merged.Name, merged.Email, merged.Phone, now
		return true
	}); err != nil {
		return errors.Join(errUnavailable, err)
	}
	cur := s.current()
	if cur == nil || cur.Status == StatusClosed {
		return nil
	}
	conv, err := c.st.updateConversation(ctx, cur.ID, func(cv *Conversation) (bool, error) {
		cv.Name, cv.Email, cv.Phone, cv.UpdatedAt = merged.Name, merged.Email, merged.Phone, now
		return true, nil
	})
	if err != nil {
		return errors.Join(errUnavailable, err)
	}
	s.setCurrent(conv)
	if conv.FirstSeq != 0 {
		c.publishSummary(ctx, conv)
	}
	return nil
}

// current returns a copy of the visitor's current conversation, or nil.
func (s *session) current() *Conversation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conv == nil {
		return nil
	}
	cp := *s.conv
	return &cp
}

// setCurrent records conv as the visitor's current conversation, keeping
// a status the session saw later than the store's copy.
func (s *session) setCurrent(conv Conversation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conv != nil && s.conv.ID == conv.ID && statusRank(s.conv.Status) > statusRank(conv.Status) {
		conv.Status, conv.Agent = s.conv.Status, s.conv.Agent
	}
	s.conv = &conv
}

// cut shortens s to at most n bytes without splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

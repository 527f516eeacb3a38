package livechat

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// A first message is stored, acked with its sequence number and echoed,
// and becomes chat.started and chat.message, durable before the ack.
func TestFirstMessage(t *testing.T) {
	h := newHarness(t, nil)
	v, w := h.visitor(map[string]any{"channel": "support", "page": "https://www.example.com/pricing"})
	if !visitorIDPattern.MatchString(w.VisitorID) || !strings.HasPrefix(w.VisitorToken, "v1."+w.VisitorID+".") {
		t.Fatalf("welcome %s", w.raw)
	}
	if w.Conversation != nil || len(w.Messages) != 0 || strings.Join(w.Ask, ",") != "name,email" {
		t.Fatalf("new visitor welcome %s", w.raw)
	}
	if len(h.in.Events()) != 0 {
		t.Fatalf("hello alone recorded events %v", h.in.IDs())
	}
	v.say("m1", "Hello, what is the price?")
	ack := v.expect(TypeAck)
	if ack.ID != "m1" || ack.Seq != 1 || ack.Duplicate || ack.ConversationID == "" {
		t.Fatalf("ack %s", ack.raw)
	}
	conv := ack.ConversationID
	want := []string{"chat:" + conv + ":started", "chat:" + conv + ":msg:m1"}
	if got := h.in.IDs(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", got, want)
	}
	for _, ev := range h.in.Events() {
		if ev.Subject.VisitorID != w.VisitorID || ev.Channel != "support" || ev.Attrs["text"] != "Hello, what is the price?" ||
			ev.Attrs["conversation_id"] != conv || !ev.OccurredAt.Equal(t0) {
			t.Fatalf("event %+v", ev)
		}
	}
	if p := h.in.Events()[0].Attrs["page"]; p != "https://www.example.com/pricing" {
		t.Fatalf("started page %q", p)
	}
	echo := v.expect(TypeMessage)
	if echo.Seq != 1 || echo.ID != "m1" || echo.From != FromVisitor || echo.Msg.Text != "Hello, what is the price?" {
		t.Fatalf("echo %s", echo.raw)
	}
	v.say("m2", "anyone?")
	if ack := v.expect(TypeAck); ack.Seq != 2 || ack.ConversationID != conv {
		t.Fatalf("second ack %s", ack.raw)
	}
	if got := h.in.IDs(); len(got) != 3 || got[2] != "chat:"+conv+":msg:m2" {
		t.Fatalf("events after second message %v", got)
	}
}

// A message re-sent with the same client id, on the same connection or
// after a reconnect, is stored once and recorded once; the ack says so.
func TestDuplicateClientID(t *testing.T) {
	h := newHarness(t, nil)
	v, w := h.visitor(nil)
	v.say("dup-1", "first")
	ack := v.expect(TypeAck)
	v.say("dup-1", "first")
	again := v.expect(TypeAck)
	if again.Seq != ack.Seq || !again.Duplicate {
		t.Fatalf("re-sent ack %s after %s", again.raw, ack.raw)
	}
	// Send, drop the connection before reading the ack, reconnect and send again.
	v.say("dup-2", "second")
	waitFor(t, 5*time.Second, "dup-2 stored", func() bool {
		ms := h.messages(ack.ConversationID)
		return len(ms) == 2 && ms[1].ID == "dup-2"
	})
	v.ws.Close()
	v2, w2 := h.visitor(map[string]any{"visitor_token": w.VisitorToken,
		"cursor": Cursor{ConversationID: ack.ConversationID, LastSeq: 1}})
	if w2.VisitorID != w.VisitorID || len(w2.Messages) != 1 || w2.Messages[0].ID != "dup-2" {
		t.Fatalf("resumed welcome %s", w2.raw)
	}
	v2.say("dup-2", "second")
	if a := v2.expect(TypeAck); a.Seq != 2 || !a.Duplicate {
		t.Fatalf("ack after reconnect %s", a.raw)
	}
	if msgs := h.messages(ack.ConversationID); len(msgs) != 2 {
		t.Fatalf("stored %d messages, want 2", len(msgs))
	}
	if got := h.in.IDs(); len(got) != 3 {
		t.Fatalf("events %v, want started + two messages", got)
	}
}

// A visitor that reconnects with its cursor gets exactly the messages it
// missed, in order, once; then the conversation goes on.
func TestResumeAfterDrop(t *testing.T) {
	h := newHarness(t, nil)
	v, w := h.visitor(nil)
	v.say("q1", "hi")
	conv := v.expect(TypeAck).ConversationID
	v.expect(TypeMessage)
	v.ws.Close() // dropped, cursor at 1

	a, _ := h.agent(aliceToken)
	a.send(map[string]any{"type": TypeAccept, "conversation_id": conv})
	hist := a.expect(TypeHistory)
	if len(hist.Messages) != 2 || hist.Messages[1].Event != EventAccepted {
		t.Fatalf("agent history %s", hist.raw)
	}
	for i, text := range []string{"Hello!", "How can I help?"} {
		a.send(map[string]any{"type": TypeMessage, "conversation_id": conv, "id": "r" + string(rune('1'+i)), "text": text})
		a.expect(TypeAck)
	}

	v2, w2 := h.visitor(map[string]any{"visitor_token": w.VisitorToken, "cursor": Cursor{ConversationID: conv, LastSeq: 1}})
	var seqs []int64
	var texts []string
	for _, m := range w2.Messages {
		seqs = append(seqs, m.Seq)
		texts = append(texts, m.Event+m.Text)
	}
	if len(seqs) != 3 || seqs[0] != 2 || seqs[2] != 4 || strings.Join(texts, "|") != "accepted|Hello!|How can I help?" {
		t.Fatalf("missed messages %v %v", seqs, texts)
	}
	if w2.Conversation == nil || w2.Conversation.Status != StatusOpen || w2.Conversation.Agent != "alice" {
		t.Fatalf("conversation %s", w2.raw)
	}
	a.send(map[string]any{"type": TypeMessage, "conversation_id": conv, "id": "r3", "text": "Still there?"})
	if m := v2.expect(TypeMessage); m.Seq != 5 || m.Msg.Text != "Still there?" || m.From != FromAgent || m.Agent != "alice" {
		t.Fatalf("live message after resume %s", m.raw)
	}
	v2.say("q2", "yes")
	if ack := v2.expect(TypeAck); ack.Seq != 6 {
		t.Fatalf("ack %s", ack.raw)
	}
	if m := v2.expect(TypeMessage); m.Seq != 6 {
		t.Fatalf("echo %s", m.raw)
	}
	for want := int64(3); want <= 6; want++ { // the agent's own messages come back too
		if m := a.expect(TypeMessage); m.Seq != want || (want == 6 && m.Msg.Text != "yes") {
			t.Fatalf("agent got %s, want seq %d", m.raw, want)
		}
	}
	// A cursor of another conversation, or beyond the end, replays the whole conversation.
	_, w3 := h.visitor(map[string]any{"visitor_token": w.VisitorToken, "cursor": Cursor{ConversationID: conv, LastSeq: 99}})
	if len(w3.Messages) != 6 {
		t.Fatalf("cursor past the end: %d messages", len(w3.Messages))
	}
}

// chat.accepted carries the seconds from the visitor's first message to
// the acceptance, on the injected clock; a second agent cannot take the
// conversation, and a reply to a waiting conversation accepts it.
func TestAcceptReactionTime(t *testing.T) {
	h := newHarness(t, nil)
	v, _ := h.visitor(nil)
	v.say("m1", "hello")
	conv := v.expect(TypeAck).ConversationID
	h.clk.Add(95*time.Second + 250*time.Millisecond)
	v.say("m2", "hello??") // later messages do not move the origin
	v.expect(TypeAck)
	h.clk.Add(5 * time.Second)

	alice, welcome := h.agent(aliceToken)
	if len(welcome.Queue) != 1 || welcome.Queue[0].ID != conv || welcome.Queue[0].Status != StatusWaiting ||
		welcome.Queue[0].Preview != "hello" {
		t.Fatalf("queue %s", welcome.raw)
	}
	bob, _ := h.agent(bobToken)
	alice.send(map[string]any{"type": TypeAccept, "conversation_id": conv})
	alice.expect(TypeHistory)
	ev := h.in.Event("chat:" + conv + ":accepted")
	if ev == nil || ev.Type != normalize.ChatAccepted || ev.Attrs["reaction_s"] != "100.25" || ev.Attrs["agent"] != "alice" {
		t.Fatalf("accepted event %+v", ev)
	}
	if f := bob.expect(TypeConversation); f.Conversation.Status != StatusOpen || f.Conversation.Agent != "alice" {
		t.Fatalf("bob's queue update %s", f.raw)
	}
	bob.send(map[string]any{"type": TypeAccept, "conversation_id": conv})
	if e := bob.expect(TypeError); e.Code != CodeTaken || e.Retryable {
		t.Fatalf("second accept %s", e.raw)
	}
	alice.send(map[string]any{"type": TypeAccept, "conversation_id": conv}) // again: harmless
	alice.expect(TypeConversation)
	if n := len(h.messages(conv)); n != 3 {
		t.Fatalf("%d messages after accepting twice, want 3", n)
	}

	// A reply to a waiting conversation accepts it.
	v2, _ := h.visitor(nil)
	v2.say("x", "anyone?")
	conv2 := v2.expect(TypeAck).ConversationID
	h.clk.Add(10 * time.Second)
	bob.send(map[string]any{"type": TypeMessage, "conversation_id": conv2, "id": "b1", "text": "Hi, Bob here"})
	bob.expect(TypeHistory)
	if a := bob.expect(TypeAck); a.Seq != 3 {
		t.Fatalf("reply ack %s", a.raw)
	}
	if ev := h.in.Event("chat:" + conv2 + ":accepted"); ev == nil || ev.Attrs["reaction_s"] != "10" || ev.Attrs["agent"] != "bob" {
		t.Fatalf("accept by reply %+v", ev)
	}
	if m := v2.expect(TypeMessage); m.Seq != 1 {
		t.Fatalf("visitor echo %s", m.raw)
	}
	if m := v2.expect(TypeMessage); m.Msg.Event != EventAccepted || m.Agent != "bob" {
		t.Fatalf("visitor accepted %s", m.raw)
	}
	if m := v2.expect(TypeMessage); m.Msg.Text != "Hi, Bob here" {
		t.Fatalf("visitor reply %s", m.raw)
	}
}

// Only listed origins (and the gateway's own) may open the visitor
// websocket; others get 403 before any upgrade.
func TestOrigins(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct {
		name, origin string
		want         int
	}{
		{"listed", siteOrigin, http.StatusSwitchingProtocols},
		{"listed, other case and slash", "HTTPS://WWW.EXAMPLE.COM/", http.StatusSwitchingProtocols},
		{"foreign", otherOrigin, http.StatusForbidden},
		{"same scheme other port", "https://www.example.com:8443", http.StatusForbidden},
		{"missing", "", http.StatusForbidden},
		{"gateway's own", h.srv.URL, http.StatusSwitchingProtocols},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := dial(t, h.wsBase+"/ws", tc.origin)
			if resp == nil {
				t.Fatalf("no answer: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusForbidden {
				body, _ := io.ReadAll(resp.Body)
				if !strings.Contains(string(body), `"forbidden_origin"`) {
					t.Fatalf("body %s", body)
				}
			}
		})
	}
	t.Run("agent from a foreign origin", func(t *testing.T) {
		_, resp, _ := dial(t, h.wsBase+"/agent/ws", otherOrigin)
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("answer %v", resp)
		}
	})
	h2 := newHarness(t, func(c *Config) { c.AllowNoOrigin = true })
	if _, resp, err := dial(t, h2.wsBase+"/ws", ""); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("allow_no_origin: %v %v", resp, err)
	}
}

// A frame over max_frame closes the connection with 1009.
func TestOversizedFrame(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.MaxFrame = 1024; c.Limits.MaxText = 512 })
	v, _ := h.visitor(nil)
	v.say("big", strings.Repeat("x", 2000))
	if code := v.closeCode(); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	// Text over max_text but within the frame is refused without closing.
	v2, _ := h.visitor(nil)
	v2.say("long", strings.Repeat("y", 600))
	if e := v2.expect(TypeError); e.Code != CodeBadFrame || e.Ref != "long" {
		t.Fatalf("long text %s", e.raw)
	}
}

// A client that stops answering pings is dropped within the pong wait; one
// that answers stays.
func TestDeadClientDropped(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.PingInterval = 100 * time.Millisecond
		c.Limits.PongWait = 400 * time.Millisecond
	})
	alive, _ := h.visitor(nil)
	dead, _ := h.visitor(nil)
	dead.ws.SetPingHandler(func(string) error { return nil }) // never pong
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for {
			if _, _, err := dead.ws.ReadMessage(); err != nil {
				errc <- err
				return
			}
		}
	}()
	go func() { // the live client reads, so gorilla answers its pings
		for {
			if _, _, err := alive.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case <-errc:
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Fatalf("dropped after %v", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a client that does not answer pings was not dropped")
	}
	deadline := time.Now().Add(2 * time.Second)
	for h.sessions() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.sessions(); n != 1 {
		t.Fatalf("%d sessions left, want the live one", n)
	}
}

// Frames over the rate are refused with a retryable rate_limited and are
// not stored; a client that ignores the refusals is closed with 1008.
func TestRateLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.Rate = 0.5; c.Limits.Burst = 3 })
	v, _ := h.visitor(nil) // hello took one token
	for i := range 4 {
		v.say("r"+string(rune('a'+i)), "spam")
	}
	var acks, limited int
	for acks+limited < 4 {
		f, err := v.next()
		if err != nil {
			t.Fatal(err)
		}
		switch f.Type {
		case TypeAck:
			acks++
		case TypeError:
			if f.Code != CodeRateLimited || !f.Retryable || f.Ref == "" {
				t.Fatalf("refusal %s", f.raw)
			}
			limited++
		}
	}
	if acks != 2 || limited != 2 {
		t.Fatalf("%d acks, %d refusals; want 2 and 2", acks, limited)
	}
	for range floodLimit + 5 {
		if v.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"typing"}`)) != nil {
			break
		}
	}
	if code := v.closeCode(); code != websocket.ClosePolicyViolation {
		t.Fatalf("flood close code %d, want 1008", code)
	}
}

// While the intake is unavailable the visitor gets a retryable error and no
// ack; the same message sent again later is acked and recorded once.
func TestIntakeUnavailable(t *testing.T) {
	h := newHarness(t, nil)
	v, _ := h.visitor(nil)
	h.in.SetDown(true)
	v.say("u1", "are you there?")
	e := v.expect(TypeError)
	if e.Code != CodeUnavailable || !e.Retryable || e.Ref != "u1" {
		t.Fatalf("error %s", e.raw)
	}
	h.in.SetDown(false)
	v.say("u1", "are you there?")
	ack := v.expect(TypeAck)
	if ack.Seq != 1 {
		t.Fatalf("ack %s", ack.raw)
	}
	if got := h.in.IDs(); len(got) != 2 || !strings.HasSuffix(got[0], ":started") {
		t.Fatalf("events %v", got)
	}
}

// The first frame must be hello; agents need a valid token.
func TestHelloAndAuth(t *testing.T) {
	h := newHarness(t, nil)
	v, _, err := dial(t, h.wsBase+"/ws", siteOrigin)
	if err != nil {
		t.Fatal(err)
	}
	v.say("m", "hi")
	if e := v.expect(TypeError); e.Code != CodeNotHello {
		t.Fatalf("no hello %s", e.raw)
	}
	if code := v.closeCode(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close %d", code)
	}
	a, _, err := dial(t, h.wsBase+"/agent/ws", "")
	if err != nil {
		t.Fatal(err)
	}
	a.send(map[string]any{"type": TypeHello, "token": "not-a-valid-agent-token"})
	if e := a.expect(TypeError); e.Code != CodeUnauthorized {
		t.Fatalf("bad token %s", e.raw)
	}
	if code := a.closeCode(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close %d", code)
	}
	// The token may come in an Authorization header instead.
	hdr := http.Header{"Authorization": {"Bearer " + bobToken}}
	ws, _, err := websocket.DefaultDialer.Dial(h.wsBase+"/agent/ws", hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	b := &client{t: t, ws: ws}
	b.send(map[string]any{"type": TypeHello})
	if w := b.expect(TypeWelcome); w.Agent != "bob" {
		t.Fatalf("welcome %s", w.raw)
	}
	// Malformed frames are refused and the connection stays.
	v2, _ := h.visitor(nil)
	for _, bad := range []string{`{`, `[]`, `{"type":"nope"}`, `{"type":"message","id":"a b","text":"x"}`, `{"type":"message","id":"ok","text":"  "}`} {
		_ = v2.ws.WriteMessage(websocket.TextMessage, []byte(bad))
		if e := v2.expect(TypeError); e.Code != CodeBadFrame {
			t.Fatalf("%s: %s", bad, e.raw)
		}
	}
	v2.say("fine", "still here")
	v2.expect(TypeAck)
}

// Closing a conversation tells both sides; the visitor's next message
// starts a new conversation with its own chat.started.
func TestCloseAndNewConversation(t *testing.T) {
	h := newHarness(t, nil)
	v, w := h.visitor(nil)
	v.say("m1", "hi")
	conv := v.expect(TypeAck).ConversationID
	v.expect(TypeMessage)
	a, _ := h.agent(aliceToken)
	a.send(map[string]any{"type": TypeAccept, "conversation_id": conv})
	a.expect(TypeHistory)
	v.expect(TypeMessage) // accepted
	a.send(map[string]any{"type": TypeClose, "conversation_id": conv})
	if m := v.expect(TypeMessage); m.Msg.Event != EventClosed || m.Msg.By != "alice" {
		t.Fatalf("closed %s", m.raw)
	}
	a.send(map[string]any{"type": TypeMessage, "conversation_id": conv, "id": "late", "text": "one more thing"})
	if e := a.expect(TypeError); e.Code != CodeClosed {
		t.Fatalf("reply to closed %s", e.raw)
	}
	v.say("m2", "me again")
	ack := v.expect(TypeAck)
	if ack.ConversationID == conv || ack.Seq != 1 {
		t.Fatalf("new conversation ack %s", ack.raw)
	}
	if h.in.Event("chat:"+ack.ConversationID+":started") == nil {
		t.Fatalf("no chat.started for the new conversation: %v", h.in.IDs())
	}
	// The visitor's welcome now resumes the new conversation.
	_, w2 := h.visitor(map[string]any{"visitor_token": w.VisitorToken})
	if w2.Conversation == nil || w2.Conversation.ID != ack.ConversationID {
		t.Fatalf("welcome %s", w2.raw)
	}
}

// The name, email and phone a visitor gives go into the next events'
// subject, normalized; a bad email is refused.
func TestIdentify(t *testing.T) {
	h := newHarness(t, nil)
	v, _ := h.visitor(map[string]any{"name": "Ann", "email": "Ann@Client.Test"})
	v.say("m1", "hi")
	conv := v.expect(TypeAck).ConversationID
	v.send(map[string]any{"type": TypeIdentify, "phone": "(202) 555-0123"})
	v.say("m2", "call me")
	v.expect(TypeAck)
	ev := h.in.Event("chat:" + conv + ":msg:m2")
	if ev == nil || ev.Subject.Email != "ann@client.test" || ev.Subject.Phone != "+12025550123" || ev.Subject.Name != "Ann" {
		t.Fatalf("subject %+v", ev)
	}
	if ev := h.in.Event("chat:" + conv + ":started"); ev.Subject.Email != "ann@client.test" || ev.Subject.Phone != "" {
		t.Fatalf("started subject %+v", ev.Subject)
	}
	v.send(map[string]any{"type": TypeIdentify, "email": "not an address"})
	if e := v.expect(TypeError); e.Code != CodeBadField {
		t.Fatalf("bad email %s", e.raw)
	}
}

// History is capped: the message that reaches the limit closes the
// conversation, and the next one starts another.
func TestHistoryLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.History = 3 })
	v, _ := h.visitor(nil)
	var conv string
	for i := range 3 {
		v.say("h"+string(rune('0'+i)), "msg")
		conv = v.expect(TypeAck).ConversationID
	}
	for v.expect(TypeMessage).Msg.Event != EventClosed {
	}
	msgs := h.messages(conv)
	if len(msgs) != 4 || msgs[3].Event != EventClosed || msgs[3].By != FromSystem {
		t.Fatalf("messages %+v", msgs)
	}
	v.say("h3", "more")
	if ack := v.expect(TypeAck); ack.ConversationID == conv {
		t.Fatalf("still in the full conversation: %s", ack.raw)
	}
}

// A client whose send queue is full is dropped rather than slowing others.
func TestSlowReaderDropped(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.SendBuffer = 2 })
	v, _ := h.visitor(nil)
	h.c.mu.Lock()
	var s *session
	for s = range h.c.sessions {
	}
	h.c.mu.Unlock()
	s.conn.mu.Lock() // hold the writer off while the queue fills
	s.conn.queue = append(s.conn.queue, []byte(`{}`), []byte(`{}`))
	s.conn.mu.Unlock()
	if s.enqueue([]byte(`{}`)) {
		t.Fatal("a third frame was queued over send_buffer 2")
	}
	if code := v.closeCode(); code != websocket.CloseAbnormalClosure {
		t.Fatalf("slow client closed with %d, want a dropped connection", code)
	}
}

// Typing is relayed to the other side only.
func TestTyping(t *testing.T) {
	h := newHarness(t, nil)
	v, _ := h.visitor(nil)
	v.say("m1", "hi")
	conv := v.expect(TypeAck).ConversationID
	v.expect(TypeMessage)
	a, _ := h.agent(aliceToken)
	a.send(map[string]any{"type": TypeOpen, "conversation_id": conv})
	a.expect(TypeHistory)
	v.send(map[string]any{"type": TypeTyping})
	if f := a.expect(TypeTyping); f.From != FromVisitor || f.ConversationID != conv {
		t.Fatalf("agent got %v", f.raw)
	}
	a.send(map[string]any{"type": TypeTyping, "conversation_id": conv})
	if f := v.expect(TypeTyping); f.From != FromAgent || f.Agent != "alice" {
		t.Fatalf("visitor got %v", f.raw)
	}
	for _, f := range v.backlog {
		if f.Type == TypeTyping {
			t.Fatalf("the visitor got its own typing: %s", f.raw)
		}
	}
}

// The widget, demo and console are served from the embedded files.
func TestAssets(t *testing.T) {
	h := newHarness(t, nil)
	for path, want := range map[string]string{
		"/widget.js": "text/javascript", "/demo": "text/html", "/agent": "text/html",
	} {
		resp, err := http.Get(h.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || len(body) < 500 {
			t.Fatalf("%s: %d %s %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
		req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Fatalf("%s revalidation: %d", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(h.srv.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Error struct{ Code string } }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 404 || e.Error.Code != "not_found" {
		t.Fatalf("unknown route %d %+v", resp.StatusCode, e)
	}
}

// Messages whose broadcast was lost (another gateway's publish while Redis
// was away) still reach the watchers: a later message shows the gap and it
// is read from the store; a lost last message comes with the resync.
func TestLostBroadcasts(t *testing.T) {
	h := newHarness(t, nil)
	v, _ := h.visitor(nil)
	v.say("m1", "hi")
	conv := v.expect(TypeAck).ConversationID
	v.expect(TypeMessage)
	a, _ := h.agent(aliceToken)
	a.send(map[string]any{"type": TypeAccept, "conversation_id": conv})
	a.expect(TypeHistory)
	v.expect(TypeMessage) // accepted, seq 2

	ctx := t.Context()
	lost := Message{ConversationID: conv, ID: "x1", From: FromAgent, Agent: "bob", Text: "never published", At: t0}
	if _, _, err := h.c.st.appendMessage(ctx, "a:bob:x1", lost); err != nil {
		t.Fatal(err)
	}
	a.send(map[string]any{"type": TypeMessage, "conversation_id": conv, "id": "r1", "text": "published"})
	for _, want := range []string{"never published", "published"} {
		if m := v.expect(TypeMessage); m.Msg.Text != want {
			t.Fatalf("visitor got %s, want %q", m.raw, want)
		}
	}
	lost.ID, lost.Text = "x2", "lost at the end"
	if _, _, err := h.c.st.appendMessage(ctx, "a:bob:x2", lost); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if m := v.expect(TypeMessage); m.Msg.Text != "lost at the end" || m.Seq != 5 {
		t.Fatalf("visitor got %s", m.raw)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("resync took %v", d)
	}
	// The agent got them all too, once each, in order.
	for want := int64(3); want <= 5; want++ {
		if m := a.expect(TypeMessage); m.Seq != want {
			t.Fatalf("agent got %s, want seq %d", m.raw, want)
		}
	}
}

// An agent that reconnects with its cursors gets what it missed.
func TestAgentResume(t *testing.T) {
	h := newHarness(t, nil)
	v, _ := h.visitor(nil)
	v.say("m1", "hi")
	conv := v.expect(TypeAck).ConversationID
	a, _ := h.agent(aliceToken)
	a.send(map[string]any{"type": TypeAccept, "conversation_id": conv})
	if hist := a.expect(TypeHistory); len(hist.Messages) != 2 {
		t.Fatalf("history %s", hist.raw)
	}
	a.ws.Close()
	v.say("m2", "are you there?")
	v.expect(TypeAck)
	v.say("m3", "hello?")
	v.expect(TypeAck)
	a2, w := h.agent(aliceToken, Cursor{ConversationID: conv, LastSeq: 2})
	if len(w.Queue) != 1 || w.Queue[0].Status != StatusOpen || w.Queue[0].Agent != "alice" {
		t.Fatalf("queue %s", w.raw)
	}
	hist := a2.expect(TypeHistory)
	if len(hist.Messages) != 2 || hist.Messages[0].ID != "m2" || hist.Messages[1].ID != "m3" {
		t.Fatalf("missed %s", hist.raw)
	}
}

// Two tabs of one visitor share its conversation: the second tab's first
// message joins the conversation the first tab started.
func TestTwoTabs(t *testing.T) {
	h := newHarness(t, nil)
	tabA, w := h.visitor(nil)
	tabB, _ := h.visitor(map[string]any{"visitor_token": w.VisitorToken})
	tabA.say("a1", "from tab A")
	conv := tabA.expect(TypeAck).ConversationID
	tabB.say("b1", "from tab B")
	if ack := tabB.expect(TypeAck); ack.ConversationID != conv || ack.Seq != 2 {
		t.Fatalf("tab B ack %s, want conversation %s seq 2", ack.raw, conv)
	}
	for _, want := range []string{"a1", "b1"} {
		if m := tabA.expect(TypeMessage); m.ID != want {
			t.Fatalf("tab A got %s, want %s", m.raw, want)
		}
	}
	if n := len(h.in.IDs()); n != 3 {
		t.Fatalf("events %v, want one started and two messages", h.in.IDs())
	}
}

// A visitor message sent right after an agent closed the conversation,
// before the visitor's connection heard of it, opens a new conversation
// (with its chat.started) instead of landing in the closed one. First the
// close's broadcast is missing altogether (another gateway closed it and
// its publish was lost), then the real race, several times: the message
// is sent as soon as the close is in the store.
func TestMessageRightAfterClose(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.Burst = 100 }) // the agent sends 21 frames at once
	v, _ := h.visitor(nil)
	v.say("m1", "hi")
	conv := v.expect(TypeAck).ConversationID
	v.expect(TypeMessage)
	if _, err := h.c.st.updateConversation(t.Context(), conv, func(cv *Conversation) (bool, error) {
		cv.Status, cv.ClosedAt, cv.UpdatedAt = StatusClosed, t0, t0
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	v.say("m2", "still there?")
	ack := v.expect(TypeAck)
	if ack.ConversationID == conv || ack.Seq != 1 {
		t.Fatalf("ack %s: the message went to the closed conversation %s", ack.raw, conv)
	}
	if h.in.Event("chat:"+ack.ConversationID+":started") == nil {
		t.Fatalf("no chat.started for the new conversation: %v", h.in.IDs())
	}

	a, _ := h.agent(aliceToken)
	for i := range 10 {
		v, _ := h.visitor(nil)
		v.say("first", "hello")
		conv := v.expect(TypeAck).ConversationID
		a.send(map[string]any{"type": TypeAccept, "conversation_id": conv})
		a.expect(TypeHistory)
		a.send(map[string]any{"type": TypeClose, "conversation_id": conv})
		deadline := time.Now().Add(5 * time.Second)
		for { // closed in the store; its broadcast may still be on its way
			if cv, _, err := h.c.st.getConversation(t.Context(), conv); err != nil || cv.Status == StatusClosed {
				break
			}
			if time.Now().After(deadline) {
				var errs []string
				for _, f := range a.backlog {
					if f.Type == TypeError {
						errs = append(errs, f.raw)
					}
				}
				t.Fatalf("try %d: not closed after 5s; agent errors %v", i, errs)
			}
			time.Sleep(50 * time.Microsecond)
		}
		v.say("after", "one more thing")
		ack := v.expect(TypeAck)
		if ack.ConversationID == conv {
			t.Fatalf("try %d: the message after the close went to the closed conversation: %s", i, ack.raw)
		}
		if h.in.Event("chat:"+ack.ConversationID+":started") == nil {
			t.Fatalf("try %d: no chat.started for the new conversation", i)
		}
	}
}

// crossingRecords runs before when a list element is appended, before it is.
type crossingRecords struct {
	store.Records
	before func(key, id string)
}

func (r crossingRecords) AppendList(ctx context.Context, key, id string, value []byte, ttl time.Duration) (int64, bool, error) {
	r.before(key, id)
	return r.Records.AppendList(ctx, key, id, value, ttl)
}

// A close that crosses a visitor message — the conversation was open when
// the message was checked, closed when it was stored — still gives the
// message a new conversation: nobody would answer it in the closed one.
func TestMessageCrossingClose(t *testing.T) {
	var h *harness
	var crossed atomic.Bool
	h = newHarnessRecords(t, nil, func(rec store.Records) store.Records {
		return crossingRecords{Records: rec, before: func(key, id string) {
			if id != "v:m2" || !strings.Contains(key, "/msgs/") || crossed.Swap(true) {
				return
			}
			conv := key[strings.LastIndex(key, "/")+1:]
			if _, err := h.c.closeConversation(context.Background(), conv, "alice"); err != nil {
				t.Errorf("close: %v", err)
			}
		}}
	})
	v, _ := h.visitor(nil)
	v.say("m1", "hi")
	conv := v.expect(TypeAck).ConversationID
	v.say("m2", "and one more thing")
	ack := v.expect(TypeAck)
	if !crossed.Load() {
		t.Fatal("the close did not cross the message")
	}
	if ack.ConversationID == conv || ack.Seq != 1 {
		t.Fatalf("ack %s: the message stayed in the closed conversation %s", ack.raw, conv)
	}
	if h.in.Event("chat:"+ack.ConversationID+":started") == nil {
		t.Fatalf("no chat.started for the new conversation: %v", h.in.IDs())
	}
}

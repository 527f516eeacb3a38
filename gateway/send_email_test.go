package gateway

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"github.com/stagegate/stagegate/connectors/tracking"
	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/testutil/smtpserver"
	"github.com/stagegate/stagegate/store"
)

// sendEmailConfig is a gateway whose stage offer sends a tracked email
// through a real SMTP server (SMTP_PORT) and whose stage mailed fires on
// email.sent ("Message sent to customer"); viewed fires on the open.
const sendEmailConfig = `
listen: 127.0.0.1:0
store: STORE
api:
  tokens: ["${TOKEN}"]
actions: {backoff_min: 20ms, backoff_max: 100ms, max_attempts: 4, poll: 20ms}
smtp:
  - name: outbound
    host: 127.0.0.1
    port: SMTP_PORT
    tls: none
    max_per_minute: 100
pipelines:
  - id: sales
    stages:
      - id: new
      - id: offer
        actions:
          - type: send_email
            smtp: outbound
            from: "Bob Seller <bob@example.com>"
            subject: "{{default \"Your offer\" .Item.Fields.subject}}"
            html: |
              <html><body><p>Hello {{.Contact.Name}},</p>
              <p>see <a href="https://example.com/pricing">our prices</a>.</p></body></html>
      - id: mailed
        triggers: [{type: email.sent, name: message sent to customer}]
      - id: viewed
        triggers: [{type: email.opened}]
connectors:
  - name: track
    type: tracking
    keys: ["0123456789abcdef0123456789abcdef"]
    scoring: {quick: 1ms}
`

func startSendEmailGateway(t *testing.T) (*testGW, *smtpserver.Server) {
	t.Helper()
	srv := smtpserver.Start(t)
	src := strings.NewReplacer("STORE", boltStore(t), "SMTP_PORT", fmt.Sprint(srv.Port)).Replace(sendEmailConfig)
	return startGatewayConfig(t, src), srv
}

// newContactItem creates an item at new for a contact (nil: none) with
// fields, and returns it.
func (tg *testGW) newContactItem(contact map[string]string, fields map[string]string) store.Item {
	tg.t.Helper()
	var it store.Item
	body := map[string]any{"pipeline": "sales", "fields": fields}
	if contact != nil {
		body["contact"] = contact
	}
	if st := tg.call("POST", "/api/v1/items", body, &it); st != http.StatusCreated {
		tg.t.Fatalf("create item: %d", st)
	}
	return it
}

// moveTo moves the item by hand.
func (tg *testGW) moveTo(id, stage string) {
	tg.t.Helper()
	if st := tg.call("POST", "/api/v1/items/"+id+"/move", map[string]string{"stage": stage}, nil); st != http.StatusOK {
		tg.t.Fatalf("move %s to %s: %d", id, stage, st)
	}
}

// waitStage waits until the item is at stage.
func (tg *testGW) waitStage(id, stage string) store.Item {
	tg.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var it store.Item
		tg.call("GET", "/api/v1/items/"+id, nil, &it)
		if it.Stage == stage {
			return it
		}
		if time.Now().After(deadline) {
			tg.t.Fatalf("item %s at %q, want %q; actions %+v", id, it.Stage, stage, tg.actions(id))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAction waits until the item's send_email run has status.
func (tg *testGW) waitAction(id, status string) store.OutboxEntry {
	tg.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := tg.actions(id)["offer/0"]
		if a.Status == status {
			return a
		}
		if time.Now().After(deadline) {
			tg.t.Fatalf("send_email of %s is %+v, want %s", id, a, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// moveEntry returns the id of the item's move into stage.
func (tg *testGW) moveEntry(id, stage string) string {
	tg.t.Helper()
	var tl struct{ Entries []store.TimelineEntry }
	tg.call("GET", "/api/v1/items/"+id+"/timeline", nil, &tl)
	for _, e := range tl.Entries {
		if e.Kind == store.EntryMove && e.To == stage {
			return e.ID
		}
	}
	tg.t.Fatalf("no move of %s into %s in %+v", id, stage, tl.Entries)
	return ""
}

// htmlPart returns the decoded HTML part of a message.
func htmlPart(t *testing.T, raw []byte) string {
	t.Helper()
	r, err := gomail.CreateReader(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := r.NextPart()
		if err != nil {
			t.Fatalf("no HTML part: %v", err)
		}
		if h, ok := p.Header.(*gomail.InlineHeader); ok {
			if ct, _, _ := h.ContentType(); ct == "text/html" {
				b, _ := io.ReadAll(p.Body)
				return string(b)
			}
		}
	}
}

// A move into offer sends one tracked message to the contact: its
// Message-ID derives from the action run's key, the HTML has the pixel and
// no untracked link, the server saw the contact as recipient. The
// email.sent event moves the item to mailed, and opening the pixel with a
// browser moves it on to viewed.
func TestSendEmailDelivers(t *testing.T) {
	tg, srv := startSendEmailGateway(t)
	it := tg.newContactItem(map[string]string{"email": "ann@client.test", "name": "Ann Müller"}, nil)
	tg.moveTo(it.ID, "offer")
	tg.waitStage(it.ID, "mailed")

	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	key := engine.ActionKey(it.ID, tg.moveEntry(it.ID, "offer"), 0)
	wantMID := "<sg." + tracking.MsgIDFor(key).String() + "@example.com>"
	h := m.Header()
	if got := h.Get("Message-Id"); got != wantMID {
		t.Errorf("Message-ID %q, want %q (derived from the key %s)", got, wantMID, key)
	}
	if m.From != "bob@example.com" || len(m.To) != 1 || m.To[0] != "ann@client.test" {
		t.Errorf("envelope %s → %v", m.From, m.To)
	}
	if to := h.Get("To"); !strings.Contains(to, "ann@client.test") {
		t.Errorf("To %q", to)
	}
	if h.Get("Subject") != "Your offer" {
		t.Errorf("Subject %q", h.Get("Subject"))
	}
	html := htmlPart(t, m.Raw)
	// public_url is the configured listen address (port 0): the paths count.
	pixel := regexp.MustCompile(`<img src="http://127\.0\.0\.1:0(/t/o/[A-Za-z0-9_-]+)"`).FindStringSubmatch(html)
	if pixel == nil {
		t.Fatalf("no tracking pixel in\n%s", html)
	}
	if strings.Contains(html, `href="https://example.com/pricing"`) || !strings.Contains(html, `href="http://127.0.0.1:0/t/c/`) {
		t.Errorf("link not rewritten:\n%s", html)
	}
	if !strings.Contains(html, "Hello Ann Müller") {
		t.Errorf("template not rendered:\n%s", html)
	}
	a := tg.waitAction(it.ID, store.OutboxDone)
	if a.Attempts != 1 {
		t.Errorf("attempts %d, want 1", a.Attempts)
	}

	// The "Message sent to customer" trigger fired on the action's event.
	var tl struct{ Entries []store.TimelineEntry }
	tg.call("GET", "/api/v1/items/"+it.ID+"/timeline", nil, &tl)
	var sentEvent string
	for _, e := range tl.Entries {
		if e.Kind == store.EntryMove && e.To == "mailed" {
			sentEvent = e.EventID
		}
	}
	var ev struct {
		Event struct {
			Type  string
			Attrs map[string]string
		}
	}
	if st := tg.call("GET", "/api/v1/events/"+sentEvent, nil, &ev); st != http.StatusOK ||
		ev.Event.Type != "email.sent" || ev.Event.Attrs["message_id"] != wantMID || ev.Event.Attrs[engine.CauseAttr] != a.ID {
		t.Errorf("email.sent event %q: %d %+v", sentEvent, st, ev)
	}

	// The customer opens it.
	req, _ := http.NewRequest("GET", tg.base+pixel[1], nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tg.waitStage(it.ID, "viewed")
}

// 421 to the first DATA: the action is retried with backoff, the second
// attempt carries the same Message-ID and is accepted; one message.
func TestSendEmailRetries4xx(t *testing.T) {
	tg, srv := startSendEmailGateway(t)
	it := tg.newContactItem(map[string]string{"email": "tempfail@client.test"}, nil)
	tg.moveTo(it.ID, "offer")
	tg.waitStage(it.ID, "mailed")
	a := tg.waitAction(it.ID, store.OutboxDone)
	if a.Attempts != 2 {
		t.Errorf("attempts %d, want 2", a.Attempts)
	}
	at := srv.Attempts()
	if len(at) != 2 || at[0].Code != "421" || at[1].Code != "250" || at[0].MessageID != at[1].MessageID {
		t.Errorf("attempts at the server %+v, want 421 then 250 for one Message-ID", at)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

// 550 at RCPT fails the action at once with the server's text; no event.
func TestSendEmailFails5xx(t *testing.T) {
	tg, srv := startSendEmailGateway(t)
	it := tg.newContactItem(map[string]string{"email": "permfail@client.test"}, nil)
	tg.moveTo(it.ID, "offer")
	a := tg.waitAction(it.ID, store.OutboxFailed)
	if a.Attempts != 1 || !strings.Contains(a.LastError, "550") || !strings.Contains(a.LastError, "User unknown in local recipient table") {
		t.Errorf("failed action %+v, want one attempt with the server's 550 text", a)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages, want none", n)
	}
	if got := tg.waitTimeline(it.ID, func(e store.TimelineEntry) bool { return e.Kind == store.EntryAction }); !strings.Contains(got.Message, "550") {
		t.Errorf("timeline %+v", got)
	}
}

// Nothing is sent, and the action fails at once with a clear reason, for a
// contact without an email address and for templates that would inject a
// header.
func TestSendEmailRefuses(t *testing.T) {
	tg, srv := startSendEmailGateway(t)
	cases := []struct {
		name    string
		contact map[string]string
		fields  map[string]string
		want    string
	}{
		{"no email", map[string]string{"phone": "+15551230000"}, nil, "has no email address"},
		{"no contact", nil, nil, "has no email address"},
		{"header injection", map[string]string{"email": "ann@client.test"}, map[string]string{"subject": "Hi\r\nBcc: evil@attacker.test"}, "subject: must be one line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			it := tg.newContactItem(c.contact, c.fields)
			tg.moveTo(it.ID, "offer")
			a := tg.waitAction(it.ID, store.OutboxFailed)
			if a.Attempts != 1 || !strings.Contains(a.LastError, c.want) {
				t.Errorf("failed action %+v, want %q", a, c.want)
			}
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages, want none", n)
	}
}

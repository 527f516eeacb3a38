package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/actions"
	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/testutil/smtpserver"
	"github.com/stagegate/stagegate/store"
)

// autoreplyConfig is a gateway whose forms connector "site" answers each
// submission of its contact form with an autoreply through a real SMTP
// server (SMTP_PORT), and creates a lead for an unknown sender.
const autoreplyConfig = `
listen: 127.0.0.1:0
store: STORE
api:
  tokens: ["${TOKEN}"]
actions: {backoff_min: 20ms, backoff_max: 100ms, max_attempts: 4, poll: 20ms}
smtp:
  - {name: outbound, host: 127.0.0.1, port: SMTP_PORT, tls: none}
pipelines:
  - id: sales
    stages: [{id: new}]
connectors:
  - name: site
    type: forms
    create: {pipeline: sales}
    forms:
      - id: contact
        autoreply:
          smtp: outbound
          from: "Sales <sales@example.com>"
          subject: "Thanks, {{.Contact.Name}}"
          text: "We got your message about {{index .Event.Attrs \"field.topic\"}}."
          track: false
`

func startAutoreplyGateway(t *testing.T) (*testGW, *smtpserver.Server) {
	t.Helper()
	srv := smtpserver.Start(t)
	src := strings.NewReplacer("STORE", boltStore(t), "SMTP_PORT", fmt.Sprint(srv.Port)).Replace(autoreplyConfig)
	return startGatewayConfig(t, src), srv
}

// submit posts the contact form and returns the event id.
func (tg *testGW) submitForm(fields url.Values) string {
	tg.t.Helper()
	req, _ := http.NewRequest("POST", tg.base+"/in/site/contact", strings.NewReader(fields.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tg.t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		EventID string `json:"event_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusOK || a.EventID == "" {
		tg.t.Fatalf("form: %d %+v %v", resp.StatusCode, a, err)
	}
	return a.EventID
}

// waitAutoreply waits until the autoreply of event id has status.
func (tg *testGW) waitAutoreply(eventID, status string) store.OutboxEntry {
	tg.t.Helper()
	id := engine.ActionID(engine.EventActionKey(eventID, "autoreply"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var a store.OutboxEntry
		st := tg.call("GET", "/api/v1/actions/"+id, nil, &a)
		if st == http.StatusOK && a.Status == status {
			return a
		}
		if time.Now().After(deadline) {
			tg.t.Fatalf("autoreply of %s: %d %+v, want %s", eventID, st, a, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitApplied waits until the engine applied event id, and returns its record.
func (tg *testGW) waitApplied(id string) store.EventRecord {
	tg.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var rec store.EventRecord
		tg.call("GET", "/api/v1/events/"+url.PathEscape(id), nil, &rec)
		if rec.Applied {
			return rec
		}
		if time.Now().After(deadline) {
			tg.t.Fatalf("event %s not applied: %+v", id, rec)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One submission, one autoreply to the address the form received, with
// the Message-ID derived from the event; the same submission again (same
// submission_id, so the same event) sends nothing more.
func TestFormAutoreply(t *testing.T) {
	tg, srv := startAutoreplyGateway(t)
	fields := url.Values{"email": {"Ann@Client.test"}, "name": {"Ann"}, "topic": {"pricing"}, "submission_id": {"s-1"}}
	id := tg.submitForm(fields)
	a := tg.waitAutoreply(id, store.OutboxDone)
	if a.Attempts != 1 || a.Type != "send_email" || a.Key != engine.EventActionKey(id, "autoreply") || a.ItemID == "" {
		t.Errorf("autoreply entry %+v", a)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	h := msgs[0].Header()
	from := mail.Address{Address: "sales@example.com"}
	if got, want := h.Get("Message-Id"), "<"+actions.MessageIDFor(a.Key, &from)+">"; got != want {
		t.Errorf("Message-ID %q, want %q", got, want)
	}
	if h.Get("Subject") != "Thanks, Ann" || len(msgs[0].To) != 1 || msgs[0].To[0] != "ann@client.test" {
		t.Errorf("message to %v, subject %q", msgs[0].To, h.Get("Subject"))
	}
	if body := string(msgs[0].Raw); !strings.Contains(body, "We got your message about pricing.") {
		t.Errorf("body %q", body)
	}
	// The lead the form created has the autoreply on its timeline.
	tl := tg.waitTimeline(a.ItemID, func(e store.TimelineEntry) bool { return strings.Contains(e.Message, "sent email") })
	if !strings.Contains(tl.Message, "ann@client.test: Thanks, Ann") {
		t.Errorf("last timeline entry %+v", tl)
	}

	// The same submission again: a duplicate, no second message.
	if again := tg.submitForm(fields); again != id {
		t.Fatalf("resubmission is event %s, want %s", again, id)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages after the resubmission, want 1", n)
	}
	if a2 := tg.waitAutoreply(id, store.OutboxDone); a2.Attempts != 1 {
		t.Errorf("autoreply after the resubmission %+v", a2)
	}
}

// 421 to the first DATA: retried with backoff, the same Message-ID twice,
// one message.
func TestFormAutoreplyRetries4xx(t *testing.T) {
	tg, srv := startAutoreplyGateway(t)
	id := tg.submitForm(url.Values{"email": {"tempfail@client.test"}, "name": {"Tim"}})
	if a := tg.waitAutoreply(id, store.OutboxDone); a.Attempts != 2 {
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

// A submission without an email address is accepted and applied as usual;
// no autoreply is queued, and the event's note says why.
func TestFormAutoreplyWithoutEmail(t *testing.T) {
	tg, srv := startAutoreplyGateway(t)
	id := tg.submitForm(url.Values{"phone": {"(202) 555-0123"}, "name": {"Bo"}})
	rec := tg.waitApplied(id)
	if rec.Failed || !strings.Contains(rec.Note, "autoreply not sent: the submission has no email address") {
		t.Errorf("event record %+v", rec)
	}
	aid := engine.ActionID(engine.EventActionKey(id, "autoreply"))
	if st := tg.call("GET", "/api/v1/actions/"+aid, nil, nil); st != http.StatusNotFound {
		t.Errorf("GET autoreply: %d, want 404", st)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages, want none", n)
	}
}

// A name with a line break would inject a header through the templated
// subject: the autoreply fails at once with that reason, nothing is sent.
func TestFormAutoreplyHeaderInjection(t *testing.T) {
	tg, srv := startAutoreplyGateway(t)
	id := tg.submitForm(url.Values{"email": {"eve@client.test"}, "name": {"Eve\r\nBcc: victim@example.net"}})
	a := tg.waitAutoreply(id, store.OutboxFailed)
	if a.Attempts != 1 || !strings.Contains(a.LastError, "subject: must be one line") {
		t.Errorf("autoreply %+v", a)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(srv.Attempts()); n != 0 {
		t.Errorf("%d attempts at the server, want none", n)
	}
}

// A tracked autoreply of a submission that reached no item (the
// connector creates none) is sent untracked, to the form's address.
func TestFormAutoreplyWithoutItem(t *testing.T) {
	srv := smtpserver.Start(t)
	src := strings.NewReplacer("STORE", boltStore(t), "SMTP_PORT", fmt.Sprint(srv.Port),
		"    create: {pipeline: sales}\n", "", "track: false", "track: true").Replace(autoreplyConfig) + `  - name: track
    type: tracking
    keys: ["0123456789abcdef0123456789abcdef"]
`
	tg := startGatewayConfig(t, src)
	id := tg.submitForm(url.Values{"email": {"ann@client.test"}, "name": {"Ann"}})
	a := tg.waitAutoreply(id, store.OutboxDone)
	if a.ItemID != "" {
		t.Errorf("autoreply entry %+v, want no item", a)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || msgs[0].To[0] != "ann@client.test" || strings.Contains(string(msgs[0].Raw), "/t/o/") {
		t.Fatalf("messages %+v", msgs)
	}
	var list struct{ Actions []store.OutboxEntry }
	tg.call("GET", "/api/v1/actions?status=done", nil, &list)
	if len(list.Actions) != 1 || list.Actions[0].ID != a.ID {
		t.Errorf("done actions %+v", list.Actions)
	}
}

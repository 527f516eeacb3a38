package actions

import (
	"context"
	"errors"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/internal/testutil/smtpserver"
	"github.com/stagegate/stagegate/store"
	redisstore "github.com/stagegate/stagegate/store/redis"
)

// sendRunner is a runner with one SMTP account on srv.
func sendRunner(t *testing.T, st store.Store, srv *smtpserver.Server, perMinute int) *Runner {
	t.Helper()
	r := newRunner(t, Config{}, st)
	acct := SMTPAccount{Name: "out", Host: srv.Host, Port: srv.Port, TLS: SMTPNone, MaxPerMinute: perMinute}
	acct.SetDefaults()
	if errs := acct.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	r.smtp = SMTPAccounts{acct}
	return r
}

func plainSpec() engine.ActionSpec {
	f := false
	return engine.ActionSpec{Type: "send_email", Settings: &SendEmail{
		SMTP: "out", From: "Bob <bob@example.com>", Subject: "Offer for {{.Contact.Name}}",
		Text: "Hello {{.Contact.Name}}", HTML: "<p>Hello {{.Contact.Name}}</p>", Track: &f,
	}}
}

// An attempt after the server accepted the message (the process died
// before the outbox was updated) does not send again: the sent mark of
// the action run says it was accepted, and only the event is recorded
// (a duplicate). Had the process died before that mark, the resend
// carries the same Message-ID, derived from the action's key.
func TestSendEmailOncePerRun(t *testing.T) {
	srv := smtpserver.Start(t)
	st := openStore(t)
	r := sendRunner(t, st, srv, 0)
	in := input(ann, plainSpec())
	for range 2 {
		if err := r.RunAction(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages after two attempts, want 1", len(msgs))
	}
	mid := msgs[0].Header().Get("Message-Id")
	if want := "<" + MessageIDFor(in.Key(), &mailAddr) + ">"; mid != want || !strings.HasSuffix(mid, "@example.com>") {
		t.Errorf("Message-ID %q, want %q", mid, want)
	}
	if got := msgs[0].Header().Get("Subject"); got != "Offer for Ann" {
		t.Errorf("Subject %q", got)
	}
	ev, _, err := st.GetEvent(t.Context(), plainSentEvent(ann.ID, &sentMark{MessageID: mid}, t0).ID)
	if err != nil || ev.Event.Type != "email.sent" || ev.Event.Subject.ItemID != ann.ID || ev.Event.Attrs[engine.CauseAttr] != in.ID {
		t.Errorf("email.sent event: %+v %v", ev, err)
	}

	// Died before the mark: another store has none, and the resend has
	// the same Message-ID.
	r2 := sendRunner(t, openStore(t), srv, 0)
	if err := r2.RunAction(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	if msgs = srv.Messages(); len(msgs) != 2 || msgs[1].Header().Get("Message-Id") != mid {
		t.Fatalf("resend: %d messages, Message-ID %q, want %q", len(msgs), msgs[len(msgs)-1].Header().Get("Message-Id"), mid)
	}
}

var mailAddr = mail.Address{Address: "bob@example.com"}

// max_per_minute counts every gateway sharing a Redis store: two runners
// (two processes) on one account of 2 a minute send two, the third waits
// for the next minute with a retryable error.
func TestSendEmailMaxPerMinuteAcrossInstances(t *testing.T) {
	srv := smtpserver.Start(t)
	rs := redisserver.Start(t)
	open := func() store.Store {
		st, err := redisstore.Open(t.Context(), store.Config{URL: rs.URL(), Prefix: "rate:", DedupWindow: time.Hour}, redisstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	a, b := sendRunner(t, open(), srv, 2), sendRunner(t, open(), srv, 2)
	for i, r := range []*Runner{a, b, a} {
		in := input(ann, plainSpec())
		in.Index = i
		in.ID = engine.ActionID(in.Key())
		err := r.RunAction(t.Context(), in)
		if i < 2 {
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			continue
		}
		ae, ok := err.(*engine.ActionError)
		if !ok || ae.Permanent || ae.RetryAfter <= 0 || ae.RetryAfter > time.Minute+time.Second || !strings.Contains(err.Error(), "max_per_minute 2") {
			t.Fatalf("third message: %v (%#v), want a retry at the next minute", err, err)
		}
	}
	if n := len(srv.Messages()); n != 2 {
		t.Fatalf("%d messages, want 2", n)
	}
}

// fakeSent is a Sent folder that fails the first fails saves.
type fakeSent struct {
	fails int
	saved [][]byte
}

func (f *fakeSent) SaveSent(_ context.Context, raw []byte, _ time.Time) error {
	if f.fails > 0 {
		f.fails--
		return errors.New("imap down")
	}
	f.saved = append(f.saved, raw)
	return nil
}

// save_to: the copy is saved after the event is recorded; a failed save is
// retried without sending the message again, and a saved copy is not
// saved twice.
func TestSendEmailSaveTo(t *testing.T) {
	srv := smtpserver.Start(t)
	r := sendRunner(t, openStore(t), srv, 0)
	box := &fakeSent{fails: 1}
	r.UseMailbox("mail", box)
	spec := plainSpec()
	spec.Settings.(*SendEmail).SaveTo = "mail"
	in := input(ann, spec)
	err := r.RunAction(t.Context(), in)
	if err == nil || permanent(err) || !strings.Contains(err.Error(), "imap down") {
		t.Fatalf("first attempt: %v, want a retryable save failure", err)
	}
	for range 2 {
		if err := r.RunAction(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || len(box.saved) != 1 || string(box.saved[0]) != string(msgs[0].Raw) {
		t.Fatalf("%d messages sent, %d copies saved; want one of each, the same bytes", len(msgs), len(box.saved))
	}
}

// STARTTLS and implicit TLS with AUTH PLAIN against the real server; a
// wrong password is the server's 535, permanent; an account that wants
// STARTTLS does not send in clear to a server without it.
func TestSendEmailTLSAndAuth(t *testing.T) {
	cases := []struct {
		name     string
		server   smtpserver.Options
		tls      string
		password string
		want     string // "" sends
	}{
		{"starttls", smtpserver.Options{TLS: "starttls", Username: "bob", Password: "pw"}, SMTPStartTLS, "pw", ""},
		{"implicit", smtpserver.Options{TLS: "implicit", Username: "bob", Password: "pw"}, SMTPImplicit, "pw", ""},
		{"bad password", smtpserver.Options{TLS: "starttls", Username: "bob", Password: "pw"}, SMTPStartTLS, "nope", "535"},
		{"no starttls", smtpserver.Options{}, SMTPStartTLS, "pw", "STARTTLS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := smtpserver.StartWith(t, c.server)
			r := newRunner(t, Config{}, openStore(t))
			acct := SMTPAccount{Name: "out", Host: srv.Host, Port: srv.Port, TLS: c.tls, InsecureSkipVerify: true,
				Username: "bob", Password: c.password}
			acct.SetDefaults()
			r.smtp = SMTPAccounts{acct}
			err := r.RunAction(t.Context(), input(ann, plainSpec()))
			n := len(srv.Messages())
			switch {
			case c.want == "" && (err != nil || n != 1):
				t.Fatalf("err %v, %d messages; want one sent", err, n)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || n != 0):
				t.Fatalf("err %v, %d messages; want %q and none sent", err, n, c.want)
			case c.want == "535" && !permanent(err):
				t.Fatalf("a refused login is permanent: %v", err)
			}
		})
	}
}

// Bad input from the item fails the run at once, with the reason, and
// sends nothing: a line break in a header (injection), an address that
// does not parse, a template that fails to execute.
func TestSendEmailRefusesBadInput(t *testing.T) {
	srv := smtpserver.Start(t)
	r := sendRunner(t, openStore(t), srv, 0)
	cases := []struct {
		name   string
		change func(s *SendEmail)
		fields map[string]string
		want   string
	}{
		{"to injection", func(s *SendEmail) { s.To = "{{.Item.Fields.to}}" },
			map[string]string{"to": "ann@client.test\r\nBcc: evil@attacker.test"}, "to: must be one line"},
		{"subject injection", func(s *SendEmail) { s.Subject = "Hi {{.Item.Fields.name}}" },
			map[string]string{"name": "Ann\nBcc: evil@attacker.test"}, "subject: must be one line"},
		{"bad to", func(s *SendEmail) { s.To = "{{.Item.Fields.to}}" },
			map[string]string{"to": "ann at client"}, `to: not a list of email addresses: "ann at client"`},
		{"bad from", func(s *SendEmail) { s.From = "{{.Item.Fields.from}}" },
			map[string]string{"from": "a@x.test, b@x.test"}, "from: not one email address"},
		{"text template", func(s *SendEmail) { s.Text = "{{.Item.Fields.plan.price}}" },
			map[string]string{"plan": "gold"}, "can't evaluate field price"},
		{"html template", func(s *SendEmail) { s.HTML = "<p>{{.Item.Fields.plan.price}}</p>" },
			map[string]string{"plan": "gold"}, "html:"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := plainSpec()
			c.change(spec.Settings.(*SendEmail))
			it := ann
			it.Fields = c.fields
			in := input(it, spec)
			in.Index = i
			err := r.RunAction(t.Context(), in)
			if !permanent(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want a permanent error with %q", err, c.want)
			}
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages sent, want none", n)
	}
}

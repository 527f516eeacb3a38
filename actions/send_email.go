package actions

import (
	"context"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/mail"
	"strings"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/validate"
)

// SendEmail are the settings of send_email: a message to the customer,
// submitted through a named account of the smtp section. Every text is a
// template over the action's data (.Item, .Contact, .Stage, .Event, …);
// html is an html/template, so values are escaped for HTML.
type SendEmail struct {
	SMTP    string `yaml:"smtp" json:"smtp,omitempty"`
	From    string `yaml:"from" json:"from,omitempty"`
	To      string `yaml:"to" json:"to,omitempty"` // default: the contact's email
	Cc      string `yaml:"cc" json:"cc,omitempty"`
	Bcc     string `yaml:"bcc" json:"bcc,omitempty"`
	ReplyTo string `yaml:"reply_to" json:"reply_to,omitempty"`
	Subject string `yaml:"subject" json:"subject,omitempty"`
	HTML    string `yaml:"html" json:"html,omitempty"`
	Text    string `yaml:"text" json:"text,omitempty"`
	// Track (default true) builds the message through the tracking
	// connector: open pixel, click links, Message-ID recorded.
	Track    *bool `yaml:"track" json:"track,omitempty"`
	Honeypot bool  `yaml:"honeypot" json:"honeypot,omitempty"`
	// SaveTo names an imap connector whose Sent folder gets a copy.
	SaveTo string `yaml:"save_to" json:"save_to,omitempty"`
}

// Tracked reports whether the message goes through the tracking builder
// (track, default true).
func (s *SendEmail) Tracked() bool { return s.Track == nil || *s.Track }

// Validate implements engine.ActionSettings. The names of smtp and
// save_to are checked against the rest of the config by the config loader.
func (s *SendEmail) Validate(string) validate.Errors {
	var errs validate.Errors
	if s.SMTP == "" {
		errs.Add("smtp", "required: the name of an account of the smtp section")
	}
	if s.From == "" {
		errs.Add("from", "required")
	} else if !strings.Contains(s.From, "{{") {
		if _, err := oneAddress(s.From); err != nil {
			errs.Add("from", "%v", err)
		}
	}
	if s.Subject == "" {
		errs.Add("subject", "required")
	}
	if strings.TrimSpace(s.HTML) == "" && strings.TrimSpace(s.Text) == "" {
		errs.Add("html", "html or text is required")
	}
	for _, t := range []struct{ path, text string }{
		{"from", s.From}, {"to", s.To}, {"cc", s.Cc}, {"bcc", s.Bcc}, {"reply_to", s.ReplyTo},
		{"subject", s.Subject}, {"text", s.Text},
	} {
		engine.CheckTemplate(&errs, t.path, t.text)
	}
	if _, err := parseHTML(s.HTML); err != nil {
		errs.Add("html", "%v", err)
	}
	if s.Honeypot && !s.Tracked() {
		errs.Add("honeypot", "needs track: true")
	}
	return errs
}

func parseHTML(text string) (*htmltemplate.Template, error) {
	return htmltemplate.New("html").Option("missingkey=zero").Funcs(engine.TemplateFuncs()).Parse(text)
}

var sendEmailKind = newKind(true, (*Runner).runSendEmail)

// runSendEmail renders the message, builds it (tracked through the
// tracking connector, or plain), submits it over SMTP and, once the server
// accepted it, records email.sent and, with save_to, saves a copy in the
// imap connector's Sent folder. An attempt after an accepted one (its
// event was not recorded, or the outbox not updated) only records the
// event: the message is not sent twice. A crash between the server's
// acceptance and that record sends it again under the same Message-ID.
func (r *Runner) runSendEmail(ctx context.Context, in engine.ActionInput, s *SendEmail) error {
	acct, ok := r.smtp.Get(s.SMTP)
	if !ok {
		return engine.Permanent(fmt.Errorf("send_email: no smtp account %q", s.SMTP))
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout(in.Action))
	defer cancel()
	mark, err := r.sentBefore(ctx, in.ID)
	if err != nil {
		return fmt.Errorf("send_email: %w", err)
	}
	if mark == nil {
		if mark, err = r.sendNew(ctx, in, s, acct); err != nil {
			return err
		}
	}
	if err := r.recordSent(ctx, in, acct, mark); err != nil {
		return err
	}
	if s.SaveTo != "" && !mark.Saved {
		return r.saveCopy(ctx, in, s.SaveTo, mark)
	}
	return nil
}

// sendNew renders, builds and submits the message.
func (r *Runner) sendNew(ctx context.Context, in engine.ActionInput, s *SendEmail, acct *SMTPAccount) (*sentMark, error) {
	req, bcc, err := r.mailRequest(in, s)
	if err != nil {
		return nil, engine.Permanent(fmt.Errorf("send_email: %w", err))
	}
	var built BuiltMail
	switch {
	case !s.Tracked():
		built, err = r.buildPlain(ctx, req)
	case in.Item.ID == "":
		// An event action (a form's autoreply) whose event reached no
		// item: tracking events need an item to go to, so it is plain.
		r.log.Info("send_email: no item, sent untracked", "action", in.ID)
		built, err = r.buildPlain(ctx, req)
	case r.mail == nil:
		return nil, engine.Permanent(errors.New("send_email: track: true needs a tracking connector (or set track: false)"))
	default:
		built, err = r.mail.BuildMail(ctx, req)
	}
	if err != nil {
		return nil, fmt.Errorf("send_email: build: %w", err)
	}
	if err := r.takeSlot(ctx, acct); err != nil {
		return nil, err
	}
	env := envelope{from: req.From.Address, raw: built.Raw}
	for _, l := range [][]*mail.Address{req.To, req.Cc, bcc} {
		for _, a := range l {
			env.rcpt = append(env.rcpt, a.Address)
		}
	}
	if err := acct.submit(ctx, env); err != nil {
		return nil, err
	}
	mark := &sentMark{MessageID: built.MessageID, TrackingID: built.TrackingID, Subject: req.Subject, At: r.now()}
	for _, a := range req.To {
		mark.To = append(mark.To, a.Address)
	}
	if s.SaveTo != "" {
		mark.Raw = built.Raw
	}
	r.markSent(context.WithoutCancel(ctx), in.ID, mark)
	r.log.Info("send_email: accepted", "item", in.Item.ID, "action", in.ID, "smtp", acct.Name,
		"message_id", built.MessageID, "recipients", len(env.rcpt))
	return mark, nil
}

// recordSent records the email.sent event of an accepted message (caused
// by this action run, for the engine's loop guard) and a timeline entry.
func (r *Runner) recordSent(ctx context.Context, in engine.ActionInput, acct *SMTPAccount, m *sentMark) error {
	var ev *normalize.Event
	if m.TrackingID != "" && r.mail != nil {
		var err error
		if ev, err = r.mail.MailSent(ctx, m.TrackingID, m.At); err != nil {
			return fmt.Errorf("send_email: accepted as %s, but recording it failed: %w", m.MessageID, err)
		}
	} else {
		ev = plainSentEvent(in.Item.ID, m, r.now())
	}
	ev.Channel = "smtp:" + acct.Name
	ev.Attrs[engine.CauseAttr] = in.ID
	ev.Attrs["smtp"] = acct.Name
	ev.Attrs["mailbox"] = acct.Username
	if err := r.emit(ctx, ev); err != nil {
		return fmt.Errorf("send_email: accepted as %s, but its email.sent event was not recorded: %w", m.MessageID, err)
	}
	if r.st != nil && in.Item.ID != "" { // an autoreply may have reached no item
		msg := fmt.Sprintf("sent email %s to %s: %s", m.MessageID, strings.Join(m.To, ", "), m.Subject)
		if err := r.st.AppendTimeline(ctx, engine.ActionEntry(in, msg)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("send_email: timeline: %w", err)
		}
	}
	return nil
}

// emit records an event the way connectors do (the gateway's intake), or
// straight in the store.
func (r *Runner) emit(ctx context.Context, ev *normalize.Event) error {
	if r.submit != nil {
		return r.submit(ctx, ev)
	}
	if r.st == nil {
		return errors.New("no store to record events in")
	}
	_, err := r.st.Append(ctx, ev)
	return err
}

// mailRequest renders the settings over the action's data and checks the
// result: one From address, parseable address lists, one-line subject.
// The contact's email is the default To. It returns the Bcc list apart:
// Bcc goes to the envelope only.
func (r *Runner) mailRequest(in engine.ActionInput, s *SendEmail) (MailRequest, []*mail.Address, error) {
	req := MailRequest{Key: in.Key(), ItemID: in.Item.ID, Honeypot: s.Honeypot, Date: r.now()}
	text := map[string]string{}
	for _, f := range []struct{ name, tmpl string }{
		{"from", s.From}, {"to", s.To}, {"cc", s.Cc}, {"bcc", s.Bcc}, {"reply_to", s.ReplyTo},
		{"subject", s.Subject}, {"text", s.Text},
	} {
		v, err := r.render(f.name, f.tmpl, in.Data)
		if err != nil {
			return req, nil, err
		}
		if f.name != "text" {
			if strings.ContainsAny(v, "\r\n\x00") {
				return req, nil, fmt.Errorf("%s: must be one line (the template gave a line break)", f.name)
			}
			v = strings.TrimSpace(v)
		}
		text[f.name] = v
	}
	html, err := r.renderHTML(s.HTML, in.Data)
	if err != nil {
		return req, nil, err
	}
	req.Subject, req.Text, req.HTML = text["subject"], text["text"], html
	if strings.TrimSpace(req.HTML) == "" && strings.TrimSpace(req.Text) == "" {
		return req, nil, errors.New("html and text are both empty")
	}
	if req.From, err = oneAddress(text["from"]); err != nil {
		return req, nil, fmt.Errorf("from: %w", err)
	}
	switch {
	case text["to"] == "" && in.DefaultTo != "":
		// An event action (a form's autoreply): the address the event has.
		name := ""
		if in.Event != nil {
			name = in.Event.Subject.Name
		}
		req.To = []*mail.Address{{Name: name, Address: in.DefaultTo}}
	case text["to"] == "":
		to := contactEmail(in.Data.Contact)
		if to == nil {
			return req, nil, fmt.Errorf("item %s: its contact %q has no email address (set to:, or add an email to the contact)", in.Item.ID, in.Item.ContactID)
		}
		req.To = []*mail.Address{to}
	default:
		if req.To, err = addressList("to", text["to"]); err != nil {
			return req, nil, err
		}
	}
	if req.Cc, err = addressList("cc", text["cc"]); err != nil {
		return req, nil, err
	}
	if req.ReplyTo, err = addressList("reply_to", text["reply_to"]); err != nil {
		return req, nil, err
	}
	bcc, err := addressList("bcc", text["bcc"])
	return req, bcc, err
}

// renderHTML executes the html template (escaping values for HTML).
func (r *Runner) renderHTML(text string, data engine.ActionData) (string, error) {
	if strings.TrimSpace(text) == "" {
		return "", nil
	}
	t, err := parseHTML(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("html: %w", err)
	}
	return b.String(), nil
}

// contactEmail is the contact's first email address, with its name.
func contactEmail(c store.Contact) *mail.Address {
	for _, id := range c.Identities {
		if id.Kind == store.IdentityEmail && id.Value != "" {
			return &mail.Address{Name: c.Name, Address: id.Value}
		}
	}
	return nil
}

// oneAddress parses exactly one address with a domain.
func oneAddress(s string) (*mail.Address, error) {
	a, err := mail.ParseAddress(s)
	if err != nil || strings.LastIndexByte(a.Address, '@') <= 0 {
		return nil, fmt.Errorf("not one email address: %q", s)
	}
	return a, nil
}

// addressList parses a comma-separated list; empty is none.
func addressList(name, s string) ([]*mail.Address, error) {
	if s == "" {
		return nil, nil
	}
	l, err := mail.ParseAddressList(s)
	if err != nil {
		return nil, fmt.Errorf("%s: not a list of email addresses: %q", name, s)
	}
	for _, a := range l {
		if strings.LastIndexByte(a.Address, '@') <= 0 {
			return nil, fmt.Errorf("%s: %q has no domain", name, a.Address)
		}
	}
	return l, nil
}

package actions

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"text/template"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// Options are the runner's settings that are not part of the config file.
type Options struct {
	// Store keeps timelines and items (log, set_field, set_responsible).
	Store store.Store
	// Logger is already scoped by the caller; nil discards.
	Logger *slog.Logger
	// Now is the clock (webhook timestamps, Retry-After dates); nil means
	// time.Now.
	Now func() time.Time
	// Resolver looks up host names; nil means net.DefaultResolver.
	Resolver Resolver
	// SMTP are the accounts send_email submits through (the smtp section,
	// defaults set).
	SMTP SMTPAccounts
	// Submit records an event an action emits (send_email's email.sent)
	// the way connectors' events are recorded; nil appends it to Store.
	Submit func(ctx context.Context, ev *normalize.Event) error
}

// Runner runs every action type of kinds: log, webhook, bitrix24,
// set_field, set_responsible and send_email. It implements engine.ActionRunner and is safe for
// concurrent use.
type Runner struct {
	cfg  Config
	st   store.Store
	log  *slog.Logger
	now  func() time.Time
	http *resty.Client
	logA engine.LogAction

	smtp      SMTPAccounts
	mail      MailBuilder // nil: no tracking connector
	mailboxes map[string]SentSaver
	submit    func(ctx context.Context, ev *normalize.Event) error

	tmpls sync.Map // template text → *template.Template
}

var _ engine.ActionRunner = (*Runner)(nil)

// New builds a Runner; cfg must have its defaults set.
func New(cfg Config, o Options) (*Runner, error) {
	r := &Runner{cfg: cfg, st: o.Store, log: o.Logger, now: o.Now, smtp: o.SMTP, submit: o.Submit}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	resolver := o.Resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	c, err := newHTTP(cfg, resolver, r.log)
	if err != nil {
		return nil, err
	}
	r.http = c
	r.logA = engine.LogAction{Store: o.Store, Logger: r.log}
	return r, nil
}

// UseMailBuilder sets the builder of tracked messages (the tracking
// connector's) for send_email. Call it before actions run.
func (r *Runner) UseMailBuilder(b MailBuilder) { r.mail = b }

// UseMailbox lets send_email's save_to name the imap connector name.
// Call it before actions run.
func (r *Runner) UseMailbox(name string, s SentSaver) {
	if r.mailboxes == nil {
		r.mailboxes = map[string]SentSaver{}
	}
	r.mailboxes[name] = s
}

// Kinds implements engine.ActionRunner.
func (r *Runner) Kinds() map[string]engine.ActionKind { return Kinds() }

// RunAction implements engine.ActionRunner: one attempt of one action.
func (r *Runner) RunAction(ctx context.Context, in engine.ActionInput) error {
	k, ok := kinds[in.Action.Type]
	if !ok {
		return engine.Permanent(fmt.Errorf("unknown action type %q", in.Action.Type))
	}
	return k.Run(r, ctx, in)
}

// timeout is the attempt timeout of an HTTP action.
func (r *Runner) timeout(a engine.ActionSpec) time.Duration {
	if a.Timeout > 0 {
		return a.Timeout
	}
	return r.cfg.Timeout
}

// render executes a setting's template over the action's data; an
// execution error is permanent (the same data fails the same way).
func (r *Runner) render(name, text string, data engine.ActionData) (string, error) {
	t, ok := r.tmpls.Load(text)
	if !ok {
		parsed, err := engine.ParseTemplate(name, text)
		if err != nil {
			return "", engine.Permanent(err)
		}
		t, _ = r.tmpls.LoadOrStore(text, parsed)
	}
	var b bytes.Buffer
	if err := t.(*template.Template).Execute(&b, data); err != nil {
		return "", engine.Permanent(fmt.Errorf("%s: %w", name, err))
	}
	return b.String(), nil
}

// Package webhook holds two push connector kinds that receive HTTP POSTs
// under /in/{name}/:
//
//   - webhook: inbound webhooks signed per the Standard Webhooks spec
//     (webhook-id, webhook-timestamp, webhook-signature), turned into
//     webhook.received or crm.<name> events;
//   - forms: web forms and callback forms posted by browsers or servers
//     (urlencoded, multipart or JSON), turned into form.submitted events.
//
// Each kind has its config (config.go), a pure normalizer golden-tested on
// testdata/, and an http.Handler that answers only after Intake made the
// event durable. Signatures are checked by internal/stdwebhooks, which the
// telephony connector and the webhook action share.
package webhook

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/stdwebhooks"
	"github.com/stagegate/stagegate/normalize"
)

// WebhookKind is the connector kind "webhook": signed inbound webhooks.
var WebhookKind = connectors.NewKind("webhook", NewWebhookConfig, NewWebhook)

// Webhook is a connector of kind webhook. It answers POST on "/" and on any
// sub-path; each verified request becomes one event whose id is derived
// from webhook-id, so the sender's retries are duplicates.
type Webhook struct {
	*connectors.Push
	region   string
	verifier *stdwebhooks.Verifier
}

var _ connectors.HTTPConnector = (*Webhook)(nil)

// NewWebhook builds a webhook connector from its validated config.
func NewWebhook(base connectors.Base, cfg *WebhookConfig, deps connectors.Deps) (*Webhook, error) {
	s, err := connectors.NewPush("webhook", base, deps, cfg.MaxBody)
	if err != nil {
		return nil, err
	}
	v, err := stdwebhooks.NewVerifier(cfg.AllSecrets(), cfg.Tolerance, s.Now)
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", base.Name, err)
	}
	return &Webhook{Push: s, region: normalize.Region(cfg.DefaultRegion, deps.Region), verifier: v}, nil
}

// ServeHTTP verifies, normalizes and submits one webhook. Answers: 200
// {"event_id","duplicate"}; 400 for missing headers, a stale or future
// timestamp, or a bad body; 401 for a bad signature; 405 for a method other
// than POST; 413 for a body over max_body; 503 with Retry-After when the
// intake is unavailable. Nothing is submitted unless the request is valid.
func (c *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		c.Refuse(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	body, ok := c.ReadBody(w, r)
	if !ok {
		return
	}
	id, err := c.verifier.Verify(r.Header, body)
	switch {
	case errors.Is(err, stdwebhooks.ErrMissingHeaders):
		c.Refuse(w, r, http.StatusBadRequest, "missing_headers", err.Error())
		return
	case errors.Is(err, stdwebhooks.ErrBadTimestamp):
		c.Refuse(w, r, http.StatusBadRequest, "bad_timestamp", err.Error())
		return
	case err != nil:
		c.Refuse(w, r, http.StatusUnauthorized, "bad_signature", "no valid signature")
		return
	}
	ev, err := NormalizeWebhook(c.Name(), id, body, c.Now(), c.region)
	if err != nil {
		code := "bad_field"
		if errors.Is(err, ErrBadJSON) {
			code = "bad_json"
		}
		c.Refuse(w, r, http.StatusBadRequest, code, err.Error())
		return
	}
	res, ok := c.Submit(w, r, ev)
	if !ok {
		return
	}
	connectors.WriteAccepted(w, res)
}

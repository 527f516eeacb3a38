package actions

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/stdwebhooks"
	"github.com/stagegate/stagegate/validate"
)

// Headers every webhook attempt carries.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderActionID       = "Stagegate-Action-Id"
	HeaderAttempt        = "Stagegate-Attempt"
)

// Webhook are the settings of webhook.
type Webhook struct {
	URL         string            `yaml:"url" json:"url,omitempty"`
	Method      string            `yaml:"method" json:"method,omitempty"` // POST (default), PUT or PATCH
	Secret      string            `yaml:"secret" json:"-"`
	Headers     map[string]string `yaml:"headers" json:"-"`
	Template    string            `yaml:"template" json:"template,omitempty"`
	ContentType string            `yaml:"content_type" json:"content_type,omitempty"`
}

var (
	headerName     = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	reservedHeader = []string{"content-length", "host", "idempotency-key", "webhook-id",
		"webhook-timestamp", "webhook-signature", "transfer-encoding", "connection", "stagegate-cause"}
)

// Validate implements engine.ActionSettings.
func (a *Webhook) Validate(string) validate.Errors {
	var errs validate.Errors
	engine.CheckURL(&errs, "url", a.URL)
	if m := a.Method; m != "" && m != "POST" && m != "PUT" && m != "PATCH" {
		errs.Add("method", "must be POST, PUT or PATCH, not %q", m)
	}
	if s, ok := strings.CutPrefix(a.Secret, "whsec_"); ok {
		if _, err := base64.StdEncoding.DecodeString(s); err != nil || s == "" {
			errs.Add("secret", "a whsec_ secret must be followed by base64")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(a.Headers)) {
		v, path := a.Headers[name], validate.Join("headers", name)
		switch {
		case !headerName.MatchString(name):
			errs.Add(path, "not a valid header name")
		case slices.Contains(reservedHeader, strings.ToLower(name)):
			errs.Add(path, "is set by the gateway and cannot be configured")
		case strings.ContainsAny(v, "\r\n\x00"):
			errs.Add(path, "value must not contain line breaks")
		}
	}
	engine.CheckTemplate(&errs, "template", a.Template)
	if a.ContentType != "" && strings.ContainsAny(a.ContentType, "\r\n") {
		errs.Add("content_type", "must not contain line breaks")
	}
	return errs
}

var webhookKind = newKind(true, (*Runner).runWebhook)

// runWebhook sends the stage entry to the action's URL: the ActionData as
// JSON, or the action's template rendered over it. The same
// Idempotency-Key goes with every attempt; with a secret the request is
// signed the Standard Webhooks way (webhook-id is the action run id, also
// the same on every attempt).
func (r *Runner) runWebhook(ctx context.Context, in engine.ActionInput, a *Webhook) error {
	var body []byte
	contentType := "application/json"
	if a.Template != "" {
		s, err := r.render("template", a.Template, in.Data)
		if err != nil {
			return err
		}
		body = []byte(s)
	} else {
		b, err := json.Marshal(in.Data)
		if err != nil {
			return engine.Permanent(fmt.Errorf("encode body: %w", err))
		}
		body = b
	}
	if a.ContentType != "" {
		contentType = a.ContentType
	}
	h := http.Header{}
	for k, v := range a.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", contentType)
	h.Set(HeaderIdempotencyKey, in.Key())
	h.Set(HeaderActionID, in.ID)
	h.Set(HeaderAttempt, strconv.Itoa(in.Attempt))
	if a.Secret != "" {
		now := r.now()
		h.Set(stdwebhooks.HeaderID, in.ID)
		h.Set(stdwebhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(stdwebhooks.HeaderSignature, stdwebhooks.Sign(a.Secret, in.ID, now, body))
	}
	method := a.Method
	if method == "" {
		method = http.MethodPost
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout(in.Action))
	defer cancel()
	resp, err := send(ctx, r.http, method, a.URL, h, body)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", redact(a.URL), err)
	}
	if resp.status < 200 || resp.status > 299 {
		return fmt.Errorf("webhook %s: %w", redact(a.URL), statusError(resp, r.now()))
	}
	return nil
}

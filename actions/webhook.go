package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/stdwebhooks"
)

// Headers every webhook attempt carries.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderActionID       = "Stagegate-Action-Id"
	HeaderAttempt        = "Stagegate-Attempt"
)

// runWebhook sends the stage entry to the action's URL: the ActionData as
// JSON, or the action's template rendered over it. The same
// Idempotency-Key goes with every attempt; with a secret the request is
// signed the Standard Webhooks way (webhook-id is the action run id, also
// the same on every attempt).
func (r *Runner) runWebhook(ctx context.Context, in engine.ActionInput) error {
	a := in.Action
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
	ctx, cancel := context.WithTimeout(ctx, r.timeout(a))
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

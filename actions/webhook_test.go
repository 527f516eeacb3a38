package actions

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/stdwebhooks"
)

// The webhook POSTs the stage entry as JSON with the idempotency key, the
// action id and custom headers, and signs it (Standard Webhooks) when a
// secret is set: the gateway's own webhook verifier accepts it.
func TestWebhookRequest(t *testing.T) {
	rec := newRecorder(t)
	r := newRunner(t, Config{AllowPrivate: true}, nil)
	const secret = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0xMjM0NTY3OA=="
	in := input(ann, engine.ActionSpec{Type: "webhook", Settings: &Webhook{URL: rec.srv.URL + "/hooks/won?tenant=1", Secret: secret, Headers: map[string]string{"Authorization": "Bearer crm-token", "X-Env": "test"}}})
	if err := r.RunAction(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	got := rec.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	req := got[0]
	h := req.header
	if req.method != http.MethodPost || req.path != "/hooks/won" || h.Get("Content-Type") != "application/json" ||
		h.Get("Idempotency-Key") != "i-1/ev:hooks:msg-1/1" || h.Get("Stagegate-Action-Id") != in.ID ||
		h.Get("Authorization") != "Bearer crm-token" || h.Get("X-Env") != "test" || h.Get("User-Agent") != "stagegate" {
		t.Fatalf("request %s %s headers %v", req.method, req.path, h)
	}
	var body map[string]any
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatal(err)
	}
	item, _ := body["item"].(map[string]any)
	stage, _ := body["stage"].(map[string]any)
	contact, _ := body["contact"].(map[string]any)
	event, _ := body["event"].(map[string]any)
	if body["type"] != "stage.entered" || body["id"] != in.ID || body["idempotency_key"] != in.Key() ||
		body["previous_stage"] != "new" || body["trigger"] != "paid" || body["actor"] != "bob" ||
		item["id"] != "i-1" || stage["id"] != "won" || contact["name"] != "Ann" || event["id"] != "hooks:msg-1" {
		t.Fatalf("body = %s", req.body)
	}
	if _, ok := event["raw"]; ok {
		t.Fatal("the event's raw input was sent")
	}
	v, err := stdwebhooks.NewVerifier([]string{secret}, time.Hour, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(req.body))
	hr.Header = h
	if id, err := v.Verify(hr.Header, req.body); err != nil || id != in.ID {
		t.Fatalf("signature check = %q, %v", id, err)
	}
}

// A template replaces the JSON body, with its own content type.
func TestWebhookTemplate(t *testing.T) {
	rec := newRecorder(t)
	r := newRunner(t, Config{AllowPrivate: true}, nil)
	in := input(ann, engine.ActionSpec{Type: "webhook", Settings: &Webhook{URL: rec.srv.URL, Method: "PUT", ContentType: "text/plain", Template: `{{.Contact.Name}} entered {{.Stage.ID | upper}} ({{json .Item.Fields}}) {{default "nobody" .Trigger}}`}})
	if err := r.RunAction(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	req := rec.requests()[0]
	if want := `Ann entered WON ({"bitrix24_id":"123"}) paid`; string(req.body) != want || req.method != "PUT" ||
		req.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("%s %q (%s), want PUT %q", req.method, req.body, req.header.Get("Content-Type"), want)
	}
}

// What an answer means: 2xx done; 429 and 5xx retried (after Retry-After);
// a redirect is not followed and fails; other 4xx fail for good; a target
// that hangs times out and is retried.
func TestWebhookAnswers(t *testing.T) {
	hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	for _, tc := range []struct {
		name       string
		h          http.HandlerFunc
		ok, retry  bool
		retryAfter time.Duration
		msg        string
	}{
		{"204", status(http.StatusNoContent), true, false, 0, ""},
		{"500", status(500), false, true, 0, "500 Internal Server Error"},
		{"503 retry-after", status(503, "Retry-After", "7"), false, true, 7 * time.Second, "503"},
		{"429 retry-after date", status(429, "Retry-After", t0.Add(90*time.Second).Format(http.TimeFormat)), false, true, 90 * time.Second, "429"},
		{"302", status(302, "Location", "http://127.0.0.1/admin"), false, false, 0, `302 Found: redirect to "http://127.0.0.1/admin" not followed`},
		{"404", status(404), false, false, 0, "404 Not Found"},
		{"hang", hang, false, true, 0, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t, tc.h)
			r := newRunner(t, Config{AllowPrivate: true, ActionPolicy: engine.ActionPolicy{Timeout: 200 * time.Millisecond}}, nil)
			start := time.Now()
			err := r.RunAction(t.Context(), input(ann, engine.ActionSpec{Type: "webhook", Settings: &Webhook{URL: rec.srv.URL}}))
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ae *engine.ActionError
			isAE := errors.As(err, &ae)
			switch {
			case err == nil:
				t.Fatal("no error")
			case permanent(err) == tc.retry:
				t.Fatalf("error %v: permanent %v, want %v", err, permanent(err), !tc.retry)
			case tc.retryAfter != 0 && (!isAE || ae.RetryAfter != tc.retryAfter):
				t.Fatalf("error %v: retry after %v, want %v", err, ae, tc.retryAfter)
			case !strings.Contains(err.Error(), tc.msg):
				t.Fatalf("error %q does not say %q", err, tc.msg)
			}
			if tc.name == "hang" {
				if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
					t.Fatalf("timed out after %v, want about the 200ms timeout", took)
				}
			}
			if n := len(rec.requests()); n != 1 {
				t.Fatalf("%d requests (a redirect followed?), want 1", n)
			}
		})
	}
}

// Transport errors (here: nothing listens) are retried, like timeouts.
func TestTransportErrorRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	r := newRunner(t, Config{AllowPrivate: true}, nil)
	err := r.RunAction(t.Context(), input(ann, engine.ActionSpec{Type: "webhook", Settings: &Webhook{URL: url}}))
	if err == nil || permanent(err) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("error = %v, want a retryable connection error", err)
	}
}

// Messages never show a URL's query or user info.
func TestRedact(t *testing.T) {
	if got := redact("https://u:p@crm.example.com/hook?token=s3cret"); !strings.HasPrefix(got, "https://crm.example.com/hook?") ||
		strings.Contains(got, "s3cret") || strings.Contains(got, "u:p") {
		t.Fatalf("redact = %q", got)
	}
}

package webhook

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/stdwebhooks"
)

func newTestWebhook(t testing.TB, in connectors.Intake, clk *clock) *Webhook {
	t.Helper()
	cfg := NewWebhookConfig()
	cfg.Secret = testSecret
	cfg.MaxBody = 4 << 10
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	c, err := WebhookKind.New(connectors.Base{Name: "hooks", Type: "webhook"}, cfg, testDeps(in, clk))
	if err != nil {
		t.Fatal(err)
	}
	return c.(*Webhook)
}

// signed builds a signed POST of body to path.
func signed(path, id string, ts time.Time, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	signHeaders(r, testSecret, id, ts, []byte(body))
	return r
}

const okBody = `{"code":"invoice_paid","subject":{"email":"ann@client.test"}}`

func TestWebhookAccepts(t *testing.T) {
	in, clk := &fakeIntake{}, newClock()
	h := newTestWebhook(t, in, clk)
	for path, id := range map[string]string{"/": "msg_root", "/stripe/events": "msg_sub"} {
		w := serve(h, signed(path, id, t0, okBody))
		if w.Code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, w.Code, w.Body)
		}
		if a := decodeAccepted(t, w); a.Duplicate || a.EventID != "hooks:"+id {
			t.Errorf("POST %s: %+v", path, a)
		}
	}
	evs := in.Events()
	if len(evs) != 2 || evs[0].Attrs["code"] != "invoice_paid" || evs[0].Subject.Email != "ann@client.test" ||
		!evs[0].ReceivedAt.Equal(t0) || string(evs[0].Raw) != okBody {
		t.Fatalf("events: %+v", evs)
	}
	if rj := in.Rejects(); len(rj) != 0 {
		t.Errorf("rejects on success: %v", rj)
	}
}

func TestWebhookReplayIsDuplicate(t *testing.T) {
	in, clk := &fakeIntake{}, newClock()
	h := newTestWebhook(t, in, clk)
	first := decodeAccepted(t, serve(h, signed("/", "msg_1", t0, okBody)))
	// The sender retries a minute later: new timestamp and signature, same id.
	clk.Add(time.Minute)
	w := serve(h, signed("/", "msg_1", clk.Now(), okBody))
	if w.Code != http.StatusOK {
		t.Fatalf("replay: %d %s", w.Code, w.Body)
	}
	again := decodeAccepted(t, w)
	if !again.Duplicate || again.EventID != first.EventID || first.Duplicate {
		t.Errorf("first %+v, replay %+v", first, again)
	}
	if n := len(in.Events()); n != 1 {
		t.Errorf("%d events recorded, want 1", n)
	}
}

func TestWebhookRefusals(t *testing.T) {
	big := `{"code":"x","attrs":{"pad":"` + strings.Repeat("a", 5<<10) + `"}}`
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		{"GET", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) }, 405, "method_not_allowed"},
		{"no headers", func() *http.Request {
			return httptest.NewRequest(http.MethodPost, "/", strings.NewReader(okBody))
		}, 400, "missing_headers"},
		{"6 minutes old", func() *http.Request { return signed("/", "m", t0.Add(-6*time.Minute), okBody) }, 400, "bad_timestamp"},
		{"6 minutes ahead", func() *http.Request { return signed("/", "m", t0.Add(6*time.Minute), okBody) }, 400, "bad_timestamp"},
		{"tampered body", func() *http.Request {
			r := signed("/", "m", t0, okBody)
			r.Body = io.NopCloser(strings.NewReader(strings.Replace(okBody, "ann", "eve", 1)))
			return r
		}, 401, "bad_signature"},
		{"wrong secret", func() *http.Request {
			r := signed("/", "m", t0, okBody)
			r.Header.Set(stdwebhooks.HeaderSignature, stdwebhooks.Sign("whsec_d3Jvbmc=", "m", t0, []byte(okBody)))
			return r
		}, 401, "bad_signature"},
		{"bad JSON", func() *http.Request { return signed("/", "m", t0, `{"code":`) }, 400, "bad_json"},
		{"missing code", func() *http.Request { return signed("/", "m", t0, `{"subject":{"email":"a@b.test"}}`) }, 400, "bad_field"},
		{"bad email", func() *http.Request { return signed("/", "m", t0, `{"code":"x","subject":{"email":"nope"}}`) }, 400, "bad_field"},
		{"bad phone", func() *http.Request { return signed("/", "m", t0, `{"code":"x","subject":{"phone":"12"}}`) }, 400, "bad_field"},
		{"bad type", func() *http.Request { return signed("/", "m", t0, `{"type":"call.inbound","code":"x"}`) }, 400, "bad_field"},
		{"too large", func() *http.Request { return signed("/", "m", t0, big) }, 413, "body_too_large"},
		{"too large, no length", func() *http.Request {
			r := signed("/", "m", t0, big)
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader([]byte(big))))
			r.ContentLength = -1
			return r
		}, 413, "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &fakeIntake{}
			w := serve(newTestWebhook(t, in, newClock()), tt.req())
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if got := errorCode(t, w); got != tt.code {
				t.Errorf("code %q, want %q", got, tt.code)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if n := len(in.Events()); n != 0 {
				t.Errorf("%d events submitted on a refusal", n)
			}
			if rj := in.Rejects(); len(rj) != 1 || rj[0] != "hooks/"+tt.code {
				t.Errorf("rejects %v, want [hooks/%s]", rj, tt.code)
			}
		})
	}
}

func TestWebhookIntakeUnavailable(t *testing.T) {
	in, clk := &fakeIntake{}, newClock()
	h := newTestWebhook(t, in, clk)
	in.SetDown(true)
	w := serve(h, signed("/", "msg_down", t0, okBody))
	if w.Code != http.StatusServiceUnavailable || errorCode(t, w) != "unavailable" {
		t.Fatalf("intake down: %d %s", w.Code, w.Body)
	}
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	// The sender retries once the store is back: the event is new, not a duplicate.
	in.SetDown(false)
	w = serve(h, signed("/", "msg_down", t0, okBody))
	if w.Code != http.StatusOK || decodeAccepted(t, w).Duplicate {
		t.Fatalf("retry: %d %s", w.Code, w.Body)
	}
}

func TestKindNewWrongConfig(t *testing.T) {
	deps := testDeps(&fakeIntake{}, newClock())
	if _, err := WebhookKind.New(connectors.Base{Name: "x"}, NewFormsConfig(), deps); err == nil {
		t.Error("webhook kind accepted a forms config")
	}
	if _, err := FormsKind.New(connectors.Base{Name: "x"}, NewWebhookConfig(), deps); err == nil {
		t.Error("forms kind accepted a webhook config")
	}
	cfg := NewWebhookConfig()
	cfg.Secret = testSecret
	if _, err := WebhookKind.New(connectors.Base{Name: "x"}, cfg, connectors.Deps{}); err == nil {
		t.Error("webhook kind built without an intake")
	}
}

// TestRefusalLogging checks that refusals do not flood the log: one warning
// per interval, the rest at debug, counted in the next warning.
func TestRefusalLogging(t *testing.T) {
	var buf bytes.Buffer
	in, clk := &fakeIntake{}, newClock()
	cfg := NewWebhookConfig()
	cfg.Secret = testSecret
	deps := testDeps(in, clk)
	deps.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := NewWebhook(connectors.Base{Name: "hooks", Type: "webhook"}, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if h.Name() != "hooks" {
		t.Errorf("Name() = %q", h.Name())
	}
	unsigned := func() *http.Request { return httptest.NewRequest(http.MethodPost, "/", strings.NewReader(okBody)) }
	for range 3 {
		serve(h, unsigned())
	}
	clk.Add(connectors.WarnEvery)
	serve(h, unsigned())
	out := buf.String()
	if n := strings.Count(out, "level=WARN"); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, out)
	}
	if n := strings.Count(out, "level=DEBUG"); n != 2 {
		t.Errorf("%d debug lines, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, "quieted_since_last=2") {
		t.Errorf("second warning does not count the quieted refusals:\n%s", out)
	}
}

// BenchmarkWebhookHandler measures one signed request through verification,
// normalization and submission.
func BenchmarkWebhookHandler(b *testing.B) {
	h := newTestWebhook(b, nopIntake{}, newClock())
	body := []byte(`{"type":"crm.invoice_paid","code":"inv-77","subject":{"email":"ann@client.test","phone":"+15551230000"},"attrs":{"amount":"10"}}`)
	ts := strconv.FormatInt(t0.Unix(), 10)
	sig := stdwebhooks.Sign(testSecret, "msg_bench", t0, body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set(stdwebhooks.HeaderID, "msg_bench")
		r.Header.Set(stdwebhooks.HeaderTimestamp, ts)
		r.Header.Set(stdwebhooks.HeaderSignature, sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

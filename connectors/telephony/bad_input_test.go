package telephony

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/stdwebhooks"
)

// checkRefused asserts an answer of status and code, and that nothing was
// recorded and the refusal was counted.
func checkRefused(t *testing.T, e *env, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status || errorCode(t, w) != code {
		t.Fatalf("answer %d %s, want %d %s", w.Code, w.Body, status, code)
	}
	if k := keys(e.fake); len(k) != 0 || len(e.in.Events()) != 0 {
		t.Fatalf("recorded %v, events %v", k, e.in.Events())
	}
	if rj := e.in.Rejects(); !slices.Equal(rj, []string{"tel/" + code}) {
		t.Errorf("rejects %v", rj)
	}
}

func TestTwilioBadInput(t *testing.T) {
	ok := func(kv ...string) url.Values {
		v := in("ringing", 0)
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		params url.Values
		status int
		code   string
	}{
		{"unparsable From", ok("From", "not a number"), 400, "bad_number"},
		{"unparsable To", ok("To", "+1 555"), 400, "bad_number"},
		{"letters in a number", ok("From", "+1 202 555 01OO"), 400, "bad_number"},
		{"missing CallSid", ok("CallSid", ""), 400, "missing_field"},
		{"CallSid with spaces", ok("CallSid", "CA 1"), 400, "bad_field"},
		{"missing CallStatus", ok("CallStatus", ""), 400, "missing_field"},
		{"unknown status", ok("CallStatus", "ringing-ish"), 400, "bad_status"},
		{"bad CallDuration", ok("CallDuration", "12s"), 400, "bad_field"},
		{"negative SequenceNumber", ok("SequenceNumber", "-1"), 400, "bad_field"},
		{"no direction", ok("Direction", ""), 400, "missing_field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ProviderTwilio, nil)
			checkRefused(t, e, e.postTwilio(t, tc.params), tc.status, tc.code)
		})
	}

	t.Run("oversized body", func(t *testing.T) {
		e := newEnv(t, ProviderTwilio, func(c *Config) { c.MaxBody = 1024 })
		checkRefused(t, e, e.postTwilio(t, ok("Padding", strings.Repeat("x", 2000))), 413, "body_too_large")
	})
	t.Run("oversized body without length", func(t *testing.T) {
		e := newEnv(t, ProviderTwilio, func(c *Config) { c.MaxBody = 1024 })
		r := e.twilioRequest("/", ok("Padding", strings.Repeat("x", 2000)))
		r.ContentLength = -1
		checkRefused(t, e, serve(e.c, r), 413, "body_too_large")
	})
	t.Run("not a form", func(t *testing.T) {
		e := newEnv(t, ProviderTwilio, nil)
		r := e.twilioRequest("/", ok())
		r.Header.Set("Content-Type", "application/json")
		checkRefused(t, e, serve(e.c, r), 415, "unsupported_media_type")
	})
	t.Run("no content type", func(t *testing.T) {
		// Signed and form-shaped, but not declared a form: refused like
		// any other body that is not form-encoded.
		e := newEnv(t, ProviderTwilio, nil)
		r := e.twilioRequest("/", ok())
		r.Header.Del("Content-Type")
		checkRefused(t, e, serve(e.c, r), 415, "unsupported_media_type")
	})
	t.Run("broken encoding", func(t *testing.T) {
		e := newEnv(t, ProviderTwilio, nil)
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("CallSid=%zz"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		checkRefused(t, e, serve(e.c, r), 400, "bad_body")
	})
	t.Run("GET", func(t *testing.T) {
		e := newEnv(t, ProviderTwilio, nil)
		w := serve(e.c, httptest.NewRequest(http.MethodGet, "/", nil))
		checkRefused(t, e, w, 405, "method_not_allowed")
		if w.Header().Get("Allow") != http.MethodPost {
			t.Errorf("Allow %q", w.Header().Get("Allow"))
		}
	})
}

func TestGenericBadInput(t *testing.T) {
	const good = `{"call_id":"c1","direction":"inbound","from":"+12025550123","to":"+15550001111","status":"ringing"}`
	now := t0
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		{"bad signature", func() *http.Request {
			r := genericRequest("msg_1", now, good)
			r.Header.Set(stdwebhooks.HeaderSignature, stdwebhooks.Sign("whsec_b3RoZXI=", "msg_1", now, []byte(good)))
			return r
		}, 401, "bad_signature"},
		{"body changed after signing", func() *http.Request {
			r := genericRequest("msg_1", now, good)
			r.Body = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Replace(good, "ringing", "busy", 1))).Body
			return r
		}, 401, "bad_signature"},
		{"missing headers", func() *http.Request {
			r := genericRequest("msg_1", now, good)
			r.Header.Del(stdwebhooks.HeaderID)
			return r
		}, 400, "missing_headers"},
		{"stale timestamp", func() *http.Request { return genericRequest("msg_1", now.Add(-time.Hour), good) }, 400, "bad_timestamp"},
		{"not JSON", func() *http.Request { return genericRequest("msg_1", now, "call_id=c1") }, 400, "bad_field"},
		{"missing call_id", func() *http.Request {
			return genericRequest("msg_1", now, `{"direction":"inbound","from":"+12025550123","status":"ringing"}`)
		}, 400, "missing_field"},
		{"missing status", func() *http.Request {
			return genericRequest("msg_1", now, `{"call_id":"c1","direction":"inbound","from":"+12025550123"}`)
		}, 400, "missing_field"},
		{"unknown status", func() *http.Request {
			return genericRequest("msg_1", now, strings.Replace(good, "ringing", "ringed", 1))
		}, 400, "bad_status"},
		{"unparsable from", func() *http.Request {
			return genericRequest("msg_1", now, strings.Replace(good, "+12025550123", "call me", 1))
		}, 400, "bad_number"},
		{"unparsable line", func() *http.Request {
			return genericRequest("msg_1", now, `{"call_id":"c1","direction":"inbound","from":"+12025550123","line":"101","status":"ringing"}`)
		}, 400, "bad_number"},
		{"bad direction", func() *http.Request {
			return genericRequest("msg_1", now, strings.Replace(good, `"inbound"`, `"sideways"`, 1))
		}, 400, "bad_field"},
		{"no direction", func() *http.Request {
			return genericRequest("msg_1", now, strings.Replace(good, `"direction":"inbound",`, "", 1))
		}, 400, "missing_field"},
		{"bad duration", func() *http.Request {
			return genericRequest("msg_1", now, strings.Replace(good, `"status"`, `"duration_s":"long","status"`, 1))
		}, 400, "bad_field"},
		{"bad timestamp", func() *http.Request {
			return genericRequest("msg_1", now, strings.Replace(good, `"status"`, `"timestamp":"yesterday","status"`, 1))
		}, 400, "bad_field"},
		{"object as call_id", func() *http.Request {
			return genericRequest("msg_1", now, strings.Replace(good, `"c1"`, `{"a":1}`, 1))
		}, 400, "bad_field"},
		{"oversized", func() *http.Request {
			return genericRequest("msg_1", now, strings.Replace(good, `"status"`, `"pad":"`+strings.Repeat("x", 70<<10)+`","status"`, 1))
		}, 413, "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ProviderGeneric, nil)
			checkRefused(t, e, serve(e.c, tc.req()), tc.status, tc.code)
		})
	}
}

// TestGenericDirectionFromOwnNumbers: without a direction, own_numbers
// tell which end is ours.
func TestGenericDirectionFromOwnNumbers(t *testing.T) {
	e := newEnv(t, ProviderGeneric, func(c *Config) { c.OwnNumbers = []string{"(555) 000-1111"} })
	for i, body := range []string{
		`{"call_id":"c1","from":"+12025550123","to":"+15550001111","status":"ringing"}`,
		`{"call_id":"c2","from":"555-000-1111","to":"202 555 0199","status":"initiated"}`,
	} {
		if w := serve(e.c, genericRequest("msg_"+string(rune('a'+i)), t0, body)); w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", body, w.Code, w.Body)
		}
	}
	evs := e.in.Events()
	if len(evs) != 2 || evs[0].Type != inbound || evs[1].Type != outbound || evs[1].Subject.Phone != "+12025550199" ||
		evs[1].Attrs["line"] != lineMain {
		t.Fatalf("events %+v", evs)
	}
}

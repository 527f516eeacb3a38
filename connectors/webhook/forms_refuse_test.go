package webhook

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/internal/httpx"
)

func TestFormsRefusals(t *testing.T) {
	manyFields := url.Values{}
	for i := range 11 {
		manyFields.Set(fmt.Sprintf("f%d", i), "v")
	}
	manyJSON := `{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8","i":"9","j":"10","k":"11"}`
	big := url.Values{"email": {"ann@client.test"}, "message": {strings.Repeat("x", 3000)}}
	tests := []struct {
		name   string
		req    func(t *testing.T) *http.Request
		status int
		code   string
	}{
		{"unknown form", func(*testing.T) *http.Request { return postForm("/nope", lead) }, 404, "unknown_form"},
		{"no form id", func(*testing.T) *http.Request { return postForm("/", lead) }, 404, "unknown_form"},
		{"nested path", func(*testing.T) *http.Request { return postForm("/contact/extra", lead) }, 404, "unknown_form"},
		{"GET", func(*testing.T) *http.Request { return httptest.NewRequest(http.MethodGet, "/contact", nil) }, 405, "method_not_allowed"},
		{"body too large", func(*testing.T) *http.Request { return postForm("/contact", big) }, 413, "body_too_large"},
		{"body too large, chunked", func(*testing.T) *http.Request {
			r := postForm("/contact", big)
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(big.Encode())), -1
			return r
		}, 413, "body_too_large"},
		{"file too large", func(t *testing.T) *http.Request {
			r := postMultipart(t, "/contact", []string{"email", "ann@client.test"}, []string{"big.bin"}, 4096)
			r.ContentLength = -1
			return r
		}, 413, "body_too_large"},
		{"too many fields, urlencoded", func(*testing.T) *http.Request { return postForm("/contact", manyFields) }, 413, "too_many_fields"},
		{"too many fields, multipart files", func(t *testing.T) *http.Request {
			return postMultipart(t, "/contact", []string{"email", "ann@client.test"}, strings.Fields("1 2 3 4 5 6 7 8 9 10"), 1)
		}, 413, "too_many_fields"},
		{"too many fields, JSON", func(*testing.T) *http.Request { return postJSON("/contact", manyJSON) }, 413, "too_many_fields"},
		{"unsupported type", func(*testing.T) *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/contact", strings.NewReader("email=a@b.test"))
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, 415, "unsupported_media_type"},
		{"bad JSON", func(*testing.T) *http.Request { return postJSON("/contact", `["email"]`) }, 400, "bad_json"},
		{"nested JSON", func(*testing.T) *http.Request { return postJSON("/contact", `{"email":{"a":1}}`) }, 400, "bad_field"},
		{"multipart without boundary", func(*testing.T) *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/contact", strings.NewReader("x"))
			r.Header.Set("Content-Type", "multipart/form-data")
			return r
		}, 400, "bad_body"},
		{"bad email", func(*testing.T) *http.Request {
			return postForm("/contact", url.Values{"email": {"ann at client"}})
		}, 400, "bad_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &fakeIntake{}
			w := serve(newTestForms(t, in, newClock(), nil), tt.req(t))
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if got := errorCode(t, w); got != tt.code {
				t.Errorf("code %q, want %q", got, tt.code)
			}
			if n := len(in.Events()); n != 0 {
				t.Errorf("%d events submitted on a refusal", n)
			}
			if rj := in.Rejects(); len(rj) != 1 || rj[0] != "forms/"+tt.code {
				t.Errorf("rejects %v, want [forms/%s]", rj, tt.code)
			}
		})
	}
}

// The unknown form answer names the connector's forms by their paths, not
// a "{form_id}" placeholder.
func TestFormsUnknownFormNamesKnownForms(t *testing.T) {
	h := newTestForms(t, &fakeIntake{}, newClock(), nil)
	for path, want := range map[string]string{
		"/nope": `no form "nope"; the forms of connector "forms" are /in/forms/contact, /in/forms/callback`,
		"/":     `no form id in the path; the forms of connector "forms" are /in/forms/contact, /in/forms/callback`,
	} {
		w := serve(h, postForm(path, url.Values{"email": {"ann@client.test"}}))
		var e httpx.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != http.StatusNotFound {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		if e.Error.Code != "unknown_form" || e.Error.Message != want {
			t.Errorf("%s: %q %q, want unknown_form %q", path, e.Error.Code, e.Error.Message, want)
		}
	}
}

func TestFormsBadPhoneKeepsLead(t *testing.T) {
	in := &fakeIntake{}
	h := newTestForms(t, in, newClock(), nil)
	w := serve(h, postForm("/contact", url.Values{"email": {"ann@client.test"}, "phone": {"call me"}}))
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	evs := in.Events()
	if len(evs) != 1 || evs[0].Subject.Phone != "" || evs[0].Subject.Email != "ann@client.test" ||
		len(evs[0].Warnings) != 1 || evs[0].Attrs["field.phone"] != "call me" {
		t.Errorf("events %+v", evs)
	}
}

func TestFormsIntakeUnavailable(t *testing.T) {
	in := &fakeIntake{}
	h := newTestForms(t, in, newClock(), nil)
	in.SetDown(true)
	w := serve(h, postForm("/callback", url.Values{"tel": {"+12025550100"}}))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || w.Header().Get("Location") != "" {
		t.Fatalf("intake down: %d %v", w.Code, w.Header())
	}
	in.SetDown(false)
	if w = serve(h, postForm("/callback", url.Values{"tel": {"+12025550100"}})); w.Code != http.StatusSeeOther {
		t.Fatalf("retry: %d", w.Code)
	}
	if n := len(in.Events()); n != 1 {
		t.Errorf("%d events, want 1", n)
	}
}

// BenchmarkFormsHandler measures one urlencoded submission.
func BenchmarkFormsHandler(b *testing.B) {
	h := newTestForms(b, nopIntake{}, newClock(), nil)
	body := lead.Encode()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, postForm("/contact", lead))
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

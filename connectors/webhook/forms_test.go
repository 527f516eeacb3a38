package webhook

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/connectors"
)

const thanks = "https://www.example.com/thanks"

func newTestForms(t testing.TB, in connectors.Intake, clk *clock, edit func(*FormsConfig)) *Forms {
	t.Helper()
	cfg := NewFormsConfig()
	cfg.Forms = []FormConfig{
		{ID: "contact"},
		{ID: "callback", Kind: FormKindCallback, Fields: map[string]string{"phone": "tel"}, Redirect: thanks},
	}
	cfg.AllowedOrigins = []string{"https://www.example.com"}
	cfg.MaxBody = 2048
	cfg.MaxFields = 10
	if edit != nil {
		edit(cfg)
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	c, err := FormsKind.New(connectors.Base{Name: "forms", Type: "forms"}, cfg, testDeps(in, clk))
	if err != nil {
		t.Fatal(err)
	}
	return c.(*Forms)
}

func postForm(path string, v url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func postJSON(path, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// postMultipart sends fields (name, value pairs) and, for each file name, a
// file part of size bytes.
func postMultipart(t testing.TB, path string, fields []string, files []string, size int) *http.Request {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := mw.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		fw, err := mw.CreateFormFile("attachment", f)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(bytes.Repeat([]byte{0xAB}, size))
	}
	mw.Close()
	r := httptest.NewRequest(http.MethodPost, path, &b)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	return r
}

var lead = url.Values{"email": {"Ann@Client.test"}, "name": {"Ann"}, "phone": {"202-555-0123"}, "message": {"hello"}}

func TestFormsEncodings(t *testing.T) {
	tests := []struct {
		name string
		req  func(t *testing.T) *http.Request
	}{
		{"urlencoded", func(*testing.T) *http.Request { return postForm("/contact", lead) }},
		{"multipart, file ignored", func(t *testing.T) *http.Request {
			return postMultipart(t, "/contact", []string{"email", "Ann@Client.test", "name", "Ann", "phone", "202-555-0123", "message", "hello"}, []string{"cv.pdf"}, 300)
		}},
		{"JSON", func(*testing.T) *http.Request {
			return postJSON("/contact", `{"email":"Ann@Client.test","name":"Ann","phone":"202-555-0123","message":"hello","consent":true,"age":null}`)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &fakeIntake{}
			w := serve(newTestForms(t, in, newClock(), nil), tt.req(t))
			if w.Code != http.StatusOK {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			a := decodeAccepted(t, w)
			evs := in.Events()
			if len(evs) != 1 || evs[0].ID != a.EventID {
				t.Fatalf("events %+v, answer %+v", evs, a)
			}
			ev := evs[0]
			if ev.Type != "form.submitted" || ev.Channel != "contact" || ev.Subject.Email != "ann@client.test" ||
				ev.Subject.Phone != "+12025550123" || ev.Subject.Name != "Ann" || ev.Attrs["field.message"] != "hello" ||
				ev.Attrs["form_id"] != "contact" || ev.Attrs["kind"] != "form" {
				t.Errorf("event %+v", ev)
			}
			if _, ok := ev.Attrs["field.attachment"]; ok || bytes.Contains(ev.Raw, []byte{0xAB}) {
				t.Error("a file part was kept")
			}
		})
	}
}

func TestFormsSameSubmissionOneEvent(t *testing.T) {
	in, clk := &fakeIntake{}, newClock()
	h := newTestForms(t, in, clk, nil)
	first := decodeAccepted(t, serve(h, postForm("/contact", lead)))
	clk.Add(20 * time.Second) // a double click, still 10:15
	// The same fields in another order and encoding are the same submission.
	second := decodeAccepted(t, serve(h, postJSON("/contact", `{"message":"hello","phone":"202-555-0123","name":"Ann","email":"Ann@Client.test"}`)))
	if first.Duplicate || !second.Duplicate || first.EventID != second.EventID {
		t.Fatalf("first %+v, second %+v", first, second)
	}
	clk.Add(time.Minute) // 10:16: a new submission
	third := decodeAccepted(t, serve(h, postForm("/contact", lead)))
	if third.Duplicate || third.EventID == first.EventID {
		t.Errorf("a minute later: %+v", third)
	}
	// A client-generated submission_id makes a resubmission a duplicate whenever it comes.
	withID := url.Values{"email": {"bob@client.test"}, SubmissionIDField: {"c3f1"}}
	a := decodeAccepted(t, serve(h, postForm("/contact", withID)))
	clk.Add(time.Hour)
	b := decodeAccepted(t, serve(h, postForm("/contact", withID)))
	if a.EventID != "forms:contact:c3f1" || !b.Duplicate {
		t.Errorf("submission_id: %+v then %+v", a, b)
	}
	if n := len(in.Events()); n != 3 {
		t.Errorf("%d events recorded, want 3", n)
	}
}

func TestFormsRedirect(t *testing.T) {
	in := &fakeIntake{}
	h := newTestForms(t, in, newClock(), nil)
	evil := url.Values{"tel": {"+1 202 555 0199"}, "redirect": {"https://evil.test/"}, "next": {"https://evil.test/next"}}
	w := serve(h, postForm("/callback", evil))
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != thanks {
		t.Fatalf("callback form: %d Location %q", w.Code, w.Header().Get("Location"))
	}
	// A form without a redirect answers JSON, whatever the request asks.
	w = serve(h, postForm("/contact", url.Values{"email": {"c@client.test"}, "next": {"https://evil.test/"}}))
	if w.Code != http.StatusOK || w.Header().Get("Location") != "" {
		t.Fatalf("contact form: %d Location %q", w.Code, w.Header().Get("Location"))
	}
	// A script asking for JSON gets JSON rather than the thank-you page.
	r := postForm("/callback", url.Values{"tel": {"+1 202 555 0198"}})
	r.Header.Set("Accept", "application/json")
	if w = serve(h, r); w.Code != http.StatusOK {
		t.Fatalf("callback form, Accept JSON: %d", w.Code)
	}
	if evs := in.Events(); len(evs) != 3 || evs[0].Attrs["kind"] != "callback" || evs[0].Subject.Phone != "+12025550199" {
		t.Errorf("events %+v", evs)
	}
}

func TestFormsHoneypot(t *testing.T) {
	in := &fakeIntake{}
	h := newTestForms(t, in, newClock(), nil)
	spam := url.Values{"email": {"bot@spam.test"}, DefaultHoneypot: {"http://spam.test"}}
	w := serve(h, postForm("/contact", spam))
	if w.Code != http.StatusOK || decodeAccepted(t, w).Duplicate {
		t.Fatalf("contact: %d %s", w.Code, w.Body)
	}
	spam.Set("tel", "+12025550100")
	if w = serve(h, postForm("/callback", spam)); w.Code != http.StatusSeeOther || w.Header().Get("Location") != thanks {
		t.Fatalf("callback: %d %q", w.Code, w.Header().Get("Location"))
	}
	if n := len(in.Events()); n != 0 {
		t.Errorf("%d honeypot submissions recorded", n)
	}
	if rj := in.Rejects(); len(rj) != 2 || rj[0] != "forms/honeypot" {
		t.Errorf("rejects %v", rj)
	}
	// An empty honeypot field is a human; the field is not kept.
	w = serve(h, postForm("/contact", url.Values{"email": {"ann@client.test"}, DefaultHoneypot: {""}}))
	if evs := in.Events(); w.Code != http.StatusOK || len(evs) != 1 || evs[0].Attrs["field."+DefaultHoneypot] != "" {
		t.Errorf("human: %d, events %+v", w.Code, evs)
	}
}

func TestFormsCORS(t *testing.T) {
	in := &fakeIntake{}
	h := newTestForms(t, in, newClock(), nil)
	preflight := func(origin string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodOptions, "/contact", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Access-Control-Request-Headers", "content-type")
		return serve(h, r)
	}
	w := preflight("https://www.example.com")
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "https://www.example.com" ||
		!strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(w.Header().Get("Access-Control-Allow-Headers")), "content-type") {
		t.Errorf("allowed preflight: %d %v", w.Code, w.Header())
	}
	if w = preflight("https://evil.test"); w.Code != http.StatusForbidden || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("forbidden preflight: %d %v", w.Code, w.Header())
	}

	r := postForm("/contact", lead)
	r.Header.Set("Origin", "https://evil.test")
	if w = serve(h, r); w.Code != http.StatusForbidden || errorCode(t, w) != "forbidden_origin" {
		t.Errorf("forbidden origin: %d %s", w.Code, w.Body)
	}
	if n := len(in.Events()); n != 0 {
		t.Fatalf("%d events recorded from a forbidden origin", n)
	}
	r = postForm("/contact", lead)
	r.Header.Set("Origin", "https://WWW.example.com")
	if w = serve(h, r); w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != "https://WWW.example.com" {
		t.Errorf("allowed origin: %d %v", w.Code, w.Header())
	}

	open := newTestForms(t, &fakeIntake{}, newClock(), func(c *FormsConfig) { c.AllowedOrigins = []string{"*"} })
	r = postForm("/contact", lead)
	r.Header.Set("Origin", "https://anywhere.test")
	if w = serve(open, r); w.Code != http.StatusOK {
		t.Errorf(`allowed_origins ["*"]: %d`, w.Code)
	}
}

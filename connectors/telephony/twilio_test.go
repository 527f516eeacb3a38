package telephony

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Twilio's documented example (https://www.twilio.com/docs/usage/security).
const (
	docToken     = "12345"
	docURL       = "https://mycompany.com/myapp.php?foo=1&bar=2"
	docSignature = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
)

func docParams() url.Values {
	return twilio("CallSid", "CA1234567890ABCDE", "Caller", "+12349013030", "Digits", "1234",
		"From", "+12349013030", "To", "+18005551212")
}

func TestTwilioSignatureDocExample(t *testing.T) {
	if got := TwilioSignature(docToken, docURL, docParams()); got != docSignature {
		t.Fatalf("signature %q, want %q", got, docSignature)
	}
	v := &twilioVerifier{keys: [][]byte{[]byte(docToken)}}
	if !v.verify(docSignature, []string{docURL}, docParams()) {
		t.Fatal("documented signature does not verify")
	}
}

// docEnv is a connector configured as the documented example: Twilio posts
// to https://mycompany.com/myapp.php?foo=1&bar=2.
func docEnv(t *testing.T) *env {
	return newEnv(t, ProviderTwilio, func(c *Config) {
		c.AuthToken = docToken
		c.SignatureURL = "https://mycompany.com/myapp.php"
	})
}

// docRequest posts params to the gateway (reached through a proxy at
// another host) with the given signature.
func docRequest(params url.Values, sig string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/?foo=1&bar=2", strings.NewReader(params.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set(TwilioSignatureHeader, sig)
	return r
}

func TestTwilioDocExampleThroughHandler(t *testing.T) {
	e := docEnv(t)
	// The documented request verifies; it is then refused because a status
	// callback needs CallStatus — with 400, not 403.
	w := serve(e.c, docRequest(docParams(), docSignature))
	if w.Code != http.StatusBadRequest || errorCode(t, w) != "missing_field" {
		t.Fatalf("documented request: %d %s", w.Code, w.Body)
	}
	// The same request as a status callback is accepted.
	p := docParams()
	p.Set("CallStatus", "ringing")
	p.Set("Direction", "inbound")
	w = serve(e.c, docRequest(p, TwilioSignature(docToken, docURL, p)))
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("signed status callback: %d %s", w.Code, w.Body)
	}
	if evs := e.in.Events(); len(evs) != 1 || evs[0].Type != "call.inbound" ||
		evs[0].Attrs["line"] != "+18005551212" || evs[0].Subject.Phone != "+12349013030" {
		t.Fatalf("events %+v", evs)
	}
}

// TestTwilioTamperedIsForbidden changes one byte of each parameter, of
// each name, of the signature and of the URL: 403 and nothing recorded.
func TestTwilioTamperedIsForbidden(t *testing.T) {
	type tamper struct {
		name   string
		params url.Values
		sig    string
		target string
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		b[i] ^= 0x01
		return string(b)
	}
	var cases []tamper
	for _, k := range slices.Sorted(maps.Keys(docParams())) {
		p := docParams()
		v := p.Get(k)
		p.Set(k, flip(v, len(v)-1))
		cases = append(cases, tamper{name: "value " + k, params: p, sig: docSignature})
		p = docParams()
		p.Del(k)
		p.Set(flip(k, 0), v)
		cases = append(cases, tamper{name: "name " + k, params: p, sig: docSignature})
	}
	for i := range len(docSignature) {
		cases = append(cases, tamper{name: "signature byte " + strconv.Itoa(i), params: docParams(), sig: flip(docSignature, i)})
	}
	extra := docParams()
	extra.Set("CallStatus", "ringing")
	cases = append(cases,
		tamper{name: "added parameter", params: extra, sig: docSignature},
		tamper{name: "no signature", params: docParams(), sig: ""},
		tamper{name: "query changed", params: docParams(), sig: docSignature, target: "http://127.0.0.1:8080/?foo=1&bar=3"},
		tamper{name: "sub-path added", params: docParams(), sig: docSignature, target: "http://127.0.0.1:8080/x?foo=1&bar=2"},
		tamper{name: "signature of another token", params: docParams(), sig: TwilioSignature("12346", docURL, docParams())},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := docEnv(t)
			r := docRequest(tc.params, tc.sig)
			if tc.target != "" {
				r = httptest.NewRequest(http.MethodPost, tc.target, strings.NewReader(tc.params.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set(TwilioSignatureHeader, tc.sig)
			}
			w := serve(e.c, r)
			if w.Code != http.StatusForbidden || errorCode(t, w) != "bad_signature" {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if k := keys(e.fake); len(k) != 0 || len(e.in.Events()) != 0 {
				t.Fatalf("recorded %v, events %v", k, e.in.Events())
			}
			if rj := e.in.Rejects(); !slices.Equal(rj, []string{"tel/bad_signature"}) {
				t.Errorf("rejects %v", rj)
			}
		})
	}
}

// TestTwilioSignatureURL checks that the URL signed is built from
// public_url (not from the Host header), with the sub-path and query, and
// that the port spellings Twilio uses are accepted.
func TestTwilioSignatureURL(t *testing.T) {
	p := twilio("CallSid", "CA01", "CallStatus", "ringing", "Direction", "inbound", "From", customer, "To", lineMain)
	for _, tc := range []struct {
		name, path, signed string
		ok                 bool
	}{
		{"bare prefix", "/", testPublicURL + "/in/tel", true},
		{"trailing slash", "/", testPublicURL + "/in/tel/", true},
		{"sub-path and query", "/status?x=1&y=%20", testPublicURL + "/in/tel/status?x=1&y=%20", true},
		{"explicit port 443", "/", "https://gw.example.com:443/in/tel", true},
		{"Host header URL", "/", "http://10.0.0.5:8080/in/tel", false},
		{"http instead of https", "/", "http://gw.example.com/in/tel", false},
		{"query dropped", "/?x=1", testPublicURL + "/in/tel", false},
		{"other connector", "/", testPublicURL + "/in/other", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ProviderTwilio, nil)
			r := httptest.NewRequest(http.MethodPost, "http://10.0.0.5:8080"+tc.path, strings.NewReader(p.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set(TwilioSignatureHeader, TwilioSignature(testToken, tc.signed, p))
			w := serve(e.c, r)
			if got := w.Code == http.StatusNoContent; got != tc.ok {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
		})
	}
}

func TestTwilioTokenRotation(t *testing.T) {
	e := newEnv(t, ProviderTwilio, func(c *Config) { c.AuthTokens = []string{"old-token"} })
	p := twilio("CallSid", "CA01", "CallStatus", "ringing", "Direction", "inbound", "From", customer, "To", lineMain)
	for _, tok := range []string{testToken, "old-token"} {
		r := e.twilioRequest("/", p)
		r.Header.Set(TwilioSignatureHeader, TwilioSignature(tok, e.sigBase, p))
		if w := serve(e.c, r); w.Code != http.StatusNoContent {
			t.Errorf("token %s: %d %s", tok, w.Code, w.Body)
		}
	}
}

func TestURLVariants(t *testing.T) {
	for in, want := range map[string][]string{
		"https://a.example/x":          {"https://a.example/x", "https://a.example:443/x"},
		"https://a.example:443/x":      {"https://a.example:443/x", "https://a.example/x"},
		"http://u:p@a.example:8080/x":  {"http://u:p@a.example:8080/x", "http://a.example/x", "http://a.example:8080/x"},
		"https://[2001:db8::1]:8443/x": {"https://[2001:db8::1]:8443/x", "https://[2001:db8::1]/x"},
	} {
		if got := urlVariants(in); !slices.Equal(got, want) {
			t.Errorf("urlVariants(%q) = %q, want %q", in, got, want)
		}
	}
}

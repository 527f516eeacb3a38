package stdwebhooks

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	const id = "msg_2mQ8y1"
	body := []byte(`{"code":"paid","subject":{"email":"ann@client.test"}}`)
	oldSecret := "whsec_b2xkLXNlY3JldC1rZXktZm9yLXJvdGF0aW9u"
	valid := Sign(testSecret, id, t0, body)

	tests := []struct {
		name    string
		secrets []string
		id      string
		ts      string
		sig     string
		body    []byte
		want    error
	}{
		{name: "valid", sig: valid},
		{name: "rotated secrets, signed with the new", secrets: []string{oldSecret, testSecret}, sig: valid},
		{name: "rotated secrets, signed with the old", secrets: []string{testSecret, oldSecret}, sig: Sign(oldSecret, id, t0, body)},
		{name: "several signatures, one valid", sig: "v1,Zm9vYmFy v1a,abc " + valid + " v1,!!notbase64"},
		{name: "raw secret without prefix", secrets: []string{"plain-secret"}, sig: Sign("plain-secret", id, t0, body)},
		{name: "tampered body", sig: valid, body: []byte(`{"code":"paid","subject":{"email":"eve@evil.test"}}`), want: ErrBadSignature},
		{name: "tampered id", sig: valid, id: "msg_other", want: ErrBadSignature},
		{name: "wrong secret", sig: Sign("whsec_d3Jvbmcta2V5", id, t0, body), want: ErrBadSignature},
		{name: "signature of another timestamp", sig: Sign(testSecret, id, t0.Add(-time.Second), body), want: ErrBadSignature},
		{name: "missing id", id: "-", sig: valid, want: ErrMissingHeaders},
		{name: "missing timestamp", ts: "-", sig: valid, want: ErrMissingHeaders},
		{name: "missing signature", sig: "", want: ErrMissingHeaders},
		{name: "timestamp 6 minutes old", ts: unix(t0.Add(-6 * time.Minute)), sig: Sign(testSecret, id, t0.Add(-6*time.Minute), body), want: ErrBadTimestamp},
		{name: "timestamp 6 minutes ahead", ts: unix(t0.Add(6 * time.Minute)), sig: Sign(testSecret, id, t0.Add(6*time.Minute), body), want: ErrBadTimestamp},
		{name: "timestamp 5 minutes old is within tolerance", ts: unix(t0.Add(-5 * time.Minute)), sig: Sign(testSecret, id, t0.Add(-5*time.Minute), body)},
		{name: "non-numeric timestamp", ts: "2026-03-01T10:15:30Z", sig: valid, want: ErrBadTimestamp},
		{name: "v2 only", sig: "v2," + valid[len("v1,"):], want: ErrBadSignature},
		{name: "not base64", sig: "v1,@@@", want: ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{testSecret}
			}
			v, err := NewVerifier(secrets, 0, func() time.Time { return t0 })
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			h.Set(HeaderID, or(tt.id, id))
			h.Set(HeaderTimestamp, or(tt.ts, unix(t0)))
			h.Set(HeaderSignature, tt.sig)
			for _, k := range []string{HeaderID, HeaderTimestamp} {
				if h.Get(k) == "-" {
					h.Del(k)
				}
			}
			b := body
			if tt.body != nil {
				b = tt.body
			}
			got, err := v.Verify(h, b)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Verify: err %v, want %v", err, tt.want)
			}
			if tt.want == nil && got != h.Get(HeaderID) {
				t.Errorf("Verify: id %q, want %q", got, h.Get(HeaderID))
			}
		})
	}
}

// TestVerifySpecVector checks the example of the Standard Webhooks
// reference libraries, so that we interoperate with real senders.
func TestVerifySpecVector(t *testing.T) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	ts := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	if got := Sign(secret, id, ts, body); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	v, err := NewVerifier([]string{secret}, 0, func() time.Time { return ts.Add(time.Minute) })
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, unix(ts))
	h.Set(HeaderSignature, want)
	if _, err := v.Verify(h, body); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestNewVerifierErrors(t *testing.T) {
	for name, secrets := range map[string][]string{
		"none":        nil,
		"empty":       {""},
		"bad base64":  {"whsec_!!!"},
		"empty key":   {"whsec_"},
		"one bad one": {testSecret, "whsec_%%"},
	} {
		if _, err := NewVerifier(secrets, 0, nil); err == nil {
			t.Errorf("%s: NewVerifier accepted %q", name, secrets)
		}
	}
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// t0 is the fixed clock of these tests.
var t0 = time.Date(2026, 3, 1, 10, 15, 30, 0, time.UTC)

// testSecret is a Standard Webhooks secret.
var testSecret = SecretPrefix + base64.StdEncoding.EncodeToString([]byte("stagegate-test-key-0123456789"))

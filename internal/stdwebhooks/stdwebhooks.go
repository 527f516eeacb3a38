// Package stdwebhooks signs and verifies Standard Webhooks
// (https://www.standardwebhooks.com/): the inbound webhook and telephony
// connectors verify with it, the webhook action and the benchmark sign with
// it. It sits below all of them so that none imports another for it.
package stdwebhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names (https://www.standardwebhooks.com/).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a Standard Webhooks secret whose remainder is the
// base64-encoded key.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a webhook-timestamp may be from the clock,
// in the past or in the future, when no tolerance is configured.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verifier.Verify. Callers tell them apart with errors.Is:
// ErrMissingHeaders and ErrBadTimestamp mean a malformed request (HTTP 400),
// ErrBadSignature means an unauthenticated one (HTTP 401).
var (
	ErrMissingHeaders = errors.New("missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrBadTimestamp   = errors.New("bad webhook-timestamp")
	ErrBadSignature   = errors.New("no valid signature")
)

// Verifier checks Standard Webhooks signatures: an HMAC-SHA256 over
// id + "." + timestamp + "." + body, sent as "v1,<base64>" in a
// space-separated list. Several secrets may be configured during a rotation;
// a request is authentic when any signature matches any secret. A Verifier is
// safe for concurrent use.
type Verifier struct {
	keys      [][]byte
	tolerance time.Duration
	now       func() time.Time
}

// NewVerifier returns a Verifier for the given secrets. A secret written
// "whsec_<base64>" is decoded; any other secret is used as raw bytes. A
// tolerance of zero or less means DefaultTolerance; a nil now means time.Now.
func NewVerifier(secrets []string, tolerance time.Duration, now func() time.Time) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("webhook verifier: no secret")
	}
	v := &Verifier{tolerance: tolerance, now: now}
	if v.tolerance <= 0 {
		v.tolerance = DefaultTolerance
	}
	if v.now == nil {
		v.now = time.Now
	}
	for i, s := range secrets {
		key, err := DecodeSecret(s)
		if err != nil {
			return nil, fmt.Errorf("webhook verifier: secret %d: %w", i, err)
		}
		v.keys = append(v.keys, key)
	}
	return v, nil
}

// DecodeSecret turns a configured secret into an HMAC key: "whsec_<base64>"
// is decoded, any other non-empty secret is used as raw bytes. Config
// validation calls it to refuse a secret NewVerifier would refuse.
func DecodeSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty secret")
	}
	b64, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return []byte(s), nil
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%s secret is not valid base64: %w", SecretPrefix, err)
	}
	if len(key) == 0 {
		return nil, errors.New("empty key after " + SecretPrefix)
	}
	return key, nil
}

// Verify checks the Standard Webhooks headers of a request against its
// body. It returns the webhook-id (the sender's message id, stable across
// retries) when the timestamp is within the tolerance and at least one
// "v1," signature matches one of the secrets.
func (v *Verifier) Verify(h http.Header, body []byte) (id string, err error) {
	id = h.Get(HeaderID)
	tsText := h.Get(HeaderTimestamp)
	sigs := h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return "", ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: %q is not unix seconds", ErrBadTimestamp, tsText)
	}
	now := v.now().Unix()
	tol := int64(v.tolerance / time.Second)
	if ts < now-tol {
		return "", fmt.Errorf("%w: %ds too old (tolerance %s)", ErrBadTimestamp, now-ts, v.tolerance)
	}
	if ts > now+tol {
		return "", fmt.Errorf("%w: %ds in the future (tolerance %s)", ErrBadTimestamp, ts-now, v.tolerance)
	}
	expected := make([][]byte, len(v.keys))
	for i, key := range v.keys {
		expected[i] = mac(key, id, tsText, body)
	}
	for _, sig := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue // other schemes (v1a, v2) are not ours to check
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		for _, want := range expected {
			if hmac.Equal(got, want) {
				return id, nil
			}
		}
	}
	return "", ErrBadSignature
}

// mac computes HMAC-SHA256(key, id "." ts "." body).
func mac(key []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Sign returns the webhook-signature header value ("v1,<base64>") that a
// Standard Webhooks sender would send for id, ts and body. The timestamp is
// signed as unix seconds, which is also what the webhook-timestamp header
// must carry. A secret NewVerifier would refuse is used as raw bytes.
func Sign(secret string, id string, ts time.Time, body []byte) string {
	key, err := DecodeSecret(secret)
	if err != nil {
		key = []byte(secret)
	}
	sum := mac(key, id, strconv.FormatInt(ts.Unix(), 10), body)
	return "v1," + base64.StdEncoding.EncodeToString(sum)
}

package telephony

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stagegate/stagegate/normalize"
)

// TwilioSignatureHeader carries Twilio's request signature.
const TwilioSignatureHeader = "X-Twilio-Signature"

// TwilioSignature returns the X-Twilio-Signature Twilio sends for a POST of
// params to fullURL: base64(HMAC-SHA1(authToken, fullURL followed by each
// parameter name and value, sorted by name)).
func TwilioSignature(authToken, fullURL string, params url.Values) string {
	return base64.StdEncoding.EncodeToString(twilioMAC([]byte(authToken), fullURL, params))
}

func twilioMAC(key []byte, fullURL string, params url.Values) []byte {
	m := hmac.New(sha1.New, key)
	m.Write([]byte(fullURL))
	for _, k := range slices.Sorted(maps.Keys(params)) {
		vs := params[k]
		if len(vs) > 1 {
			vs = slices.Sorted(slices.Values(vs))
		}
		for _, v := range vs {
			m.Write([]byte(k))
			m.Write([]byte(v))
		}
	}
	return m.Sum(nil)
}

// twilioVerifier checks X-Twilio-Signature against the configured auth
// tokens (several during a rotation) and the URLs Twilio may have signed.
type twilioVerifier struct {
	keys [][]byte
}

// verify reports whether sig is the signature of params posted to one of
// urls with one of the tokens, comparing in constant time.
func (v *twilioVerifier) verify(sig string, urls []string, params url.Values) bool {
	got, err := base64.StdEncoding.Strict().DecodeString(sig)
	if err != nil || len(got) != sha1.Size {
		return false
	}
	for _, key := range v.keys {
		for _, u := range urls {
			if hmac.Equal(got, twilioMAC(key, u, params)) {
				return true
			}
		}
	}
	return false
}

// urlVariants returns base and the spellings Twilio may have signed it
// under: Twilio drops a user and password, and drops (or, for some
// callbacks, keeps) the port, so the official libraries accept both.
func urlVariants(base string) []string {
	out := []string{base}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return out
	}
	u.User = nil
	out = append(out, u.String())
	host, _, err := net.SplitHostPort(u.Host)
	if err == nil {
		u.Host = host
		if strings.Contains(host, ":") {
			u.Host = "[" + host + "]"
		}
		out = append(out, u.String())
	} else {
		port := map[string]string{"https": "443", "http": "80"}[u.Scheme]
		if port != "" {
			u.Host = net.JoinHostPort(u.Hostname(), port)
			out = append(out, u.String())
		}
	}
	rest := slices.DeleteFunc(slices.Clone(out[1:]), func(s string) bool { return s == base })
	slices.Sort(rest)
	return append([]string{base}, slices.Compact(rest)...)
}

// twilioStatuses maps Twilio's CallStatus values.
var twilioStatuses = map[string]Status{
	"queued": StatusQueued, "initiated": StatusInitiated, "ringing": StatusRinging,
	"in-progress": StatusInProgress, "answered": StatusInProgress,
	"completed": StatusCompleted, "busy": StatusBusy, "no-answer": StatusNoAnswer,
	"canceled": StatusCanceled, "failed": StatusFailed,
}

// maxIDLen bounds call ids: they become parts of store keys and event ids.
const maxIDLen = 128

// ParseTwilio turns the parameters of a verified Twilio Voice status
// callback into a Callback. CallSid and a known CallStatus are required;
// From, To and Caller-style numbers must parse (or be a withheld number, a
// client: or sip: endpoint). Errors wrap ErrMissingField, ErrBadField,
// ErrBadStatus or ErrBadNumber.
func ParseTwilio(params url.Values, body []byte, received time.Time, nums *numbers) (*Callback, error) {
	sid := params.Get("CallSid")
	if sid == "" {
		return nil, fmt.Errorf("%w: CallSid", ErrMissingField)
	}
	if !validCallID(sid) {
		return nil, fmt.Errorf("%w: CallSid: must be 1 to %d letters, digits or ._:@+/=-", ErrBadField, maxIDLen)
	}
	cb := &Callback{CallID: sid, ReceivedAt: received.UTC(), Raw: normalize.Excerpt(body)}
	if p := params.Get("ParentCallSid"); p != "" && p != sid {
		if !validCallID(p) {
			return nil, fmt.Errorf("%w: ParentCallSid: must be 1 to %d letters, digits or ._:@+/=-", ErrBadField, maxIDLen)
		}
		cb.ParentID = p
	}
	statusText := params.Get("CallStatus")
	if statusText == "" {
		return nil, fmt.Errorf("%w: CallStatus", ErrMissingField)
	}
	st, ok := twilioStatuses[strings.ToLower(statusText)]
	if !ok {
		return nil, fmt.Errorf("%w: CallStatus %q", ErrBadStatus, truncate(statusText, 40))
	}
	cb.Status = st
	cb.Direction = strings.ToLower(params.Get("Direction"))
	var err error
	if cb.From, err = nums.party("From", params.Get("From")); err != nil {
		return nil, err
	}
	if cb.To, err = nums.party("To", params.Get("To")); err != nil {
		return nil, err
	}
	if d := params.Get("CallDuration"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: CallDuration: not a number of seconds: %q", ErrBadField, truncate(d, 40))
		}
		cb.Duration = n
	}
	if s := params.Get("SequenceNumber"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: SequenceNumber: not a number: %q", ErrBadField, truncate(s, 40))
		}
		cb.Seq = &n
	}
	if ts := params.Get("Timestamp"); ts != "" {
		t, err := time.Parse(time.RFC1123Z, ts)
		if err != nil {
			cb.Warnings = append(cb.Warnings, fmt.Sprintf("Timestamp %q ignored: not RFC 1123", truncate(ts, 40)))
		} else {
			cb.Timestamp = t.UTC()
		}
	}
	cb.AnsweredBy = strings.ToLower(truncate(params.Get("AnsweredBy"), 40))
	cb.ID = twilioCallbackID(cb, params)
	return cb, nil
}

// twilioCallbackID names a callback stably across Twilio's retries: the
// leg, its SequenceNumber and status when Twilio numbers its callbacks,
// else the leg, status and a digest of every parameter.
func twilioCallbackID(cb *Callback, params url.Values) string {
	if cb.Seq != nil {
		return cb.CallID + "/" + strconv.FormatInt(*cb.Seq, 10) + "/" + string(cb.Status)
	}
	keys := slices.Sorted(maps.Keys(params))
	parts := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		parts = append(parts, k, strings.Join(params[k], "\x00"))
	}
	return cb.CallID + "/" + string(cb.Status) + "/" + normalize.Hash(parts...)[:16]
}

// validCallID reports whether a provider call id can be used in keys and
// event ids: 1 to maxIDLen of the characters normalize.ValidSourceID
// allows (checked by hand: it runs for every callback).
func validCallID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("._:@+/=-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// truncate cuts s to at most n bytes of valid text, for messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

package telephony

import (
	"fmt"
	"strings"
	"sync"

	"github.com/stagegate/stagegate/normalize"
)

// Party is one end of a call leg: a phone number, an agent's endpoint (a
// softphone "client:alice", a SIP user "sip:alice@pbx.example.com"), or a
// caller who withheld the number.
type Party struct {
	Number    string `json:"number,omitempty"` // E.164
	Endpoint  string `json:"endpoint,omitempty"`
	Anonymous bool   `json:"anonymous,omitempty"`
}

// String is the number, the endpoint, or "anonymous".
func (p Party) String() string {
	switch {
	case p.Number != "":
		return p.Number
	case p.Endpoint != "":
		return p.Endpoint
	case p.Anonymous:
		return "anonymous"
	}
	return ""
}

// anonymousWords are what providers send instead of a withheld number, as
// text or spelled on a phone keypad (Twilio sends +266696687, "ANONYMOUS").
var anonymousWords = []string{"anonymous", "restricted", "private", "unknown", "unavailable", "blocked", "withheld"}

var anonymousKeypad = func() map[string]bool {
	const keys = "22233344455566677778889999" // a..z on a phone keypad
	m := map[string]bool{}
	for _, w := range anonymousWords {
		b := make([]byte, len(w))
		for i := range w {
			b[i] = keys[w[i]-'a']
		}
		m[string(b)] = true
	}
	return m
}()

// isAnonymous reports whether s stands for a withheld number.
func isAnonymous(s string) bool {
	if s == "" {
		return true
	}
	l := strings.ToLower(s)
	for _, w := range anonymousWords {
		if l == w {
			return true
		}
	}
	return anonymousKeypad[strings.TrimPrefix(s, "+")]
}

// numbers normalizes phone numbers to E.164 and remembers the answers: a
// gateway sees the same few lines and callers again and again, and parsing
// is the costliest step of a callback. Safe for concurrent use.
type numbers struct {
	region string
	mu     sync.RWMutex
	cache  map[string]string
}

// maxCachedNumbers bounds the cache; it is emptied when full.
const maxCachedNumbers = 10000

func newNumbers(region string) *numbers {
	return &numbers{region: region, cache: map[string]string{}}
}

// e164 normalizes s with the default region.
func (n *numbers) e164(s string) (string, error) {
	n.mu.RLock()
	e, ok := n.cache[s]
	n.mu.RUnlock()
	if ok {
		return e, nil
	}
	e, err := normalize.NormalizePhone(s, n.region)
	if err != nil {
		return "", err
	}
	n.mu.Lock()
	if len(n.cache) >= maxCachedNumbers {
		clear(n.cache)
	}
	n.cache[s] = e
	n.mu.Unlock()
	return e, nil
}

// party parses what a provider sends as From or To. Withheld numbers, and
// an empty From (a caller without caller ID), are Anonymous; an empty To is
// nothing; "client:…" and "sip:…" are endpoints unless a SIP
// user part is itself a phone number; a PBX extension (one to six digits)
// is the endpoint "ext:<digits>"; anything else must be a phone number, or
// the error wraps ErrBadNumber.
func (n *numbers) party(field, s string) (Party, error) {
	s = strings.TrimSpace(s)
	if s == "" && !strings.EqualFold(field, "from") {
		return Party{}, nil
	}
	if isAnonymous(s) {
		return Party{Anonymous: true}, nil
	}
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "client:"):
		return Party{Endpoint: s}, nil
	case strings.HasPrefix(lower, "sip:"), strings.HasPrefix(lower, "sips:"):
		user, _, _ := strings.Cut(s[strings.IndexByte(s, ':')+1:], "@")
		user, _, _ = strings.Cut(user, ";")
		if isAnonymous(user) {
			return Party{Anonymous: true}, nil
		}
		if looksLikeNumber(user) {
			if e, err := n.e164(user); err == nil {
				return Party{Number: e}, nil
			}
		}
		return Party{Endpoint: s}, nil
	case isExtension(s):
		return Party{Endpoint: "ext:" + s}, nil
	}
	e, err := n.e164(s)
	if err != nil {
		return Party{}, fmt.Errorf("%w: %s: %q", ErrBadNumber, field, s)
	}
	return Party{Number: e}, nil
}

// isExtension reports whether s is a PBX extension: one to six digits.
func isExtension(s string) bool {
	if len(s) == 0 || len(s) > 6 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// looksLikeNumber reports whether a SIP user part is written as a phone
// number: an optional "+" and at least six digits and separators.
func looksLikeNumber(s string) bool {
	s = strings.TrimPrefix(s, "+")
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '-' || r == '.' || r == ' ' || r == '(' || r == ')':
		default:
			return false
		}
	}
	return digits >= 6
}

// line parses a number that must be one of our lines (generic "line",
// own_numbers): a phone number, never an endpoint.
func (n *numbers) line(field, s string) (string, error) {
	e, err := n.e164(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %q", ErrBadNumber, field, s)
	}
	return e, nil
}

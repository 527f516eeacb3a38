package telephony

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stagegate/stagegate/normalize"
)

// genericStatuses maps the generic provider's status words, and the
// Asterisk DIALSTATUS and FreeSWITCH hangup_cause words a dialplan hook is
// likely to pass through, onto Status. "answer" (Asterisk's DIALSTATUS
// after an answered Dial) is final and answered: see genericAnswered.
var genericStatuses = map[string]Status{
	"queued": StatusQueued, "initiated": StatusInitiated, "dialing": StatusInitiated,
	"ringing": StatusRinging, "early": StatusRinging,
	"in-progress": StatusInProgress, "answered": StatusInProgress, "up": StatusInProgress,
	"completed": StatusCompleted, "hangup": StatusCompleted, "ended": StatusCompleted,
	"normal_clearing": StatusCompleted, "answer": StatusCompleted,
	"busy": StatusBusy, "user_busy": StatusBusy,
	"no-answer": StatusNoAnswer, "noanswer": StatusNoAnswer, "no_answer": StatusNoAnswer, "no_user_response": StatusNoAnswer,
	"canceled": StatusCanceled, "cancelled": StatusCanceled, "cancel": StatusCanceled, "originator_cancel": StatusCanceled,
	"failed": StatusFailed, "congestion": StatusFailed, "chanunavail": StatusFailed, "call_rejected": StatusFailed,
	"voicemail": StatusVoicemail,
}

// genericAnswered lists status words that say the leg was answered even
// though they end it.
var genericAnswered = map[string]bool{"answer": true}

var genericDirections = map[string]string{
	"inbound": Inbound, "incoming": Inbound, "in": Inbound,
	"outbound": Outbound, "outgoing": Outbound, "out": Outbound,
}

// genericKeys are the fields of a generic callback body.
var genericKeys = []string{
	"call_id", "parent_call_id", "direction", "from", "to", "line", "status",
	"duration_s", "timestamp", "seq", "answered_by",
}

// ParseGeneric turns the JSON body of a verified generic callback into a
// Callback; callbackID is the Standard Webhooks webhook-id. The body is
//
//	{"call_id": "…", "direction": "inbound|outbound", "from": "…", "to": "…",
//	 "line": "…", "status": "ringing|answered|completed|no-answer|busy|…",
//	 "duration_s": 42, "timestamp": "RFC 3339" or unix seconds,
//	 "parent_call_id": "…", "seq": 3, "answered_by": "human|machine"}
//
// call_id and status are required. Numbers may be strings or JSON numbers.
// Unknown fields are ignored with a warning. Errors wrap ErrMissingField,
// ErrBadField, ErrBadStatus or ErrBadNumber.
func ParseGeneric(callbackID string, body []byte, received time.Time, nums *numbers) (*Callback, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, fmt.Errorf("%w: body is not a JSON object", ErrBadField)
	}
	cb := &Callback{ID: callbackID, ReceivedAt: received.UTC(), Raw: normalize.Excerpt(body)}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if !slices.Contains(genericKeys, k) {
			cb.Warnings = append(cb.Warnings, fmt.Sprintf("unknown field %q ignored", truncate(k, 40)))
		}
	}
	f := fields(top)
	var err error
	if cb.CallID, err = f.id("call_id", true); err != nil {
		return nil, err
	}
	if cb.ParentID, err = f.id("parent_call_id", false); err != nil {
		return nil, err
	}
	if cb.ParentID == cb.CallID {
		cb.ParentID = ""
	}
	statusText, err := f.text("status")
	if err != nil {
		return nil, err
	}
	if statusText == "" {
		return nil, fmt.Errorf("%w: status", ErrMissingField)
	}
	word := strings.ToLower(strings.TrimSpace(statusText))
	st, ok := genericStatuses[word]
	if !ok {
		return nil, fmt.Errorf("%w: status %q", ErrBadStatus, truncate(statusText, 40))
	}
	cb.Status = st
	if genericAnswered[word] {
		cb.AnsweredBy = "human"
	}
	if cb.Direction, err = f.direction(); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		key string
		dst *Party
	}{{"from", &cb.From}, {"to", &cb.To}} {
		s, err := f.text(p.key)
		if err != nil {
			return nil, err
		}
		if *p.dst, err = nums.party(p.key, s); err != nil {
			return nil, err
		}
	}
	if s, err := f.text("line"); err != nil {
		return nil, err
	} else if s != "" {
		if cb.Line, err = nums.line("line", s); err != nil {
			return nil, err
		}
	}
	if err := f.numbers(cb); err != nil {
		return nil, err
	}
	if s, err := f.text("answered_by"); err != nil {
		return nil, err
	} else if s != "" {
		cb.AnsweredBy = strings.ToLower(truncate(strings.TrimSpace(s), 40))
	}
	return cb, nil
}

// fields reads the values of a generic body.
type fields map[string]json.RawMessage

// text returns a string field, or a number field as written; "" when
// absent or null.
func (f fields) text(key string) (string, error) {
	raw, ok := f[key]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	return "", fmt.Errorf("%w: %s: must be a string", ErrBadField, key)
}

// id returns a call id field.
func (f fields) id(key string, required bool) (string, error) {
	s, err := f.text(key)
	switch {
	case err != nil:
		return "", err
	case s == "" && required:
		return "", fmt.Errorf("%w: %s", ErrMissingField, key)
	case s != "" && !validCallID(s):
		return "", fmt.Errorf("%w: %s: must be 1 to %d letters, digits or ._:@+/=-", ErrBadField, key, maxIDLen)
	}
	return s, nil
}

func (f fields) direction() (string, error) {
	s, err := f.text("direction")
	if err != nil || s == "" {
		return "", err
	}
	d, ok := genericDirections[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return "", fmt.Errorf("%w: direction: must be inbound or outbound, not %q", ErrBadField, truncate(s, 40))
	}
	return d, nil
}

// number returns a non-negative numeric field (a JSON number or a numeric
// string), and whether it was present.
func (f fields) number(key string) (float64, bool, error) {
	s, err := f.text(key)
	if err != nil || s == "" {
		return 0, false, err
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) || n > 1e12 {
		return 0, false, fmt.Errorf("%w: %s: must be a non-negative number, not %q", ErrBadField, key, truncate(s, 40))
	}
	return n, true, nil
}

// numbers reads duration_s, seq and timestamp (RFC 3339 or unix seconds).
func (f fields) numbers(cb *Callback) error {
	d, ok, err := f.number("duration_s")
	if err != nil {
		return err
	}
	if ok {
		cb.Duration = int(d)
	}
	seq, ok, err := f.number("seq")
	if err != nil {
		return err
	}
	if ok {
		n := int64(seq)
		cb.Seq = &n
	}
	ts, err := f.text("timestamp")
	if err != nil || ts == "" {
		return err
	}
	if t, perr := time.Parse(time.RFC3339Nano, ts); perr == nil {
		cb.Timestamp = t.UTC()
		return nil
	}
	secs, ok, err := f.number("timestamp")
	if err != nil || !ok {
		return fmt.Errorf("%w: timestamp: must be RFC 3339 or unix seconds, not %q", ErrBadField, truncate(ts, 40))
	}
	whole, frac := math.Modf(secs)
	cb.Timestamp = time.Unix(int64(whole), int64(frac*1e9)).UTC()
	return nil
}

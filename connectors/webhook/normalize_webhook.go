package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stagegate/stagegate/normalize"
)

// Errors returned by the normalizers, for errors.Is. Both mean HTTP 400.
var (
	ErrBadJSON  = errors.New("body is not a JSON object")
	ErrBadField = errors.New("bad field")
)

// Bounds on what a webhook body may carry.
const (
	maxAttrs     = 100
	maxAttrKey   = 128
	maxCodeLen   = 200
	maxNameRunes = 200
)

// webhookSubject is the "subject" object of a webhook body.
type webhookSubject struct {
	Email     string `json:"email"`
	Phone     string `json:"phone"`
	VisitorID string `json:"visitor_id"`
	ItemID    string `json:"item_id"`
	Name      string `json:"name"`
}

var webhookKeys = []string{"type", "code", "subject", "attrs", "occurred_at"}

// NormalizeWebhook turns the body of a verified webhook into an event. The
// body is a JSON object:
//
//	{"type": "webhook.received" | "crm.<name>", "code": "...",
//	 "subject": {"email","phone","visitor_id","item_id","name"},
//	 "attrs": {"k": "v"}, "occurred_at": "RFC 3339"}
//
// An empty type means webhook.received, which requires code. The event id is
// built from connector and webhookID, so a sender's retry is one event.
// Unknown top-level keys are ignored with a warning (Standard Webhooks
// senders often add "timestamp" or "data"); an unknown subject key is an
// error, since the subject decides which item moves. Errors wrap ErrBadJSON
// or ErrBadField.
func NormalizeWebhook(connector, webhookID string, body []byte, received time.Time, region string) (*normalize.Event, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, ErrBadJSON
	}
	received = received.UTC()
	ev := &normalize.Event{
		ID:         normalize.MakeID(connector, webhookID),
		Type:       normalize.WebhookReceive,
		Connector:  connector,
		OccurredAt: received,
		ReceivedAt: received,
		Attrs:      map[string]string{},
		Raw:        normalize.Excerpt(body),
	}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if !slices.Contains(webhookKeys, k) {
			ev.Warnings = append(ev.Warnings, fmt.Sprintf("unknown field %q ignored", k))
		}
	}

	var typ, code, occurred string
	var subj webhookSubject
	if err := decodeField(top, "type", &typ); err != nil {
		return nil, err
	}
	if err := decodeField(top, "code", &code); err != nil {
		return nil, err
	}
	if err := decodeField(top, "attrs", &ev.Attrs); err != nil {
		return nil, err
	}
	if err := decodeField(top, "occurred_at", &occurred); err != nil {
		return nil, err
	}
	if ev.Attrs == nil { // "attrs": null
		ev.Attrs = map[string]string{}
	}
	if raw, ok := top["subject"]; ok {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&subj); err != nil {
			return nil, fmt.Errorf("%w: subject: %v", ErrBadField, err)
		}
	}

	if typ != "" {
		ev.Type = normalize.Type(typ)
	}
	if ev.Type != normalize.WebhookReceive && (!strings.HasPrefix(typ, normalize.CRMPrefix) || !ev.Type.Valid()) {
		return nil, fmt.Errorf("%w: type: must be webhook.received or crm.<name> (lower-case letters, digits, _.-), not %q", ErrBadField, typ)
	}
	if err := setCode(ev, strings.TrimSpace(code)); err != nil {
		return nil, err
	}
	if err := checkAttrs(ev.Attrs); err != nil {
		return nil, err
	}
	if occurred != "" {
		t, err := time.Parse(time.RFC3339Nano, occurred)
		if err != nil {
			return nil, fmt.Errorf("%w: occurred_at: not an RFC 3339 time: %q", ErrBadField, occurred)
		}
		ev.OccurredAt = t.UTC()
	}
	if err := webhookSubjectInto(ev, subj, region); err != nil {
		return nil, err
	}
	if len(ev.Attrs) == 0 {
		ev.Attrs = nil
	}
	return ev, nil
}

// decodeField decodes top[key], when present, into dst.
func decodeField(top map[string]json.RawMessage, key string, dst any) error {
	raw, ok := top[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		want := "a string"
		if key == "attrs" {
			want = "an object of string values"
		}
		return fmt.Errorf("%w: %s: must be %s", ErrBadField, key, want)
	}
	return nil
}

// setCode records the code attribute; webhook.received requires one.
func setCode(ev *normalize.Event, code string) error {
	if code == "" {
		if ev.Type == normalize.WebhookReceive {
			return fmt.Errorf("%w: code: required for webhook.received", ErrBadField)
		}
		return nil
	}
	if len(code) > maxCodeLen || !utf8.ValidString(code) {
		return fmt.Errorf("%w: code: must be valid text of at most %d bytes", ErrBadField, maxCodeLen)
	}
	if prev, ok := ev.Attrs["code"]; ok && prev != code {
		return fmt.Errorf("%w: attrs.code: %q differs from code %q", ErrBadField, prev, code)
	}
	ev.Attrs["code"] = code
	return nil
}

// checkAttrs bounds the attribute map.
func checkAttrs(attrs map[string]string) error {
	if len(attrs) > maxAttrs {
		return fmt.Errorf("%w: attrs: more than %d entries", ErrBadField, maxAttrs)
	}
	for k := range attrs {
		if k == "" || len(k) > maxAttrKey {
			return fmt.Errorf("%w: attrs: keys must be 1 to %d bytes", ErrBadField, maxAttrKey)
		}
	}
	return nil
}

// webhookSubjectInto normalizes the subject; a bad email, phone or id is an error.
func webhookSubjectInto(ev *normalize.Event, s webhookSubject, region string) error {
	if s.Email != "" {
		if ev.Subject.Email = normalize.NormalizeEmail(s.Email); ev.Subject.Email == "" {
			return fmt.Errorf("%w: subject.email: not an email address: %q", ErrBadField, s.Email)
		}
	}
	if s.Phone != "" {
		p, err := normalize.NormalizePhone(s.Phone, region)
		if err != nil {
			return fmt.Errorf("%w: subject.phone: %v", ErrBadField, err)
		}
		ev.Subject.Phone = p
	}
	for _, id := range []struct {
		name string
		in   string
		dst  *string
	}{{"visitor_id", s.VisitorID, &ev.Subject.VisitorID}, {"item_id", s.ItemID, &ev.Subject.ItemID}} {
		if id.in == "" {
			continue
		}
		if !normalize.ValidSourceID(id.in) {
			return fmt.Errorf("%w: subject.%s: must be 1 to 200 letters, digits or ._:@+/=-", ErrBadField, id.name)
		}
		*id.dst = id.in
	}
	name, cut := truncate(strings.TrimSpace(s.Name), maxNameRunes)
	if cut {
		ev.Warnings = append(ev.Warnings, fmt.Sprintf("subject.name truncated to %d characters", maxNameRunes))
	}
	ev.Subject.Name = name
	return nil
}

package webhook

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stagegate/stagegate/normalize"
)

// Bounds on what a form submission keeps.
const (
	// MaxFieldValue is the most characters kept of one field's value; longer
	// values are truncated with a warning on the event.
	MaxFieldValue = 1000
	maxFieldName  = 100
)

// SubmissionIDField is the field a page may fill with a client-generated id
// (for example a UUID made when the form is rendered). When present, it is
// the submission's idempotency key.
const SubmissionIDField = "submission_id"

// NormalizeForm turns the fields of one submission of form into an event of
// type form.submitted. raw is the body as received (kept as an excerpt for
// audit). Attrs carry form_id, kind and every field as "field.<name>" (values
// of a repeated field joined with ", "). The subject comes from the fields
// the form maps to email, phone and name: an address that is not one is an
// error wrapping ErrBadField; a phone number that does not parse is left out
// of the subject with a warning, so the lead is not lost.
func NormalizeForm(connector string, form FormConfig, fields url.Values, raw []byte, received time.Time, region string) (*normalize.Event, error) {
	received = received.UTC()
	ev := &normalize.Event{
		ID:         FormEventID(connector, form.ID, fields, received),
		Type:       normalize.FormSubmitted,
		Connector:  connector,
		OccurredAt: received,
		ReceivedAt: received,
		Channel:    form.ID,
		Attrs:      map[string]string{"form_id": form.ID, "kind": form.KindOrDefault()},
		Raw:        normalize.Excerpt(raw),
	}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if name == "" {
			continue
		}
		if len(name) > maxFieldName || !utf8.ValidString(name) {
			ev.Warnings = append(ev.Warnings, fmt.Sprintf("a field name longer than %d bytes or not UTF-8 was ignored", maxFieldName))
			continue
		}
		value, cut := truncate(strings.Join(fields[name], ", "), MaxFieldValue)
		if cut {
			ev.Warnings = append(ev.Warnings, fmt.Sprintf("field %q truncated to %d characters", name, MaxFieldValue))
		}
		ev.Attrs["field."+name] = value
	}

	if v := strings.TrimSpace(fields.Get(form.Field("email"))); v != "" {
		if ev.Subject.Email = normalize.NormalizeEmail(v); ev.Subject.Email == "" {
			return nil, fmt.Errorf("%w: %s: not an email address: %q", ErrBadField, form.Field("email"), v)
		}
	}
	if v := strings.TrimSpace(fields.Get(form.Field("phone"))); v != "" {
		if p, err := normalize.NormalizePhone(v, region); err == nil {
			ev.Subject.Phone = p
		} else {
			ev.Warnings = append(ev.Warnings, fmt.Sprintf("%s: %q is not a valid phone number; left out of the subject", form.Field("phone"), v))
		}
	}
	name, cut := truncate(strings.TrimSpace(fields.Get(form.Field("name"))), maxNameRunes)
	if cut {
		ev.Warnings = append(ev.Warnings, fmt.Sprintf("%s: subject name truncated to %d characters", form.Field("name"), maxNameRunes))
	}
	ev.Subject.Name = name
	if form.KindOrDefault() == FormKindCallback && ev.Subject.Phone == "" {
		ev.Warnings = append(ev.Warnings, "callback form without a valid phone number")
	}
	return ev, nil
}

// FormEventID returns the idempotency key of a submission: the connector,
// the form and the submission_id field when the page sent one; otherwise a
// hash of the fields (sorted, so order does not matter) and the minute the
// submission was received, so a double click within that minute is one
// event. Two identical submissions in different minutes are two events.
func FormEventID(connector, formID string, fields url.Values, received time.Time) string {
	if sid := strings.TrimSpace(fields.Get(SubmissionIDField)); sid != "" {
		return normalize.MakeID(connector, formID, sid)
	}
	minute := received.UTC().Format("20060102T1504") + "Z"
	return normalize.MakeID(connector, formID, normalize.Hash(fields.Encode()), minute)
}

// truncate makes s valid UTF-8 and cuts it to at most n characters,
// reporting whether it cut.
func truncate(s string, n int) (string, bool) {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s, false
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j], true
		}
		i++
	}
	return s, false
}

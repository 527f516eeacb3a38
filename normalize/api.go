package normalize

import (
	"errors"
	"fmt"
	"time"
)

// APIConnector is the connector name of events posted to the REST API.
const APIConnector = "api"

// APIInput is the body of POST /api/v1/events.
type APIInput struct {
	ID         string            `json:"id"`
	Type       Type              `json:"type"`
	Subject    Subject           `json:"subject"`
	Channel    string            `json:"channel"`
	Attrs      map[string]string `json:"attrs"`
	OccurredAt *time.Time        `json:"occurred_at"`
}

// ErrInvalid marks an input that cannot become an event; its message says why.
var ErrInvalid = errors.New("invalid input")

// limits on API input.
const (
	maxAttrs     = 100
	maxAttrKey   = 64
	maxAttrValue = 4096
)

// FromAPI turns an API event into an Event. The caller-supplied id is the
// dedup key: the event id is "api:<id>". Emails are lower-cased and phones
// normalized to E.164 with region. raw is kept as the event's Raw.
func FromAPI(in APIInput, raw []byte, received time.Time, region string) (*Event, error) {
	if !ValidSourceID(in.ID) {
		return nil, fmt.Errorf("%w: id must be 1-200 characters of letters, digits and ._:@+/=-", ErrInvalid)
	}
	if !in.Type.Valid() {
		return nil, fmt.Errorf("%w: type %q is not an event type (crm.<name> for CRM events)", ErrInvalid, in.Type)
	}
	if len(in.Attrs) > maxAttrs {
		return nil, fmt.Errorf("%w: more than %d attrs", ErrInvalid, maxAttrs)
	}
	for k, v := range in.Attrs {
		if k == "" || len(k) > maxAttrKey || len(v) > maxAttrValue {
			return nil, fmt.Errorf("%w: attr %q: keys are 1-%d bytes, values at most %d", ErrInvalid, k, maxAttrKey, maxAttrValue)
		}
	}
	s := in.Subject
	if s.Email != "" {
		em := NormalizeEmail(s.Email)
		if em == "" {
			return nil, fmt.Errorf("%w: subject.email %q is not an email address", ErrInvalid, s.Email)
		}
		s.Email = em
	}
	if s.Phone != "" {
		ph, err := NormalizePhone(s.Phone, region)
		if err != nil {
			return nil, fmt.Errorf("%w: subject.phone: %w", ErrInvalid, err)
		}
		s.Phone = ph
	}
	if s.Empty() {
		return nil, fmt.Errorf("%w: subject needs one of email, phone, visitor_id, item_id", ErrInvalid)
	}
	ev := &Event{
		ID: MakeID(APIConnector, in.ID), Type: in.Type, Connector: APIConnector,
		OccurredAt: received, ReceivedAt: received, Subject: s, Channel: in.Channel,
		Attrs: in.Attrs, Raw: Excerpt(raw),
	}
	if in.OccurredAt != nil && !in.OccurredAt.IsZero() {
		ev.OccurredAt = in.OccurredAt.UTC()
	}
	return ev, nil
}

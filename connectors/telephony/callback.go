package telephony

import (
	"errors"
	"time"
)

// Errors of the callback parsers, for errors.Is. All mean HTTP 400: the
// callback is refused and nothing is recorded.
var (
	ErrMissingField = errors.New("missing field")
	ErrBadField     = errors.New("bad field")
	ErrBadStatus    = errors.New("unknown call status")
	ErrBadNumber    = errors.New("unparsable phone number")
)

// Status is the status of one call leg, in Twilio's words (the generic
// provider's aliases are mapped onto them).
type Status string

// The statuses. Voicemail is the generic provider's "answered by a
// voicemail box", a final status.
const (
	StatusQueued     Status = "queued"
	StatusInitiated  Status = "initiated"
	StatusRinging    Status = "ringing"
	StatusInProgress Status = "in-progress"
	StatusCompleted  Status = "completed"
	StatusBusy       Status = "busy"
	StatusNoAnswer   Status = "no-answer"
	StatusCanceled   Status = "canceled"
	StatusFailed     Status = "failed"
	StatusVoicemail  Status = "voicemail"
)

// rank orders statuses along a call's life: a leg's status only moves to a
// higher rank, so a late "ringing" never undoes a "completed".
var rank = map[Status]int{
	StatusQueued: 1, StatusInitiated: 1,
	StatusRinging:    2,
	StatusInProgress: 3,
	StatusCompleted:  4, StatusBusy: 4, StatusNoAnswer: 4, StatusCanceled: 4, StatusFailed: 4, StatusVoicemail: 4,
}

// Final reports whether s ends the leg.
func (s Status) Final() bool { return rank[s] == 4 }

// Valid reports whether s is one of the statuses above.
func (s Status) Valid() bool { return rank[s] > 0 }

// Directions of a call, as derived for the customer: Inbound is a customer
// calling one of our lines, Outbound an employee calling a customer.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Callback is one provider callback about one call leg, parsed and
// normalized, before it is folded into its call.
type Callback struct {
	// ID identifies this callback among the call's callbacks, stably across
	// the provider's retries: a retry is recognized and changes nothing.
	ID string `json:"id"`
	// CallID is the leg's provider id (Twilio CallSid, generic call_id).
	CallID string `json:"call_id"`
	// ParentID is the parent leg's id for a child leg (Twilio
	// ParentCallSid); the callback is folded into the parent's call.
	ParentID string `json:"parent_id,omitempty"`
	Status   Status `json:"status"`
	// Direction is the provider's word: inbound, outbound, outbound-api,
	// outbound-dial; empty when not sent.
	Direction string `json:"direction,omitempty"`
	From      Party  `json:"from,omitzero"`
	To        Party  `json:"to,omitzero"`
	// Line is our number when the provider names it (generic "line"), E.164.
	Line string `json:"line,omitempty"`
	// Duration is the leg's talk time in seconds, 0 when unknown.
	Duration int `json:"duration_s,omitempty"`
	// AnsweredBy is Twilio's answering machine detection verdict (human,
	// machine_start, machine_end_beep, fax, unknown…).
	AnsweredBy string `json:"answered_by,omitempty"`
	// Seq is the provider's sequence number of the callback within its leg.
	Seq *int64 `json:"seq,omitempty"`
	// Timestamp is the provider's time of the status change.
	Timestamp  time.Time `json:"timestamp,omitzero"`
	ReceivedAt time.Time `json:"received_at"`
	// Warnings lists what was ignored while parsing.
	Warnings []string `json:"warnings,omitempty"`
	// Raw is the body as received.
	Raw []byte `json:"-"`
}

// RootID is the id of the call the callback belongs to: the parent's for a
// child leg, else its own.
func (cb *Callback) RootID() string {
	if cb.ParentID != "" {
		return cb.ParentID
	}
	return cb.CallID
}

// order is the callback's place among the callbacks of its leg.
func (cb *Callback) order() Order {
	o := Order{Seq: -1, At: cb.Timestamp, ID: cb.ID}
	if cb.Seq != nil {
		o.Seq = *cb.Seq
	}
	return o
}

// Order places a callback among those of its leg: by the provider's
// sequence number when both have one, else by the provider's timestamp,
// else by callback id, so that folding is independent of arrival order.
type Order struct {
	Seq int64     `json:"seq"` // -1: none
	At  time.Time `json:"at,omitzero"`
	ID  string    `json:"id"`
}

// Before reports whether o comes before p.
func (o Order) Before(p Order) bool {
	if o.Seq >= 0 && p.Seq >= 0 && o.Seq != p.Seq {
		return o.Seq < p.Seq
	}
	if !o.At.IsZero() && !p.At.IsZero() && !o.At.Equal(p.At) {
		return o.At.Before(p.At)
	}
	return o.ID < p.ID
}

// isMachine reports whether an AnsweredBy verdict means a machine (a
// voicemail box or a fax) took the call.
func isMachine(answeredBy string) bool {
	return len(answeredBy) >= 7 && answeredBy[:7] == "machine" || answeredBy == "fax"
}

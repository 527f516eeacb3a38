package telephony

import (
	"cmp"
	"reflect"
	"slices"
	"time"

	"github.com/stagegate/stagegate/normalize"
)

// Leg is what is known of one leg of a call: the call itself (the root) or
// a child leg it created (Twilio <Dial> creates one per dialled number).
// Every field is a merge of the leg's callbacks that does not depend on
// their arrival order, so duplicates and late callbacks change nothing.
type Leg struct {
	ID        string `json:"id"`
	Parent    string `json:"parent,omitempty"`
	Direction string `json:"direction,omitempty"`
	From      Party  `json:"from,omitzero"`
	To        Party  `json:"to,omitzero"`
	Line      string `json:"line,omitempty"`
	// Status is the furthest status reached; among final statuses, the
	// first by Order (a PBX's second hangup does not replace the first).
	Status      Status `json:"status"`
	StatusOrder Order  `json:"status_order"`
	// Answered: a callback showed the leg answered (in-progress, completed
	// with a duration, voicemail, or an answering machine verdict).
	Answered bool `json:"answered,omitempty"`
	// AnsweredBy is the last answering machine verdict by Order.
	AnsweredBy      string `json:"answered_by,omitempty"`
	AnsweredByOrder Order  `json:"answered_by_order,omitzero"`
	Voicemail       bool   `json:"voicemail,omitempty"`
	Duration        int    `json:"duration_s,omitempty"`
	// FirstAt is the earliest time of any callback (provider time, else
	// received); EndedAt the provider time of the first final status.
	FirstAt time.Time `json:"first_at"`
	EndedAt time.Time `json:"ended_at,omitzero"`
	// FinalReceivedAt is when we first received a final status of the leg
	// (our clock): the missed decision waits Settle after it.
	FinalReceivedAt time.Time `json:"final_received_at,omitzero"`
}

// machine reports whether the leg was taken by a voicemail box or a fax.
func (l *Leg) machine() bool { return l.Voicemail || isMachine(l.AnsweredBy) }

// merge folds one callback of this leg in.
func (l *Leg) merge(cb *Callback) {
	if l.Parent == "" {
		l.Parent = cb.ParentID
	}
	if l.Direction == "" {
		l.Direction = cb.Direction
	}
	if l.From == (Party{}) {
		l.From = cb.From
	}
	if l.To == (Party{}) {
		l.To = cb.To
	}
	if l.Line == "" {
		l.Line = cb.Line
	}
	o := cb.order()
	if l.Status == "" || rank[cb.Status] > rank[l.Status] || rank[cb.Status] == rank[l.Status] && o.Before(l.StatusOrder) {
		l.Status, l.StatusOrder = cb.Status, o
	}
	switch {
	case cb.Status == StatusInProgress, cb.Status == StatusVoicemail, cb.AnsweredBy != "",
		cb.Status == StatusCompleted && cb.Duration > 0:
		l.Answered = true
	}
	if cb.AnsweredBy != "" && (l.AnsweredBy == "" || l.AnsweredByOrder.Before(o)) {
		l.AnsweredBy, l.AnsweredByOrder = cb.AnsweredBy, o
	}
	if cb.Status == StatusVoicemail {
		l.Voicemail = true
	}
	l.Duration = max(l.Duration, cb.Duration)
	at := cb.Timestamp
	if at.IsZero() {
		at = cb.ReceivedAt
	}
	if l.FirstAt.IsZero() || at.Before(l.FirstAt) {
		l.FirstAt = at
	}
	if cb.Status.Final() {
		if !cb.Timestamp.IsZero() && (l.EndedAt.IsZero() || cb.Timestamp.Before(l.EndedAt)) {
			l.EndedAt = cb.Timestamp
		}
		if l.FinalReceivedAt.IsZero() || cb.ReceivedAt.Before(l.FinalReceivedAt) {
			l.FinalReceivedAt = cb.ReceivedAt
		}
	}
}

// Outcomes of a call, as shown by the API.
const (
	OutcomeUnknown     = "unknown"      // the root call has not reported yet
	OutcomeActive      = "active"       // not over, not answered yet
	OutcomeAnswered    = "answered"     // a person answered
	OutcomeVoicemail   = "voicemail"    // only a machine answered, and that does not count as missed
	OutcomeSettling    = "settling"     // over, unanswered: call.missed is due at settle_at
	OutcomeMissed      = "missed"       // call.missed was emitted
	OutcomeNotAnswered = "not_answered" // an outbound call nobody answered
)

// Emitted records an event the call produced.
type Emitted struct {
	ID   string         `json:"id"`
	Type normalize.Type `json:"type"`
	At   time.Time      `json:"at"`
}

// Call is the state of one call: its legs and what was derived from them.
// It is stored as JSON under telephony/<connector>/call/<id>.
type Call struct {
	ID        string `json:"id"`
	Connector string `json:"connector"`
	Provider  string `json:"provider"`
	// Direction, Line and Customer are derived from the legs: inbound (a
	// customer called Line) or outbound (we called the customer from Line).
	Direction string `json:"direction,omitempty"`
	Line      string `json:"line,omitempty"`
	Customer  Party  `json:"customer,omitzero"`
	Outcome   string `json:"outcome"`
	// Reason says why a missed call is missed: the root's final status
	// (no-answer, busy, canceled, failed), voicemail or not_answered.
	Reason   string    `json:"reason,omitempty"`
	SettleAt time.Time `json:"settle_at,omitzero"`
	Events   []Emitted `json:"events,omitempty"`
	Notes    []string  `json:"notes,omitempty"`
	// Legs: the root first, then child legs by first callback.
	Legs      []Leg     `json:"legs"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// FoldOptions are the connector settings the fold depends on.
type FoldOptions struct {
	Connector         string
	Provider          string
	VoicemailIsMissed bool
	// Settle is how long after the root's final status the missed
	// decision waits for late callbacks of child legs; 0 decides at once.
	Settle time.Duration
	// Own are our lines, Agents our employees' phones (E.164): neither is
	// ever taken for the customer.
	Own, Agents map[string]bool
}

// Fold is the call state machine: it folds one callback (or, with cb nil,
// the passing of time) into c at now, and returns the new state, the
// events to emit and whether the state changed. It is pure: the same
// inputs give the same outputs, and folding a callback already folded
// changes nothing and emits nothing. Events already in c.Events are never
// emitted again; their ids are derived from the call, so re-deriving them
// after a crash gives duplicates, never new events.
func Fold(c Call, cb *Callback, now time.Time, o FoldOptions) (Call, []*normalize.Event, bool) {
	now = now.UTC()
	next := c
	next.Legs = slices.Clone(c.Legs)
	next.Events = slices.Clone(c.Events)
	next.Notes = slices.Clone(c.Notes)
	if next.Connector == "" {
		next.Connector, next.Provider = o.Connector, o.Provider
	}
	if cb != nil {
		i := slices.IndexFunc(next.Legs, func(l Leg) bool { return l.ID == cb.CallID })
		if i < 0 {
			next.Legs = append(next.Legs, Leg{ID: cb.CallID})
			i = len(next.Legs) - 1
		}
		next.Legs[i].merge(cb)
		next.sortLegs()
	}
	events := next.decide(cb, now, o)
	changed := !reflect.DeepEqual(c, next)
	if changed {
		next.UpdatedAt = now
	}
	return next, events, changed
}

// sortLegs puts the root first, then child legs by first callback.
func (c *Call) sortLegs() {
	slices.SortStableFunc(c.Legs, func(a, b Leg) int {
		if ra, rb := a.ID == c.ID, b.ID == c.ID; ra != rb {
			if ra {
				return -1
			}
			return 1
		}
		if x := a.FirstAt.Compare(b.FirstAt); x != 0 {
			return x
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// root returns the root leg, or nil when only child legs reported so far.
func (c *Call) root() *Leg {
	if len(c.Legs) > 0 && c.Legs[0].ID == c.ID {
		return &c.Legs[0]
	}
	return nil
}

// emitted reports whether an event of type t was emitted.
func (c *Call) emitted(t normalize.Type) bool {
	return slices.ContainsFunc(c.Events, func(e Emitted) bool { return e.Type == t })
}

// note adds a note once.
func (c *Call) note(s string) {
	if !slices.Contains(c.Notes, s) {
		c.Notes = append(c.Notes, s)
	}
}

package telephony

import (
	"strconv"
	"strings"
	"time"

	"github.com/stagegate/stagegate/normalize"
)

// Answer evidence of a call, best first.
const (
	answerHuman   = "human"
	answerMachine = "machine"
)

// customer reports whether p can be the customer: a phone number (or a
// withheld one) that is neither one of our lines nor an agent's phone.
func (o FoldOptions) customer(p Party) bool {
	switch {
	case p.Anonymous:
		return true
	case p.Number == "":
		return false // an endpoint (client:, sip:) or nothing
	}
	return !o.Own[p.Number] && !o.Agents[p.Number]
}

// direction is the root leg's direction: the provider's word, else which
// end is one of our lines.
func (o FoldOptions) direction(root *Leg) string {
	switch {
	case root.Direction == Inbound:
		return Inbound
	case strings.HasPrefix(root.Direction, Outbound):
		return Outbound
	case o.Own[root.To.Number] && root.To.Number != "":
		return Inbound
	case o.Own[root.From.Number] && root.From.Number != "":
		return Outbound
	}
	return ""
}

// derive sets Direction, Line, Customer and Outcome from the legs, and
// returns the answer evidence (answerHuman, answerMachine or "").
//
//   - A root from a customer that says inbound is an inbound call: the
//     customer is its From, the line its To (or the provider's line).
//   - A root to a customer that says outbound is an outbound call: the
//     customer is its To, the line its From.
//   - Otherwise an agent placed the call (a softphone "client:alice", an
//     agent's phone in agent_numbers): it is outbound, and the customer
//     and line are the To and From of the first child leg to a customer.
//
// Whether the call was answered: an inbound call with child legs is
// answered when a child leg was (the root of a Twilio call is "answered"
// by the TwiML itself); without child legs, when the root was. An agent's
// call is answered when the customer's leg was.
func (c *Call) derive(o FoldOptions) string {
	c.Direction, c.Line, c.Customer = "", "", Party{}
	root := c.root()
	if root == nil {
		c.Outcome = OutcomeUnknown
		return ""
	}
	children := c.Legs[1:]
	var answerLegs []*Leg
	dir := o.direction(root)
	switch {
	case dir == Inbound && o.customer(root.From):
		c.Direction, c.Customer = Inbound, root.From
		c.Line = firstNonEmpty(root.Line, root.To.Number)
		answerLegs = legPtrs(children)
		if len(answerLegs) == 0 {
			answerLegs = []*Leg{root}
		}
	case dir == Outbound && o.customer(root.To):
		c.Direction, c.Customer = Outbound, root.To
		c.Line = firstNonEmpty(root.Line, root.From.Number)
		answerLegs = []*Leg{root}
	case dir != "":
		c.Direction = Outbound
		for i := range children {
			if l := &children[i]; o.customer(l.To) {
				if c.Customer == (Party{}) {
					c.Customer = l.To
					c.Line = firstNonEmpty(l.Line, l.From.Number, root.Line)
				}
				answerLegs = append(answerLegs, l)
			}
		}
	}
	answer := ""
	for _, l := range answerLegs {
		switch {
		case !l.Answered:
		case !l.machine():
			answer = answerHuman
		case answer == "":
			answer = answerMachine
		}
	}
	switch {
	case c.Direction == "":
		c.Outcome = OutcomeUnknown
	case answer == answerHuman:
		c.Outcome = OutcomeAnswered
	case answer == answerMachine && (c.Direction == Outbound || !o.VoicemailIsMissed):
		c.Outcome = OutcomeVoicemail
	case !root.Status.Final():
		c.Outcome = OutcomeActive
	case c.Direction == Inbound:
		c.Outcome = OutcomeSettling
	default:
		c.Outcome = OutcomeNotAnswered
	}
	return answer
}

// decide emits what the derived state calls for and has not been emitted:
// call.inbound as soon as an inbound call is known, call.outbound as soon
// as an outbound call's customer is known, call.missed when an inbound
// call's root reached a final status unanswered, Settle ago.
func (c *Call) decide(cb *Callback, now time.Time, o FoldOptions) []*normalize.Event {
	answer := c.derive(o)
	var raw []byte
	if cb != nil {
		raw = cb.Raw
	}
	var out []*normalize.Event
	emit := func(t normalize.Type, suffix string, at time.Time) *normalize.Event {
		ev := c.event(t, suffix, at, now, raw, o)
		c.Events = append(c.Events, Emitted{ID: ev.ID, Type: t, At: now})
		out = append(out, ev)
		return ev
	}
	root := c.root()
	switch {
	case c.Direction == Inbound && !c.emitted(normalize.CallInbound):
		emit(normalize.CallInbound, "inbound", root.FirstAt)
	case c.Direction == Outbound && c.Customer != (Party{}) && !c.emitted(normalize.CallOutbound):
		emit(normalize.CallOutbound, "outbound", root.FirstAt)
	}
	c.SettleAt = time.Time{}
	if c.emitted(normalize.CallMissed) {
		c.Outcome = OutcomeMissed
		if answer == answerHuman {
			c.note("a leg reported answered after call.missed was emitted")
		}
		return out
	}
	if c.Outcome != OutcomeSettling {
		c.Reason = ""
		return out
	}
	c.Reason = c.missedReason(root, answer)
	if due := root.FinalReceivedAt.Add(o.Settle); now.Before(due) {
		c.SettleAt = due
		return out
	}
	ev := emit(normalize.CallMissed, "missed", firstTime(root.EndedAt, root.FinalReceivedAt))
	ev.Attrs["status"] = string(root.Status)
	ev.Attrs["reason"] = c.Reason
	ev.Attrs["duration_s"] = strconv.Itoa(root.Duration)
	if answer == answerMachine {
		ev.Attrs["answered_by"] = "machine"
	}
	c.Outcome = OutcomeMissed
	return out
}

// missedReason says why an unanswered call is missed.
func (c *Call) missedReason(root *Leg, answer string) string {
	switch {
	case root.Status != StatusCompleted && root.Status != StatusVoicemail:
		return string(root.Status) // no-answer, busy, canceled, failed
	case answer == answerMachine || root.Voicemail:
		return "voicemail"
	}
	return "not_answered"
}

// event builds the call's event of type t. Its id is the connector, the
// root call id and suffix: stable whatever callback produced it.
func (c *Call) event(t normalize.Type, suffix string, occurred, now time.Time, raw []byte, o FoldOptions) *normalize.Event {
	if occurred.IsZero() {
		occurred = now
	}
	from, to := c.Customer.String(), c.Line
	root := c.root()
	if c.Direction == Outbound {
		from, to = c.Line, c.Customer.String()
		if from == "" {
			from = root.From.String()
		}
	} else if to == "" {
		to = root.To.String()
	}
	attrs := map[string]string{"call_id": c.ID, "direction": c.Direction, "provider": o.Provider}
	for k, v := range map[string]string{"line": c.Line, "from": from, "to": to} {
		if v != "" {
			attrs[k] = v
		}
	}
	return &normalize.Event{
		ID:         normalize.MakeID(o.Connector, c.ID, suffix),
		Type:       t,
		Connector:  o.Connector,
		OccurredAt: occurred.UTC(),
		ReceivedAt: now,
		Subject:    normalize.Subject{Phone: c.Customer.Number},
		Channel:    c.Line,
		Attrs:      attrs,
		Raw:        raw,
	}
}

func legPtrs(legs []Leg) []*Leg {
	out := make([]*Leg, len(legs))
	for i := range legs {
		out[i] = &legs[i]
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstTime(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

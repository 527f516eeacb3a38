package telephony

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/golden"
	"github.com/stagegate/stagegate/normalize"
)

const (
	agentA = "+15557770001"
	agentB = "+15557770002"
)

// tw builds the parameters of a Twilio status callback of leg sid; seq
// also sets the Timestamp (t0 + seq seconds).
func tw(sid, parent, dir, from, to, status string, seq int, kv ...string) url.Values {
	v := twilio("CallSid", sid, "AccountSid", "AC0001", "CallStatus", status, "Direction", dir, "From", from, "To", to,
		"SequenceNumber", strconv.Itoa(seq), "Timestamp", t0.Add(time.Duration(seq)*time.Second).Format(time.RFC1123Z))
	if parent != "" {
		v.Set("ParentCallSid", parent)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// in is a callback of the inbound call CA100 from customer to lineMain.
func in(status string, seq int, kv ...string) url.Values {
	return tw("CA100", "", "inbound", customer, lineMain, status, seq, kv...)
}

// child is a callback of a <Dial> leg of CA100 ringing an agent.
func child(sid, to, status string, seq int, kv ...string) url.Values {
	return tw(sid, "CA100", "outbound-dial", customer, to, status, seq, kv...)
}

// out is a callback of the outbound call CA300 from lineMain to customer.
func out(status string, seq int, kv ...string) url.Values {
	return tw("CA300", "", "outbound-api", lineMain, customer, status, seq, kv...)
}

// step is one input of a sequence: a Twilio callback, a generic body, or
// only the clock, at t0 + after. expect, when set, lists the events
// emitted so far.
type step struct {
	after  time.Duration
	tw     url.Values
	gen    string
	tick   bool
	expect []normalize.Type
}

type seqCase struct {
	name    string
	opts    func(*FoldOptions)
	steps   []step
	want    []normalize.Type
	outcome string
	reason  string
}

var (
	inbound  = normalize.CallInbound
	outbound = normalize.CallOutbound
	missed   = normalize.CallMissed
)

func at(d time.Duration, v url.Values) step { return step{after: d, tw: v} }
func cb(v url.Values) step                  { return step{tw: v} }
func gen(body string) step                  { return step{gen: body} }
func tick(d time.Duration, expect ...normalize.Type) step {
	return step{after: d, tick: true, expect: append([]normalize.Type{}, expect...)}
}

func withSettle(d time.Duration) func(*FoldOptions) { return func(o *FoldOptions) { o.Settle = d } }

var sequences = []seqCase{
	{name: "inbound_answered", steps: []step{cb(in("ringing", 0)), cb(in("in-progress", 1)), cb(in("completed", 2, "CallDuration", "42"))},
		want: []normalize.Type{inbound}, outcome: OutcomeAnswered},
	{name: "inbound_no_answer", steps: []step{cb(in("ringing", 0)), cb(in("no-answer", 1))},
		want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "no-answer"},
	{name: "inbound_busy", steps: []step{cb(in("busy", 0))},
		want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "busy"},
	{name: "inbound_canceled", steps: []step{cb(in("ringing", 0)), cb(in("canceled", 1))},
		want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "canceled"},
	{name: "inbound_failed", steps: []step{cb(in("failed", 0))},
		want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "failed"},
	{name: "completed_before_ringing", steps: []step{cb(in("completed", 2, "CallDuration", "30")), cb(in("ringing", 0)), cb(in("in-progress", 1))},
		want: []normalize.Type{inbound}, outcome: OutcomeAnswered},
	{name: "unanswered_completed_before_ringing", steps: []step{cb(in("completed", 1, "CallDuration", "0")), cb(in("ringing", 0))},
		want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "not_answered"},
	{name: "same_callback_five_times", steps: []step{cb(in("ringing", 0)), cb(in("ringing", 0)), cb(in("ringing", 0)), cb(in("ringing", 0)), cb(in("ringing", 0))},
		want: []normalize.Type{inbound}, outcome: OutcomeActive},
	{name: "no_answer_five_times", steps: []step{cb(in("ringing", 0)), cb(in("no-answer", 1)), cb(in("no-answer", 1)), cb(in("no-answer", 1)), cb(in("no-answer", 1)), cb(in("no-answer", 1))},
		want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "no-answer"},
	{name: "two_legs_one_agent_answers", steps: []step{
		cb(in("ringing", 0)),
		cb(child("CA201", agentA, "ringing", 0)), cb(child("CA202", agentB, "ringing", 0)),
		cb(child("CA201", agentA, "in-progress", 1)), cb(child("CA202", agentB, "canceled", 1)),
		cb(child("CA201", agentA, "completed", 2, "CallDuration", "60")),
		cb(in("completed", 1, "CallDuration", "75")),
	}, want: []normalize.Type{inbound}, outcome: OutcomeAnswered},
	{name: "two_legs_nobody_answers", steps: []step{
		cb(in("ringing", 0)),
		cb(child("CA201", agentA, "ringing", 0)), cb(child("CA202", agentB, "ringing", 0)),
		cb(child("CA201", agentA, "no-answer", 1)), cb(child("CA202", agentB, "no-answer", 1)),
		cb(in("completed", 1, "CallDuration", "20")),
	}, want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "not_answered"},
	{name: "parent_ends_before_answered_leg_reports", opts: withSettle(10 * time.Second), steps: []step{
		at(0, in("completed", 1, "CallDuration", "40")),
		at(3*time.Second, child("CA201", agentA, "in-progress", 1)),
		at(4*time.Second, child("CA201", agentA, "completed", 2, "CallDuration", "35")),
		tick(30*time.Second, inbound),
	}, want: []normalize.Type{inbound}, outcome: OutcomeAnswered},
	{name: "settle_zero_decides_at_once", steps: []step{
		at(0, in("completed", 1, "CallDuration", "40")),
		at(time.Second, child("CA201", agentA, "no-answer", 1)),
		at(3*time.Second, child("CA202", agentB, "in-progress", 1)),
	}, want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "not_answered"},
	{name: "missed_waits_settle", opts: withSettle(10 * time.Second), steps: []step{
		at(0, in("ringing", 0)),
		at(time.Second, in("no-answer", 1)),
		tick(5*time.Second, inbound),
		tick(11*time.Second, inbound, missed),
		tick(20*time.Second, inbound, missed),
	}, want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "no-answer"},
	{name: "outbound_answered", steps: []step{cb(out("queued", 0)), cb(out("initiated", 1)), cb(out("ringing", 2)), cb(out("in-progress", 3)), cb(out("completed", 4, "CallDuration", "95"))},
		want: []normalize.Type{outbound}, outcome: OutcomeAnswered},
	{name: "outbound_not_answered", steps: []step{cb(out("queued", 0)), cb(out("ringing", 1)), cb(out("no-answer", 2))},
		want: []normalize.Type{outbound}, outcome: OutcomeNotAnswered},
	{name: "softphone_outbound", steps: []step{
		cb(tw("CA400", "", "inbound", "client:alice", "", "ringing", 0)),
		cb(tw("CA401", "CA400", "outbound-dial", lineMain, customer, "ringing", 0)),
		cb(tw("CA401", "CA400", "outbound-dial", lineMain, customer, "in-progress", 1)),
		cb(tw("CA401", "CA400", "outbound-dial", lineMain, customer, "completed", 2, "CallDuration", "12")),
		cb(tw("CA400", "", "inbound", "client:alice", "", "completed", 1, "CallDuration", "20")),
	}, want: []normalize.Type{outbound}, outcome: OutcomeAnswered},
	{name: "click_to_call_rings_agent_first", opts: func(o *FoldOptions) { o.Agents = map[string]bool{agentA: true} }, steps: []step{
		cb(tw("CA600", "", "outbound-api", lineMain, agentA, "in-progress", 0)),
		cb(tw("CA601", "CA600", "outbound-dial", lineMain, customer, "no-answer", 0)),
		cb(tw("CA600", "", "outbound-api", lineMain, agentA, "completed", 1, "CallDuration", "30")),
	}, want: []normalize.Type{outbound}, outcome: OutcomeNotAnswered},
	{name: "voicemail_is_missed", steps: []step{
		cb(in("ringing", 0)),
		cb(child("CA201", agentA, "in-progress", 0, "AnsweredBy", "machine_end_beep")),
		cb(child("CA201", agentA, "completed", 1, "CallDuration", "25")),
		cb(in("completed", 1, "CallDuration", "30")),
	}, want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "voicemail"},
	{name: "voicemail_not_missed_when_configured", opts: func(o *FoldOptions) { o.VoicemailIsMissed = false }, steps: []step{
		cb(in("ringing", 0)),
		cb(child("CA201", agentA, "in-progress", 0, "AnsweredBy", "machine_end_beep")),
		cb(child("CA201", agentA, "completed", 1, "CallDuration", "25")),
		cb(in("completed", 1, "CallDuration", "30")),
	}, want: []normalize.Type{inbound}, outcome: OutcomeVoicemail},
	{name: "anonymous_caller", steps: []step{cb(tw("CA500", "", "inbound", "+266696687", lineMain, "no-answer", 0))},
		want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "no-answer"},
	{name: "child_legs_only_so_far", steps: []step{cb(child("CA201", agentA, "ringing", 0)), cb(child("CA201", agentA, "in-progress", 1))},
		want: []normalize.Type{}, outcome: OutcomeUnknown},
	{name: "generic_pbx_double_hangup", steps: []step{
		gen(`{"call_id":"1712.1","direction":"inbound","from":"(202) 555-0123","to":"5550001111","status":"ringing","timestamp":"2026-03-01T10:15:00Z"}`),
		gen(`{"call_id":"1712.1","direction":"inbound","from":"(202) 555-0123","to":"5550001111","status":"answered","timestamp":"2026-03-01T10:15:04Z"}`),
		gen(`{"call_id":"1712.1","direction":"inbound","from":"(202) 555-0123","to":"5550001111","status":"hangup","duration_s":61,"timestamp":"2026-03-01T10:16:05Z"}`),
		gen(`{"call_id":"1712.1","direction":"inbound","from":"(202) 555-0123","to":"5550001111","status":"completed","duration_s":"0","timestamp":1772360166}`),
	}, want: []normalize.Type{inbound}, outcome: OutcomeAnswered},
	{name: "generic_asterisk_noanswer", steps: []step{
		gen(`{"call_id":"1712.2","direction":"in","from":"+1 202 555 0123","line":"+1 (555) 000-2222","to":"101","status":"NOANSWER","duration_s":0}`),
	}, want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "no-answer"},
	{name: "generic_voicemail", steps: []step{
		gen(`{"call_id":"1712.3","direction":"inbound","from":"+12025550123","to":"+15550001111","status":"ringing"}`),
		gen(`{"call_id":"1712.3","direction":"inbound","from":"+12025550123","to":"+15550001111","status":"voicemail","duration_s":14}`),
	}, want: []normalize.Type{inbound, missed}, outcome: OutcomeMissed, reason: "voicemail"},
}

func foldOptions(tc seqCase) FoldOptions {
	o := FoldOptions{Connector: "tel", Provider: ProviderTwilio, VoicemailIsMissed: true,
		Own: map[string]bool{}, Agents: map[string]bool{}}
	if tc.opts != nil {
		tc.opts(&o)
	}
	return o
}

// parseStep parses the callback of step i (nil for a tick).
func parseStep(t *testing.T, i int, s step, nums *numbers) *Callback {
	t.Helper()
	now := t0.Add(s.after)
	switch {
	case s.tick:
		return nil
	case s.gen != "":
		c, err := ParseGeneric("msg_"+normalize.Hash(s.gen)[:8], []byte(s.gen), now, nums)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		return c
	}
	c, err := ParseTwilio(s.tw, []byte(s.tw.Encode()), now, nums)
	if err != nil {
		t.Fatalf("step %d: %v", i, err)
	}
	return c
}

// runSequence folds the steps in order into the call of the first
// callback and returns the final state and every event emitted.
func runSequence(t *testing.T, tc seqCase, steps []step, o FoldOptions) (Call, []*normalize.Event) {
	t.Helper()
	nums := newNumbers("US")
	var call Call
	var all []*normalize.Event
	for i, s := range steps {
		c := parseStep(t, i, s, nums)
		if call.ID == "" {
			call.ID = c.RootID()
		}
		next, evs, changed := Fold(call, c, t0.Add(s.after), o)
		if !changed && len(evs) > 0 {
			t.Fatalf("step %d: events %v without a state change", i, types(evs))
		}
		call = next
		all = append(all, evs...)
		if s.expect != nil && !slices.Equal(types(all), s.expect) {
			t.Fatalf("after step %d: events %v, want %v", i, types(all), s.expect)
		}
	}
	return call, all
}

func TestFoldSequences(t *testing.T) {
	for _, tc := range sequences {
		t.Run(tc.name, func(t *testing.T) {
			o := foldOptions(tc)
			call, evs := runSequence(t, tc, tc.steps, o)
			if got := types(evs); !slices.Equal(got, tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
			ids := map[string]bool{}
			for _, ev := range evs {
				if ids[ev.ID] {
					t.Errorf("event %s emitted twice", ev.ID)
				}
				ids[ev.ID] = true
			}
			if call.Outcome != tc.outcome || call.Reason != tc.reason {
				t.Errorf("outcome %q reason %q, want %q %q", call.Outcome, call.Reason, tc.outcome, tc.reason)
			}
			// Everything again, in order, then a late tick: nothing new.
			again := call
			for i, s := range tc.steps {
				var evs []*normalize.Event
				again, evs, _ = Fold(again, parseStep(t, i, s, newNumbers("US")), t0.Add(time.Hour), o)
				if len(evs) > 0 {
					t.Errorf("replaying step %d emitted %v", i, types(evs))
				}
			}
			golden.CheckFile(t, filepath.Join("testdata", "fold", tc.name+".golden"), goldenFold(t, call, evs))
		})
	}
}

// TestFoldOrderIndependent folds each sequence's callbacks in many orders,
// all received before the missed decision is due, then lets the clock
// pass: the call and its events are always the same.
func TestFoldOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range sequences {
		t.Run(tc.name, func(t *testing.T) {
			o := foldOptions(tc)
			o.Settle = time.Hour
			var steps []step
			for _, s := range tc.steps {
				if !s.tick {
					steps = append(steps, step{tw: s.tw, gen: s.gen})
				}
			}
			final := tick(2 * time.Hour)
			final.expect = nil
			ref, refEvs := runSequence(t, tc, append(slices.Clone(steps), final), o)
			for range 20 {
				perm := slices.Clone(steps)
				rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
				got, evs := runSequence(t, tc, append(perm, final), o)
				if !reflect.DeepEqual(got.Legs, ref.Legs) || got.Outcome != ref.Outcome || got.Reason != ref.Reason ||
					got.Direction != ref.Direction || got.Line != ref.Line || got.Customer != ref.Customer {
					t.Fatalf("order changed the call:\n got %+v\nwant %+v", got, ref)
				}
				if !slices.Equal(eventIDs(evs), eventIDs(refEvs)) {
					t.Fatalf("order changed the events: %v, want %v", eventIDs(evs), eventIDs(refEvs))
				}
			}
		})
	}
}

func eventIDs(evs []*normalize.Event) []string {
	ids := []string{}
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestFoldEventShape(t *testing.T) {
	tc := sequences[1] // inbound_no_answer
	_, evs := runSequence(t, tc, tc.steps, foldOptions(tc))
	in, miss := evs[0], evs[1]
	if in.ID != "tel:CA100:inbound" || miss.ID != "tel:CA100:missed" {
		t.Fatalf("ids %s %s", in.ID, miss.ID)
	}
	for _, ev := range evs {
		if ev.Subject.Phone != customer || ev.Channel != lineMain || ev.Attrs["line"] != lineMain ||
			ev.Attrs["from"] != customer || ev.Attrs["to"] != lineMain || ev.Attrs["call_id"] != "CA100" || ev.Connector != "tel" {
			t.Errorf("event %+v", ev)
		}
	}
	if !in.OccurredAt.Equal(t0) || !miss.OccurredAt.Equal(t0.Add(time.Second)) {
		t.Errorf("occurred %v %v", in.OccurredAt, miss.OccurredAt)
	}
	if miss.Attrs["status"] != "no-answer" || miss.Attrs["reason"] != "no-answer" || miss.Attrs["duration_s"] != "0" {
		t.Errorf("missed attrs %v", miss.Attrs)
	}
}

// goldenEvent shows Raw as text rather than base64.
type goldenEvent struct {
	*normalize.Event
	Raw string `json:"raw,omitempty"`
}

func goldenFold(t *testing.T, call Call, evs []*normalize.Event) []byte {
	t.Helper()
	v := struct {
		Call   Call          `json:"call"`
		Events []goldenEvent `json:"events"`
	}{Call: call, Events: []goldenEvent{}}
	for _, ev := range evs {
		v.Events = append(v.Events, goldenEvent{Event: ev, Raw: string(ev.Raw)})
	}
	return goldenJSON(t, v)
}

func goldenJSON(t *testing.T, v any) []byte {
	t.Helper()
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

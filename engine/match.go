package engine

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// Decision outcomes, as stored in store.Decision.Outcome.
const (
	OutcomeWon         = "won"
	OutcomeLost        = "lost_to_earlier_stage"
	OutcomeNotEligible = "not_eligible"
	OutcomeStageBehind = "stage_behind"
	OutcomeNotMet      = "conditions_not_met"
)

// AttrNotCustomerMail is normalize.AttrNotCustomerMail, named here for the
// engine's resolve step and tests.
const AttrNotCustomerMail = normalize.AttrNotCustomerMail

// compiledTrigger is a trigger with its position in the pipeline.
type compiledTrigger struct {
	Trigger
	name  string
	stage int // index in the pipeline's stages
	event normalize.Type
	line  string // Line normalized to E.164 when it parses
}

// pipeline is a configured pipeline prepared for matching.
type pipeline struct {
	Pipeline
	stageIndex map[string]int
	triggers   []*compiledTrigger // in pipeline order, then config order
	listens    map[normalize.Type]bool
}

func compilePipeline(p Pipeline, region string) (*pipeline, error) {
	cp := &pipeline{Pipeline: p, stageIndex: map[string]int{}, listens: map[normalize.Type]bool{}}
	for i, s := range p.Stages {
		cp.stageIndex[s.ID] = i
		for k := range s.Triggers {
			t := s.Triggers[k]
			if errs := t.validate(); len(errs) > 0 {
				return nil, fmt.Errorf("pipeline %s stage %s trigger %d: %w", p.ID, s.ID, k, errs.Err())
			}
			ev, _ := EventType(t.Type)
			ct := &compiledTrigger{Trigger: t, name: t.DisplayName(s.ID, k), stage: i, event: ev, line: t.Line}
			if t.Line != "" {
				if n, err := normalize.NormalizePhone(t.Line, region); err == nil {
					ct.line = n
				}
			}
			cp.triggers = append(cp.triggers, ct)
			cp.listens[ev] = true
		}
	}
	return cp, nil
}

// final reports whether stage i is a final stage.
func (p *pipeline) final(i int) bool { return p.Stages[i].Final != "" }

// evaluation is the verdict of rule 3–4 for one item.
type evaluation struct {
	decisions []store.Decision
	winner    *compiledTrigger
}

// evaluate applies the engine rules to one item and explains every trigger
// of the event's type: eligibility (rule 3), conditions (rule 7) and the
// earliest-stage tie-break (rule 4).
func (p *pipeline) evaluate(it store.Item, ev *normalize.Event) evaluation {
	var out evaluation
	cur, known := p.stageIndex[it.Stage]
	for _, t := range p.triggers {
		if t.event != ev.Type {
			continue
		}
		d := store.Decision{Trigger: t.name, Type: t.Type, Stage: p.Stages[t.stage].ID}
		switch {
		case known && t.stage == cur:
			d.Outcome, d.Reason = OutcomeNotEligible, "trigger is on the item's current stage"
		case it.Closed && !t.AllowBack:
			d.Outcome, d.Reason = OutcomeNotEligible, "item is closed and the trigger does not allow moving back"
		case known && t.stage < cur && !t.AllowBack:
			d.Outcome, d.Reason = OutcomeStageBehind, fmt.Sprintf("stage %q is behind the item's stage %q", d.Stage, it.Stage)
		default:
			if ok, why := t.matches(ev); !ok {
				d.Outcome, d.Reason = OutcomeNotMet, why
			} else if out.winner == nil {
				d.Outcome, out.winner = OutcomeWon, t
			} else {
				d.Outcome = OutcomeLost
				d.Reason = fmt.Sprintf("trigger %q on earlier stage %q wins", out.winner.name, p.Stages[out.winner.stage].ID)
			}
		}
		out.decisions = append(out.decisions, d)
	}
	return out
}

// matches checks the trigger's conditions (rule 7) against the event and
// says why not when they fail.
func (t *compiledTrigger) matches(ev *normalize.Event) (bool, string) {
	a := ev.Attrs
	if why := a[normalize.AttrNotCustomerMail]; why != "" {
		return false, "not customer mail: " + why
	}
	switch t.Type {
	case "email.incoming", "email.sent":
		if t.Mailbox != "" && !strings.EqualFold(t.Mailbox, a["mailbox"]) && !strings.EqualFold(t.Mailbox, ev.Channel) {
			return false, fmt.Sprintf("mailbox %q is not %q", firstNonEmpty(a["mailbox"], ev.Channel), t.Mailbox)
		}
	case "email.opened":
		if t.humanOnly() && a["machine"] == "true" {
			return false, "open scored as machine-made and the trigger is human_only"
		}
	case "email.clicked":
		return t.matchClick(a)
	case "call.inbound", "call.outbound", "call.missed":
		if t.Line != "" && t.line != a["line"] && t.Line != a["line"] {
			return false, fmt.Sprintf("line %q is not %q", a["line"], t.line)
		}
	case "chat.started", "chat.message", "chat.accepted":
		return t.matchChannel(ev)
	case "chat.text":
		if ok, why := t.matchChannel(ev); !ok {
			return ok, why
		}
		return t.matchText(a["text"])
	case "chat.reaction_time":
		if ok, why := t.matchChannel(ev); !ok {
			return ok, why
		}
		s, err := strconv.ParseFloat(a["reaction_s"], 64)
		if err != nil {
			return false, fmt.Sprintf("event has no numeric reaction_s (%q)", a["reaction_s"])
		}
		if s <= *t.Seconds {
			return false, fmt.Sprintf("reaction %.1fs is not over %gs", s, *t.Seconds)
		}
	case "form.submitted", "form.callback":
		if t.Type == "form.callback" && a["kind"] != "callback" {
			return false, fmt.Sprintf("form kind %q is not callback", a["kind"])
		}
		if t.Form != "" && t.Form != a["form_id"] {
			return false, fmt.Sprintf("form %q is not %q", a["form_id"], t.Form)
		}
	case "webhook.received":
		if t.Code != "" && t.Code != a["code"] {
			return false, fmt.Sprintf("code %q is not %q", a["code"], t.Code)
		}
	case "field.changed":
		if a["field"] != t.Field {
			return false, fmt.Sprintf("field %q is not %q", a["field"], t.Field)
		}
		return t.matchTo(a["to"])
	case "responsible.changed":
		if t.To != "" && a["to"] != t.To {
			return false, fmt.Sprintf("new responsible %q is not %q", a["to"], t.To)
		}
	}
	for k, want := range t.Attrs {
		if got, ok := a[k]; !ok || got != want {
			return false, fmt.Sprintf("attr %s is %q, not %q", k, got, want)
		}
	}
	return true, ""
}

func (t *compiledTrigger) matchClick(a map[string]string) (bool, string) {
	if t.humanOnly() && a["machine"] == "true" {
		return false, "click scored as machine-made and the trigger is human_only"
	}
	u := a["url"]
	if t.Match == "exact" {
		if u != t.URL {
			return false, fmt.Sprintf("url %q is not %q", u, t.URL)
		}
	} else if !strings.HasPrefix(u, t.URL) {
		return false, fmt.Sprintf("url %q does not start with %q", u, t.URL)
	}
	return true, ""
}

// matchTo checks a field.changed trigger's to against the field's new
// value: any value when to is empty, else exactly (default), as a prefix
// or as a regex.
func (t *compiledTrigger) matchTo(v string) (bool, string) {
	switch {
	case t.To == "":
	case t.Match == "prefix":
		if !strings.HasPrefix(v, t.To) {
			return false, fmt.Sprintf("new value %q does not start with %q", v, t.To)
		}
	case t.Match == "regex":
		if !t.re.MatchString(v) {
			return false, fmt.Sprintf("new value %q does not match /%s/", v, t.To)
		}
	case v != t.To:
		return false, fmt.Sprintf("new value %q is not %q", v, t.To)
	}
	return true, ""
}

func (t *compiledTrigger) matchChannel(ev *normalize.Event) (bool, string) {
	if t.Channel != "" && t.Channel != ev.Channel {
		return false, fmt.Sprintf("channel %q is not %q", ev.Channel, t.Channel)
	}
	return true, ""
}

func (t *compiledTrigger) matchText(text string) (bool, string) {
	want := t.Text
	if t.Match == "regex" {
		if t.re.MatchString(text) {
			return true, ""
		}
		return false, fmt.Sprintf("text does not match /%s/", t.Text)
	}
	if !t.caseSensitive() {
		text, want = strings.ToLower(text), strings.ToLower(want)
	}
	if t.Match == "exact" {
		if text != want {
			return false, fmt.Sprintf("text is not exactly %q", t.Text)
		}
		return true, ""
	}
	if !strings.Contains(text, want) {
		return false, fmt.Sprintf("text does not contain %q", t.Text)
	}
	return true, ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

package board

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/normalize"
)

// pipelineView is a pipeline as the board shows it: each stage's triggers
// and actions in plain words.
type pipelineView struct {
	ID     string      `json:"id"`
	Name   string      `json:"name,omitempty"`
	Stages []stageView `json:"stages"`
}

type stageView struct {
	ID       string     `json:"id"`
	Name     string     `json:"name,omitempty"`
	Final    string     `json:"final,omitempty"`
	Triggers []wordView `json:"triggers"`
	Actions  []wordView `json:"actions"`
}

// wordView is one trigger or action: its name and what it does in words.
type wordView struct {
	Name string `json:"name,omitempty"`
	Type string `json:"type"`
	Text string `json:"text"`
}

func describePipeline(p *engine.Pipeline) pipelineView {
	v := pipelineView{ID: p.ID, Name: p.Name, Stages: make([]stageView, 0, len(p.Stages))}
	for _, s := range p.Stages {
		sv := stageView{ID: s.ID, Name: s.Name, Final: s.Final, Triggers: []wordView{}, Actions: []wordView{}}
		for i := range s.Triggers {
			t := &s.Triggers[i]
			sv.Triggers = append(sv.Triggers, wordView{Name: t.Name, Type: t.Type, Text: TriggerText(t)})
		}
		for i := range s.Actions {
			a := &s.Actions[i]
			sv.Actions = append(sv.Actions, wordView{Name: a.Name, Type: a.Type, Text: ActionText(a)})
		}
		v.Stages = append(v.Stages, sv)
	}
	return v
}

// TriggerText says in words when a trigger moves an item to its stage:
// "Moves here when a customer clicks a link starting with
// https://example.com/pricing — human clicks only."
func TriggerText(t *engine.Trigger) string {
	var b strings.Builder
	b.WriteString("Moves here when ")
	b.WriteString(triggerWhen(t))
	if t.AllowBack {
		b.WriteString("; also moves items back here from later stages")
	}
	if t.AsUser != "" {
		b.WriteString("; recorded as " + t.AsUser)
	}
	b.WriteString(".")
	return b.String()
}

func triggerWhen(t *engine.Trigger) string {
	human := t.HumanOnly == nil || *t.HumanOnly
	switch t.Type {
	case "email.incoming":
		return "a customer writes an email" + mailbox(t.Mailbox)
	case "email.sent":
		return "an email is sent to the customer" + mailbox(t.Mailbox)
	case "email.opened":
		return "a customer opens a tracked email" + humanOnly(human, "opens")
	case "email.clicked":
		link := "a link starting with " + t.URL
		if t.Match == "exact" {
			link = "the link " + t.URL
		}
		return "a customer clicks " + link + humanOnly(human, "clicks")
	case "call.inbound":
		return "a customer calls" + line(t.Line)
	case "call.outbound":
		return "someone calls the customer" + line(t.Line)
	case "call.missed":
		return "a customer's call is missed" + line(t.Line)
	case "chat.started":
		return "a customer starts a chat" + channel(t.Channel)
	case "chat.message":
		return "a customer writes in a chat" + channel(t.Channel)
	case "chat.accepted":
		return "an agent accepts a customer's chat" + channel(t.Channel)
	case "chat.text":
		how := "containing"
		switch t.Match {
		case "exact":
			how = "that is exactly"
		case "regex":
			how = "matching the pattern"
		}
		cs := " (letter case counts)"
		if t.CaseSensitive != nil && !*t.CaseSensitive {
			cs = " (any letter case)"
		}
		return "a customer writes a chat message " + how + " " + strconv.Quote(t.Text) + cs + channel(t.Channel)
	case "chat.reaction_time":
		s := 0.0
		if t.Seconds != nil {
			s = *t.Seconds
		}
		return "an agent accepts a chat more than " + strconv.FormatFloat(s, 'f', -1, 64) +
			" s after the customer's first message" + channel(t.Channel)
	case "form.submitted":
		return "a customer submits " + form(t.Form, "a form")
	case "form.callback":
		return "a customer asks to be called back with " + form(t.Form, "a callback form")
	case "webhook.received":
		if t.Code != "" {
			return "a signed webhook with code " + strconv.Quote(t.Code) + " arrives"
		}
		return "a signed webhook arrives"
	case "site.visit":
		return "a customer visits the site" + attrs(t.Attrs)
	case "site.return":
		return "a customer comes back to the site" + attrs(t.Attrs)
	}
	if name, ok := strings.CutPrefix(t.Type, normalize.CRMPrefix); ok {
		return "the CRM reports " + strings.ReplaceAll(name, "_", " ") + attrs(t.Attrs)
	}
	return "a " + t.Type + " event arrives" + attrs(t.Attrs)
}

func mailbox(m string) string {
	if m == "" {
		return ""
	}
	return " (mailbox " + m + ")"
}

func humanOnly(human bool, what string) string {
	if human {
		return " — human " + what + " only"
	}
	return " — machine " + what + " count too"
}

func line(l string) string {
	if l == "" {
		return " (any line)"
	}
	return " on line " + l
}

func channel(c string) string {
	if c == "" {
		return ""
	}
	return " in channel " + c
}

func form(f, any string) string {
	if f == "" {
		return any
	}
	return "the form " + strconv.Quote(f)
}

func attrs(a map[string]string) string {
	if len(a) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		parts = append(parts, k+" = "+strconv.Quote(a[k]))
	}
	return " with " + strings.Join(parts, " and ")
}

// ActionText says in words what an action does when an item enters its
// stage: "Sends the stage entry to https://crm.example.com/hooks/won,
// signed." Types it does not know are described by their name.
func ActionText(a *engine.ActionSpec) string {
	set := map[string]any{}
	if raw, err := json.Marshal(a); err == nil {
		_ = json.Unmarshal(raw, &set)
	}
	str := func(k string) string {
		if v, ok := set[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	var what string
	switch a.Type {
	case "log":
		what = "Writes to the timeline"
		if m := str("message"); m != "" {
			what += ": " + strconv.Quote(m)
		}
	case "webhook":
		method := str("method")
		if method == "" {
			method = "POST"
		}
		what = "Sends the stage entry (" + method + ") to " + str("url")
		if _, signed := set["secret"]; signed || str("signed") == "true" {
			what += ", signed"
		}
	case "bitrix24":
		what = "Mirrors the move into Bitrix24"
		if str("mode") == "trigger" {
			what = "Runs a Bitrix24 automation trigger"
		}
	case "set_field":
		what = "Sets the field " + str("field") + " to " + strconv.Quote(str("value"))
	case "set_responsible":
		what = "Makes " + str("user") + " responsible"
	case "send_email":
		to := str("to")
		if to == "" {
			to = "the contact"
		}
		what = "Sends an email"
		if s := str("subject"); s != "" {
			what += " " + strconv.Quote(s)
		}
		what += " to " + to
	default:
		what = "Runs a " + a.Type + " action"
	}
	if a.After > 0 {
		what += ", " + a.After.String() + " after the item enters"
		if a.SkipIfLeft == nil || *a.SkipIfLeft {
			what += " (unless it has left by then)"
		}
	}
	return what + "."
}

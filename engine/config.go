package engine

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/validate"
)

// Pipeline is an ordered list of stages. It is decoded from the config file.
type Pipeline struct {
	ID     string  `yaml:"id" json:"id"`
	Name   string  `yaml:"name" json:"name,omitempty"`
	Stages []Stage `yaml:"stages" json:"stages"`
}

// Final stage kinds.
const (
	FinalSuccess = "success"
	FinalFailure = "failure"
)

// Stage is one step of a pipeline, with the triggers that move items to it
// and the actions that run when an item enters it.
type Stage struct {
	ID       string       `yaml:"id" json:"id"`
	Name     string       `yaml:"name" json:"name,omitempty"`
	Final    string       `yaml:"final" json:"final,omitempty"` // "", success or failure
	Triggers []Trigger    `yaml:"triggers" json:"triggers,omitempty"`
	Actions  []ActionSpec `yaml:"actions" json:"actions,omitempty"`
}

// Trigger moves an item to the stage it sits on when its event happens and
// its conditions hold. Condition fields are flat, as in the config file;
// which of them a type accepts is listed in triggerKinds.
type Trigger struct {
	Type      string `yaml:"type" json:"type"`
	Name      string `yaml:"name" json:"name,omitempty"`
	AllowBack bool   `yaml:"allow_back" json:"allow_back,omitempty"`
	AsUser    string `yaml:"as_user" json:"as_user,omitempty"`

	Mailbox       string            `yaml:"mailbox" json:"mailbox,omitempty"`
	HumanOnly     *bool             `yaml:"human_only" json:"human_only,omitempty"`
	URL           string            `yaml:"url" json:"url,omitempty"`
	Match         string            `yaml:"match" json:"match,omitempty"`
	Line          string            `yaml:"line" json:"line,omitempty"`
	Channel       string            `yaml:"channel" json:"channel,omitempty"`
	Text          string            `yaml:"text" json:"text,omitempty"`
	CaseSensitive *bool             `yaml:"case_sensitive" json:"case_sensitive,omitempty"`
	Seconds       *float64          `yaml:"seconds" json:"seconds,omitempty"`
	Form          string            `yaml:"form" json:"form,omitempty"`
	Code          string            `yaml:"code" json:"code,omitempty"`
	Attrs         map[string]string `yaml:"attrs" json:"attrs,omitempty"`
	Field         string            `yaml:"field" json:"field,omitempty"`
	To            string            `yaml:"to" json:"to,omitempty"`

	re *regexp.Regexp // compiled chat.text or field.changed regex
}

// triggerKind describes one trigger type: the event type it listens to and
// the condition fields it accepts.
type triggerKind struct {
	event      normalize.Type
	conditions []string
}

var triggerKinds = map[string]triggerKind{
	"email.incoming":     {normalize.EmailIncoming, []string{"mailbox"}},
	"email.sent":         {normalize.EmailSent, []string{"mailbox"}},
	"email.opened":       {normalize.EmailOpened, []string{"human_only"}},
	"email.clicked":      {normalize.EmailClicked, []string{"url", "match", "human_only"}},
	"call.inbound":       {normalize.CallInbound, []string{"line"}},
	"call.outbound":      {normalize.CallOutbound, []string{"line"}},
	"call.missed":        {normalize.CallMissed, []string{"line"}},
	"chat.started":       {normalize.ChatStarted, []string{"channel"}},
	"chat.message":       {normalize.ChatMessage, []string{"channel"}},
	"chat.accepted":      {normalize.ChatAccepted, []string{"channel"}},
	"chat.text":          {normalize.ChatMessage, []string{"channel", "text", "case_sensitive", "match"}},
	"chat.reaction_time": {normalize.ChatAccepted, []string{"channel", "seconds"}},
	"form.submitted":     {normalize.FormSubmitted, []string{"form"}},
	"form.callback":      {normalize.FormSubmitted, []string{"form"}},
	"webhook.received":   {normalize.WebhookReceive, []string{"code"}},
	"site.visit":         {normalize.SiteVisit, []string{"attrs"}},
	"site.return":        {normalize.SiteReturn, []string{"attrs"}},
	// Item changes (PATCH /api/v1/items/{id}, set_field, set_responsible).
	"field.changed":       {normalize.ItemFieldChanged, []string{"field", "to", "match"}},
	"responsible.changed": {normalize.ItemResponsibleChanged, []string{"to"}},
}

// EventType returns the event type a trigger type listens to, and whether
// the trigger type is known. Any crm.<name> trigger listens to that event.
func EventType(triggerType string) (normalize.Type, bool) {
	if k, ok := triggerKinds[triggerType]; ok {
		return k.event, true
	}
	t := normalize.Type(triggerType)
	if strings.HasPrefix(triggerType, normalize.CRMPrefix) && t.Valid() {
		return t, true
	}
	return "", false
}

func (t *Trigger) conditionsAllowed() []string {
	if k, ok := triggerKinds[t.Type]; ok {
		return k.conditions
	}
	return []string{"attrs"} // crm.*
}

// setConditions lists the condition fields that are set on t.
func (t *Trigger) setConditions() []string {
	var set []string
	add := func(name string, isSet bool) {
		if isSet {
			set = append(set, name)
		}
	}
	add("mailbox", t.Mailbox != "")
	add("human_only", t.HumanOnly != nil)
	add("url", t.URL != "")
	add("match", t.Match != "")
	add("line", t.Line != "")
	add("channel", t.Channel != "")
	add("text", t.Text != "")
	add("case_sensitive", t.CaseSensitive != nil)
	add("seconds", t.Seconds != nil)
	add("form", t.Form != "")
	add("code", t.Code != "")
	add("attrs", len(t.Attrs) > 0)
	add("field", t.Field != "")
	add("to", t.To != "")
	return set
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidatePipelines checks pipelines as a whole and returns every problem
// with its path below "pipelines". Action types are checked against
// kinds, and so are their settings (see actionspec.go).
func ValidatePipelines(ps []Pipeline, kinds map[string]ActionKind) validate.Errors {
	var errs validate.Errors
	if len(ps) == 0 {
		errs.Add("pipelines", "at least one pipeline is required")
	}
	seen := map[string]bool{}
	for i := range ps {
		p := &ps[i]
		path := validate.Index("pipelines", i)
		checkID(&errs, validate.Join(path, "id"), p.ID, seen, "pipeline")
		if len(p.Stages) == 0 {
			errs.Add(validate.Join(path, "stages"), "at least one stage is required")
		}
		stageSeen := map[string]bool{}
		for j := range p.Stages {
			s := &p.Stages[j]
			spath := validate.Index(validate.Join(path, "stages"), j)
			checkID(&errs, validate.Join(spath, "id"), s.ID, stageSeen, "stage")
			if s.Final != "" && s.Final != FinalSuccess && s.Final != FinalFailure {
				errs.Add(validate.Join(spath, "final"), "must be %q or %q, not %q", FinalSuccess, FinalFailure, s.Final)
			}
			for k := range s.Triggers {
				errs.Merge(validate.Index(validate.Join(spath, "triggers"), k), s.Triggers[k].validate())
			}
			for k := range s.Actions {
				apath := validate.Index(validate.Join(spath, "actions"), k)
				errs.Merge(apath, s.Actions[k].validate(s.ID, kinds))
			}
		}
	}
	return errs
}

func checkID(errs *validate.Errors, path, id string, seen map[string]bool, what string) {
	switch {
	case id == "":
		errs.Add(path, "required")
	case !idPattern.MatchString(id):
		errs.Add(path, "%s id %q must be 1-64 letters, digits, '_', '.' or '-'", what, id)
	case seen[id]:
		errs.Add(path, "duplicate %s id %q", what, id)
	}
	seen[id] = true
}

// validate checks one trigger and compiles what it needs (the chat.text
// regex). Paths are relative to the trigger.
func (t *Trigger) validate() validate.Errors {
	var errs validate.Errors
	if t.Type == "" {
		errs.Add("type", "required")
		return errs
	}
	if _, ok := EventType(t.Type); !ok {
		errs.Add("type", "unknown trigger type %q", t.Type)
		return errs
	}
	allowed := map[string]bool{}
	for _, c := range t.conditionsAllowed() {
		allowed[c] = true
	}
	for _, c := range t.setConditions() {
		if !allowed[c] {
			errs.Add(c, "not a condition of %s triggers", t.Type)
		}
	}
	switch t.Type {
	case "email.clicked":
		if t.URL == "" {
			errs.Add("url", "required")
		}
		if t.Match != "" && t.Match != "prefix" && t.Match != "exact" {
			errs.Add("match", "must be prefix or exact, not %q", t.Match)
		}
	case "chat.text":
		if t.Text == "" {
			errs.Add("text", "required")
		}
		switch t.Match {
		case "", "contains", "exact":
		case "regex":
			expr := t.Text
			if !t.caseSensitive() {
				expr = "(?i)" + expr
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				errs.Add("text", "invalid regex: %v", err)
			}
			t.re = re
		default:
			errs.Add("match", "must be contains, exact or regex, not %q", t.Match)
		}
	case "field.changed":
		if t.Field == "" {
			errs.Add("field", "required")
		}
		switch t.Match {
		case "", "exact":
		case "prefix", "regex":
			if t.To == "" {
				errs.Add("to", "required with match %s", t.Match)
			} else if t.Match == "regex" {
				re, err := regexp.Compile(t.To)
				if err != nil {
					errs.Add("to", "invalid regex: %v", err)
				}
				t.re = re
			}
		default:
			errs.Add("match", "must be exact, prefix or regex, not %q", t.Match)
		}
	case "chat.reaction_time":
		if t.Seconds == nil {
			errs.Add("seconds", "required")
		} else if *t.Seconds < 0 {
			errs.Add("seconds", "must not be negative")
		}
	}
	return errs
}

// caseSensitive is chat.text's case_sensitive, true unless set false.
func (t *Trigger) caseSensitive() bool { return t.CaseSensitive == nil || *t.CaseSensitive }

// humanOnly is human_only, true unless set false.
func (t *Trigger) humanOnly() bool { return t.HumanOnly == nil || *t.HumanOnly }

// DisplayName is the trigger's name, or "type@stage#n" when it has none.
func (t *Trigger) DisplayName(stage string, n int) string {
	if t.Name != "" {
		return t.Name
	}
	return fmt.Sprintf("%s@%s#%d", t.Type, stage, n)
}

package engine

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/stagegate/stagegate/validate"
)

// ActionSpec is one automation rule on a stage: it runs when an item
// enters the stage. Settings are flat, as in the config file; which of them
// a type accepts is listed in actionSettings. The engine runs the "log"
// type itself; the runner given to the engine (package actions) runs the
// others. Secrets (secret, headers, webhook_url) never appear in JSON.
type ActionSpec struct {
	Type string `yaml:"type" json:"type"`
	Name string `yaml:"name" json:"name,omitempty"`
	// After delays the action; 0 runs it at once.
	After time.Duration `yaml:"after" json:"after,omitempty"`
	// SkipIfLeft (default true) drops a delayed action whose item has left
	// the stage (or left and entered it again) by the time it is due.
	SkipIfLeft *bool `yaml:"skip_if_left" json:"skip_if_left,omitempty"`
	// Timeout bounds one HTTP attempt (webhook, bitrix24); 0 takes the
	// actions section's timeout.
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`

	// log
	Message string `yaml:"message" json:"message,omitempty"`

	// webhook
	URL         string            `yaml:"url" json:"url,omitempty"`
	Method      string            `yaml:"method" json:"method,omitempty"`
	Secret      string            `yaml:"secret" json:"-"`
	Headers     map[string]string `yaml:"headers" json:"-"`
	Template    string            `yaml:"template" json:"template,omitempty"`
	ContentType string            `yaml:"content_type" json:"content_type,omitempty"`

	// bitrix24
	WebhookURL   string            `yaml:"webhook_url" json:"-"`
	Mode         string            `yaml:"mode" json:"mode,omitempty"`
	EntityTypeID int               `yaml:"entity_type_id" json:"entity_type_id,omitempty"`
	IDField      string            `yaml:"id_field" json:"id_field,omitempty"`
	StageID      string            `yaml:"stage_id" json:"stage_id,omitempty"`
	StageMap     map[string]string `yaml:"stage_map" json:"stage_map,omitempty"`
	Code         string            `yaml:"code" json:"code,omitempty"`
	TargetType   string            `yaml:"target_type" json:"target_type,omitempty"`

	// set_field
	Field string `yaml:"field" json:"field,omitempty"`
	Value string `yaml:"value" json:"value,omitempty"`

	// set_responsible
	User string `yaml:"user" json:"user,omitempty"`
}

// Bitrix24 modes.
const (
	Bitrix24Update  = "update"
	Bitrix24Trigger = "trigger"
)

// DefaultBitrix24IDField is the item field holding the Bitrix24 item id.
const DefaultBitrix24IDField = "bitrix24_id"

// MaxActionTimeout bounds an action's timeout.
const MaxActionTimeout = 5 * time.Minute

// actionSettings lists, per built-in action type, the settings it accepts
// besides type, name, after and skip_if_left.
var actionSettings = map[string][]string{
	"log":             {"message"},
	"webhook":         {"url", "method", "secret", "headers", "template", "content_type", "timeout"},
	"bitrix24":        {"webhook_url", "mode", "entity_type_id", "id_field", "stage_id", "stage_map", "code", "target_type", "timeout"},
	"set_field":       {"field", "value"},
	"set_responsible": {"user"},
}

// setSettings lists the type-specific settings that are set on a.
func (a *ActionSpec) setSettings() []string {
	var set []string
	add := func(name string, isSet bool) {
		if isSet {
			set = append(set, name)
		}
	}
	add("timeout", a.Timeout != 0)
	add("message", a.Message != "")
	add("url", a.URL != "")
	add("method", a.Method != "")
	add("secret", a.Secret != "")
	add("headers", len(a.Headers) > 0)
	add("template", a.Template != "")
	add("content_type", a.ContentType != "")
	add("webhook_url", a.WebhookURL != "")
	add("mode", a.Mode != "")
	add("entity_type_id", a.EntityTypeID != 0)
	add("id_field", a.IDField != "")
	add("stage_id", a.StageID != "")
	add("stage_map", len(a.StageMap) > 0)
	add("code", a.Code != "")
	add("target_type", a.TargetType != "")
	add("field", a.Field != "")
	add("value", a.Value != "")
	add("user", a.User != "")
	return set
}

// SkipsIfLeft reports whether a delayed action is dropped when its item
// left the stage meanwhile (skip_if_left, default true).
func (a *ActionSpec) SkipsIfLeft() bool { return a.SkipIfLeft == nil || *a.SkipIfLeft }

// Bitrix24Stage is the Bitrix24 stageId an update sets when the item enters
// stage: stage_id, else the stage_map entry.
func (a *ActionSpec) Bitrix24Stage(stage string) string {
	if a.StageID != "" {
		return a.StageID
	}
	return a.StageMap[stage]
}

// Bitrix24TargetType is the TYPENAME of crm.automation.trigger's target
// (TYPENAME_ID): target_type, else LEAD for entity type 1 and DEAL for 2.
func (a *ActionSpec) Bitrix24TargetType() string {
	if a.TargetType != "" {
		return a.TargetType
	}
	return map[int]string{1: "LEAD", 2: "DEAL"}[a.EntityTypeID]
}

var (
	headerName     = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	targetType     = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	reservedHeader = []string{"content-length", "host", "idempotency-key", "webhook-id",
		"webhook-timestamp", "webhook-signature", "transfer-encoding", "connection", "stagegate-cause"}
)

// validate checks one action on stage; paths are relative to the action.
func (a *ActionSpec) validate(stage string, types map[string]bool) validate.Errors {
	var errs validate.Errors
	switch {
	case a.Type == "":
		errs.Add("type", "required")
		return errs
	case !types[a.Type]:
		errs.Add("type", "unknown action type %q", a.Type)
		return errs
	}
	if a.After < 0 {
		errs.Add("after", "must not be negative")
	}
	allowed, known := actionSettings[a.Type]
	if !known {
		return errs // a type of the runner's own: its settings are its business
	}
	for _, s := range a.setSettings() {
		if !slices.Contains(allowed, s) {
			errs.Add(s, "not a setting of %s actions", a.Type)
		}
	}
	if a.Timeout < 0 || a.Timeout > MaxActionTimeout {
		errs.Add("timeout", "must be between 0 and %s", MaxActionTimeout)
	}
	switch a.Type {
	case "webhook":
		a.validateWebhook(&errs)
	case "bitrix24":
		a.validateBitrix24(&errs, stage)
	case "set_field":
		if a.Field == "" {
			errs.Add("field", "required")
		}
		checkTemplate(&errs, "value", a.Value)
	case "set_responsible":
		if a.User == "" {
			errs.Add("user", "required")
		}
		checkTemplate(&errs, "user", a.User)
	}
	return errs
}

func (a *ActionSpec) validateWebhook(errs *validate.Errors) {
	checkURL(errs, "url", a.URL)
	if m := a.Method; m != "" && m != "POST" && m != "PUT" && m != "PATCH" {
		errs.Add("method", "must be POST, PUT or PATCH, not %q", m)
	}
	if s, ok := strings.CutPrefix(a.Secret, "whsec_"); ok {
		if _, err := base64.StdEncoding.DecodeString(s); err != nil || s == "" {
			errs.Add("secret", "a whsec_ secret must be followed by base64")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(a.Headers)) {
		v, path := a.Headers[name], validate.Join("headers", name)
		switch {
		case !headerName.MatchString(name):
			errs.Add(path, "not a valid header name")
		case slices.Contains(reservedHeader, strings.ToLower(name)):
			errs.Add(path, "is set by the gateway and cannot be configured")
		case strings.ContainsAny(v, "\r\n\x00"):
			errs.Add(path, "value must not contain line breaks")
		}
	}
	checkTemplate(errs, "template", a.Template)
	if a.ContentType != "" && strings.ContainsAny(a.ContentType, "\r\n") {
		errs.Add("content_type", "must not contain line breaks")
	}
}

func (a *ActionSpec) validateBitrix24(errs *validate.Errors, stage string) {
	if checkURL(errs, "webhook_url", a.WebhookURL) && !strings.Contains(a.WebhookURL, "/rest/") {
		errs.Add("webhook_url", "must be a Bitrix24 inbound webhook URL, like https://portal.bitrix24.com/rest/1/abc123/")
	}
	if a.EntityTypeID < 0 {
		errs.Add("entity_type_id", "must be positive")
	}
	switch a.Mode {
	case "", Bitrix24Update:
		if a.Code != "" || a.TargetType != "" {
			errs.Add("mode", "code and target_type need mode: trigger")
		}
		if a.EntityTypeID == 0 {
			errs.Add("entity_type_id", "required for mode update (1 lead, 2 deal, or a smart process type id)")
		}
		if a.Bitrix24Stage(stage) == "" {
			errs.Add("stage_map", "no Bitrix24 stage for stage %q (set stage_id, or add %s to stage_map)", stage, stage)
		}
	case Bitrix24Trigger:
		if a.StageID != "" || len(a.StageMap) > 0 {
			errs.Add("mode", "stage_id and stage_map need mode: update")
		}
		if a.Code == "" {
			errs.Add("code", "required for mode trigger (the code of the Bitrix24 webhook trigger)")
		}
		switch tt := a.Bitrix24TargetType(); {
		case tt == "":
			errs.Add("target_type", "required unless entity_type_id is 1 (LEAD) or 2 (DEAL)")
		case !targetType.MatchString(tt):
			errs.Add("target_type", "must be upper-case letters, digits and _, like DEAL, not %q", tt)
		}
	default:
		errs.Add("mode", "must be update or trigger, not %q", a.Mode)
	}
}

// checkURL reports a missing or non-http(s) URL; it returns whether u is
// fine.
func checkURL(errs *validate.Errors, path, u string) bool {
	if u == "" {
		errs.Add(path, "required")
		return false
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.Fragment != "" {
		errs.Add(path, "must be an absolute http or https URL without a fragment")
		return false
	}
	return true
}

func checkTemplate(errs *validate.Errors, path, text string) {
	if _, err := ParseTemplate(path, text); err != nil {
		errs.Add(path, "%v", err)
	}
}

// ParseTemplate parses a text/template of an action setting (webhook
// template, set_field value, set_responsible user). Templates see an
// ActionData and have these functions besides the built-in ones: json
// (the value as JSON), upper, lower, and default (default "x" .Value gives
// "x" when the value is empty).
func ParseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=zero").Funcs(templateFuncs).Parse(text)
}

var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	"default": func(def, v any) any {
		if v == nil || reflect.ValueOf(v).IsZero() {
			return def
		}
		return v
	},
}

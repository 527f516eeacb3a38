package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/validate"
)

// ActionSpec is one automation rule on a stage: it runs when an item
// enters the stage. The engine keeps the part every type shares; the
// type's own settings are Settings, of the type its ActionKind makes (the
// config loader decodes them from the same mapping, so the file stays
// flat). Settings marshal into the same JSON object; secrets never appear
// in JSON.
type ActionSpec struct {
	Type string `yaml:"type" json:"type"`
	Name string `yaml:"name" json:"name,omitempty"`
	// After delays the action; 0 runs it at once.
	After time.Duration `yaml:"after" json:"after,omitempty"`
	// SkipIfLeft (default true) drops a delayed action whose item has left
	// the stage (or left and entered it again) by the time it is due.
	SkipIfLeft *bool `yaml:"skip_if_left" json:"skip_if_left,omitempty"`
	// Timeout bounds one attempt of a type that takes it (ActionKind.Timeout:
	// webhook, bitrix24); 0 takes the actions section's timeout.
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// Settings are the type's own settings; nil for a type without any.
	// Decoding YAML keeps the mapping, and ValidatePipelines (or New)
	// decodes them from it into the type's ActionKind.NewSettings.
	Settings ActionSettings `yaml:"-" json:"-"`

	raw *yaml.Node // the action's mapping, when decoded from YAML
}

// genericKeys are the config keys of every action type.
var genericKeys = []string{"type", "name", "after", "skip_if_left", "timeout"}

// UnmarshalYAML decodes the generic part and keeps the mapping for the
// type's settings.
func (a *ActionSpec) UnmarshalYAML(n *yaml.Node) error {
	type generic ActionSpec // without the method
	var g generic
	if err := n.Decode(&g); err != nil {
		return err
	}
	*a = ActionSpec(g)
	a.raw = n
	return nil
}

// ActionSettings are the settings of one action type, a pointer to a
// struct whose yaml tags name its keys in the config file.
type ActionSettings interface {
	// Validate checks the settings of an action on stage; paths are
	// relative to the action.
	Validate(stage string) validate.Errors
}

// ActionKind describes one action type to the engine and the config
// loader. Package actions holds one per type (actions.Kinds); the engine
// knows only its built-in log (LogKind).
type ActionKind struct {
	// NewSettings returns empty settings for the type to decode into; nil
	// for a type without settings.
	NewSettings func() ActionSettings
	// Timeout says the type takes the timeout key (its attempts make
	// outbound calls); it also lengthens the lease (ActionPolicy).
	Timeout bool
}

// MaxActionTimeout bounds an action's timeout.
const MaxActionTimeout = 5 * time.Minute

// SkipsIfLeft reports whether a delayed action is dropped when its item
// left the stage meanwhile (skip_if_left, default true).
func (a *ActionSpec) SkipsIfLeft() bool { return a.SkipIfLeft == nil || *a.SkipIfLeft }

// MarshalJSON writes the generic part and the settings as one object.
func (a ActionSpec) MarshalJSON() ([]byte, error) {
	type generic ActionSpec // without the method
	b, err := json.Marshal(generic(a))
	if err != nil || a.Settings == nil {
		return b, err
	}
	s, err := json.Marshal(a.Settings)
	if err != nil {
		return nil, fmt.Errorf("action %s settings: %w", a.Type, err)
	}
	if s = bytes.TrimSpace(s); len(s) <= 2 || s[0] != '{' {
		return b, nil // no settings set
	}
	return append(append(b[:len(b)-1], ','), s[1:]...), nil
}

// SettingKeys lists the config keys of a type's settings (the yaml tags of
// the struct NewSettings makes).
func (k ActionKind) SettingKeys() []string {
	if k.NewSettings == nil {
		return nil
	}
	t := reflect.TypeOf(k.NewSettings())
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.IsExported() && name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// validate checks one action on stage; paths are relative to the action.
// Settings missing from a spec built in code are validated empty (and
// filled in), so required settings are reported.
func (a *ActionSpec) validate(stage string, kinds map[string]ActionKind) validate.Errors {
	var errs validate.Errors
	kind, ok := kinds[a.Type]
	switch {
	case a.Type == "":
		errs.Add("type", "required")
		return errs
	case !ok:
		errs.Add("type", "unknown action type %q", a.Type)
		return errs
	}
	if a.After < 0 {
		errs.Add("after", "must not be negative")
	}
	if a.Timeout != 0 && !kind.Timeout {
		errs.Add("timeout", "not a setting of %s actions", a.Type)
	}
	if a.Timeout < 0 || a.Timeout > MaxActionTimeout {
		errs.Add("timeout", "must be between 0 and %s", MaxActionTimeout)
	}
	own := kind.SettingKeys()
	for _, k := range yamlKeys(a.raw) {
		if !slices.Contains(genericKeys, k) && !slices.Contains(own, k) && settingOfAny(kinds, k) {
			errs.Add(k, "not a setting of %s actions", a.Type)
		}
	}
	if a.Settings == nil && kind.NewSettings != nil {
		s := kind.NewSettings()
		if a.raw != nil {
			if err := a.raw.Decode(s); err != nil {
				errs.Add("", "%v", err)
			}
		}
		a.Settings = s
	}
	a.raw = nil // decoded and checked
	if a.Settings != nil {
		errs = append(errs, a.Settings.Validate(stage)...)
	}
	return errs
}

// settingOfAny reports whether key is a setting of one of kinds (keys of
// none are the config loader's "unknown key").
func settingOfAny(kinds map[string]ActionKind, key string) bool {
	for _, k := range kinds {
		if slices.Contains(k.SettingKeys(), key) {
			return true
		}
	}
	return false
}

// yamlKeys lists the keys of the mapping n, those of merged mappings
// included.
func yamlKeys(n *yaml.Node) []string {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var keys []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag != "!!merge" && k.Value != "<<" {
			keys = append(keys, k.Value)
			continue
		}
		for v != nil && v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		if v != nil && v.Kind == yaml.SequenceNode {
			for _, m := range v.Content {
				keys = append(keys, yamlKeys(m)...)
			}
		} else {
			keys = append(keys, yamlKeys(v)...)
		}
	}
	return keys
}

// CheckURL reports a missing or non-http(s) URL at path; it returns
// whether u is fine. Action settings use it.
func CheckURL(errs *validate.Errors, path, u string) bool {
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

// CheckTemplate reports a template setting at path that does not parse.
func CheckTemplate(errs *validate.Errors, path, text string) {
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

// TemplateFuncs returns the functions of action templates (json, upper,
// lower, default), for templates of another engine such as html/template.
func TemplateFuncs() map[string]any { return maps.Clone(templateFuncs) }

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

package webhook

import (
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stagegate/stagegate/actions"
	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/stdwebhooks"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/validate"
)

// Defaults of the two kinds' config sections.
const (
	DefaultWebhookMaxBody = 1 << 20  // 1 MiB
	DefaultFormsMaxBody   = 64 << 10 // 64 KiB
	DefaultMaxFields      = 50
	DefaultHoneypot       = "website_url"
)

// Form kinds.
const (
	FormKindForm     = "form"
	FormKindCallback = "callback"
)

// The contact slots a form field can be mapped to, with the field name used
// when a form does not map the slot.
var (
	defaultFields = map[string]string{"email": "email", "phone": "phone", "name": "name"}
	slots         = []string{"email", "phone", "name"}
)

var (
	formIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// WebhookConfig is the section of a connector of type webhook.
type WebhookConfig struct {
	// Secret is the Standard Webhooks signing secret ("whsec_<base64>", or
	// any other string used as raw bytes).
	Secret string `yaml:"secret"`
	// Secrets lists further accepted secrets, for rotation.
	Secrets []string `yaml:"secrets"`
	// Tolerance is how far webhook-timestamp may be from our clock. Default 5m.
	Tolerance time.Duration `yaml:"tolerance"`
	// MaxBody is the largest accepted body in bytes. Default 1 MiB.
	MaxBody int64 `yaml:"max_body"`
	// DefaultRegion is used for phone numbers without a country code.
	// Default: the engine's default_region, else US.
	DefaultRegion string `yaml:"default_region"`
}

var _ connectors.Config = (*WebhookConfig)(nil)

// NewWebhookConfig returns a WebhookConfig with defaults set.
func NewWebhookConfig() *WebhookConfig {
	return &WebhookConfig{
		Tolerance: stdwebhooks.DefaultTolerance,
		MaxBody:   DefaultWebhookMaxBody,
	}
}

// AllSecrets returns Secret followed by Secrets, skipping an empty Secret.
func (c *WebhookConfig) AllSecrets() []string {
	var all []string
	if c.Secret != "" {
		all = append(all, c.Secret)
	}
	return append(all, c.Secrets...)
}

// Validate checks the section; paths are relative to it.
func (c *WebhookConfig) Validate() validate.Errors {
	var errs validate.Errors
	if c.Secret == "" && len(c.Secrets) == 0 {
		errs.Add("secret", "required (or secrets)")
	}
	if c.Secret != "" {
		if _, err := stdwebhooks.DecodeSecret(c.Secret); err != nil {
			errs.Add("secret", "%v", err)
		}
	}
	for i, s := range c.Secrets {
		if _, err := stdwebhooks.DecodeSecret(s); err != nil {
			errs.Add(validate.Index("secrets", i), "%v", err)
		}
	}
	if c.Tolerance < time.Second {
		errs.Add("tolerance", "must be at least 1s")
	}
	if c.MaxBody <= 0 {
		errs.Add("max_body", "must be positive")
	}
	checkRegion(&errs, c.DefaultRegion)
	return errs
}

// FormsConfig is the section of a connector of type forms.
type FormsConfig struct {
	// Forms lists the forms this connector accepts, at POST /{id}.
	Forms []FormConfig `yaml:"forms"`
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that
	// may post; "*" allows any. A request without Origin (server to server)
	// is always allowed; one with an Origin not listed is refused.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// Honeypot names a field that humans leave empty; a submission that fills
	// it is answered as a success and dropped. Empty disables the check.
	Honeypot string `yaml:"honeypot"`
	// MaxBody is the largest accepted body in bytes. Default 64 KiB.
	MaxBody int64 `yaml:"max_body"`
	// MaxFields is the most fields (file parts included) accepted. Default 50.
	MaxFields int `yaml:"max_fields"`
	// DefaultRegion is used for phone numbers without a country code.
	// Default: the engine's default_region, else US.
	DefaultRegion string `yaml:"default_region"`
}

var _ connectors.Config = (*FormsConfig)(nil)

// FormConfig is one form.
type FormConfig struct {
	// ID names the form in the URL, in Event.Channel and in trigger conditions.
	ID string `yaml:"id"`
	// Kind is form (default) or callback (a "call me back" request).
	Kind string `yaml:"kind"`
	// Fields maps a contact slot (email, phone, name) to the form's field
	// name; an unmapped slot uses the field of its own name.
	Fields map[string]string `yaml:"fields"`
	// Redirect is the thank-you page a browser is sent to (303) after a
	// submission. Empty: answer JSON.
	Redirect string `yaml:"redirect"`
	// Autoreply, when set, is a message sent to the email address of each
	// accepted submission: the keys of a send_email action (to defaults to
	// the submission's address). The engine queues it with the event
	// (EventActions), so it is sent once per submission event.
	Autoreply *actions.SendEmail `yaml:"autoreply"`
}

// AutoreplyName names a form's autoreply in its outbox entry and key.
const AutoreplyName = "autoreply"

// EventActions returns the autoreplies of the forms of connector name, for
// the engine (engine.Options.EventActions). The config loader and the
// gateway find it through this method.
func (c *FormsConfig) EventActions(name string) []engine.EventAction {
	var out []engine.EventAction
	for _, f := range c.Forms {
		if f.Autoreply == nil {
			continue
		}
		out = append(out, engine.EventAction{
			Connector: name, Type: normalize.FormSubmitted, Channel: f.ID, Name: AutoreplyName, NeedsEmail: true,
			Action: engine.ActionSpec{Type: "send_email", Name: "autoreply " + f.ID, Settings: f.Autoreply},
		})
	}
	return out
}

// NewFormsConfig returns a FormsConfig with defaults set.
func NewFormsConfig() *FormsConfig {
	return &FormsConfig{
		Honeypot:  DefaultHoneypot,
		MaxBody:   DefaultFormsMaxBody,
		MaxFields: DefaultMaxFields,
	}
}

// KindOrDefault returns the form's kind, FormKindForm when unset.
func (f FormConfig) KindOrDefault() string {
	if f.Kind == "" {
		return FormKindForm
	}
	return f.Kind
}

// Field returns the name of the field holding a contact slot.
func (f FormConfig) Field(slot string) string {
	if name := f.Fields[slot]; name != "" {
		return name
	}
	return defaultFields[slot]
}

// AutoreplyPaths returns the forms' autoreplies by their path in the
// section ("forms[0].autoreply"), for the config loader's checks of the
// smtp, tracking and save_to names.
func (c *FormsConfig) AutoreplyPaths() map[string]*actions.SendEmail {
	out := map[string]*actions.SendEmail{}
	for i, f := range c.Forms {
		if f.Autoreply != nil {
			out[validate.Join(validate.Index("forms", i), "autoreply")] = f.Autoreply
		}
	}
	return out
}

// Validate checks the section; paths are relative to it.
func (c *FormsConfig) Validate() validate.Errors {
	var errs validate.Errors
	if len(c.Forms) == 0 {
		errs.Add("forms", "at least one form is required")
	}
	seen := map[string]bool{}
	for i, f := range c.Forms {
		p := validate.Index("forms", i)
		switch {
		case f.ID == "":
			errs.Add(validate.Join(p, "id"), "required")
		case !formIDPattern.MatchString(f.ID):
			errs.Add(validate.Join(p, "id"), "must be 1 to 64 letters, digits, _ or -")
		case seen[f.ID]:
			errs.Add(validate.Join(p, "id"), "duplicate form id %q", f.ID)
		}
		seen[f.ID] = true
		if k := f.KindOrDefault(); k != FormKindForm && k != FormKindCallback {
			errs.Add(validate.Join(p, "kind"), "must be form or callback, not %q", f.Kind)
		}
		for _, slot := range slices.Sorted(maps.Keys(f.Fields)) {
			fp := validate.Join(p, "fields."+slot)
			if _, ok := defaultFields[slot]; !ok {
				errs.Add(fp, "unknown slot; use email, phone or name")
			} else if f.Fields[slot] == "" {
				errs.Add(fp, "field name required")
			}
		}
		for _, slot := range slots {
			if c.Honeypot != "" && f.Field(slot) == c.Honeypot {
				errs.Add(validate.Join(p, "fields."+slot), "is the honeypot field %q", c.Honeypot)
			}
		}
		if f.Autoreply != nil {
			errs.Merge(validate.Join(p, "autoreply"), f.Autoreply.Validate(""))
		}
		if f.Redirect != "" {
			if u, err := url.Parse(f.Redirect); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs.Add(validate.Join(p, "redirect"), "must be an absolute http(s) URL")
			}
		}
	}
	for i, o := range c.AllowedOrigins {
		if o != "*" && !validOrigin(o) {
			errs.Add(validate.Index("allowed_origins", i), "must be scheme://host[:port] without a path, or *")
		}
	}
	if c.MaxBody <= 0 {
		errs.Add("max_body", "must be positive")
	}
	if c.MaxFields <= 0 {
		errs.Add("max_fields", "must be positive")
	}
	checkRegion(&errs, c.DefaultRegion)
	return errs
}

// validOrigin reports whether o is a web origin such as https://www.example.com.
func validOrigin(o string) bool {
	u, err := url.Parse(strings.TrimSuffix(o, "/"))
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}

func checkRegion(errs *validate.Errors, region string) {
	if region != "" && !normalize.ValidRegion(region) {
		errs.Add("default_region", "must be a two-letter region code such as US")
	}
}

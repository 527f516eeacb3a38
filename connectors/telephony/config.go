package telephony

import (
	"net/url"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/stdwebhooks"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/validate"
)

// Providers.
const (
	ProviderTwilio  = "twilio"
	ProviderGeneric = "generic"
)

// Defaults of the config section.
const (
	DefaultMaxBody   = 64 << 10 // Twilio callbacks are about 1 KiB
	DefaultSettle    = 10 * time.Second
	DefaultRetention = 30 * 24 * time.Hour
	// MaxSettle bounds settle: a missed call is news only while it is fresh.
	MaxSettle = 10 * time.Minute
)

// Config is the section of a connector of type telephony.
type Config struct {
	// Provider is twilio or generic.
	Provider string `yaml:"provider"`
	// AuthToken is the Twilio account's auth token (write "${ENV}");
	// AuthTokens lists more accepted tokens while rotating.
	AuthToken  string   `yaml:"auth_token"`
	AuthTokens []string `yaml:"auth_tokens"`
	// SignatureURL is the URL configured at Twilio for this connector, when
	// it is not public_url + "/in/<name>" (another host name, a path added
	// by a proxy). A sub-path and the query are appended as received.
	SignatureURL string `yaml:"signature_url"`
	// Secret (generic) is the Standard Webhooks signing secret; Secrets
	// lists more accepted secrets while rotating.
	Secret  string   `yaml:"secret"`
	Secrets []string `yaml:"secrets"`
	// Tolerance (generic) is how far webhook-timestamp may be from our
	// clock. Default 5m.
	Tolerance time.Duration `yaml:"tolerance"`
	// DefaultRegion is used for numbers without a country code. Default:
	// the engine's default_region, else US.
	DefaultRegion string `yaml:"default_region"`
	// VoicemailIsMissed: an inbound call answered only by a voicemail box
	// (or a fax) is missed. Default true.
	VoicemailIsMissed bool `yaml:"voicemail_is_missed"`
	// Settle is how long the missed decision waits after the call's final
	// status for late callbacks of its legs. Default 10s; 0 decides at once.
	Settle time.Duration `yaml:"settle"`
	// Retention is how long a call's state and callbacks are kept after its
	// last callback. Default 720h.
	Retention time.Duration `yaml:"retention"`
	// MaxBody is the largest accepted body in bytes. Default 64 KiB.
	MaxBody int64 `yaml:"max_body"`
	// OwnNumbers are our lines. They tell a call's direction when the
	// provider does not, and are never taken for a customer.
	OwnNumbers []string `yaml:"own_numbers"`
	// AgentNumbers are employees' phones (mobiles a call is forwarded to,
	// the agent leg of a click-to-call): never taken for a customer.
	AgentNumbers []string `yaml:"agent_numbers"`
}

var _ connectors.Config = (*Config)(nil)

// NewConfig returns a Config with defaults set.
func NewConfig() *Config {
	return &Config{
		Tolerance:         stdwebhooks.DefaultTolerance,
		VoicemailIsMissed: true,
		Settle:            DefaultSettle,
		Retention:         DefaultRetention,
		MaxBody:           DefaultMaxBody,
	}
}

// tokens returns AuthToken followed by AuthTokens, skipping an empty AuthToken.
func (c *Config) tokens() []string {
	var all []string
	if c.AuthToken != "" {
		all = append(all, c.AuthToken)
	}
	return append(all, c.AuthTokens...)
}

// secrets returns Secret followed by Secrets, skipping an empty Secret.
func (c *Config) secrets() []string {
	var all []string
	if c.Secret != "" {
		all = append(all, c.Secret)
	}
	return append(all, c.Secrets...)
}

// Validate checks the section; paths are relative to it.
func (c *Config) Validate() validate.Errors {
	var errs validate.Errors
	switch c.Provider {
	case ProviderTwilio:
		c.validateTwilio(&errs)
	case ProviderGeneric:
		c.validateGeneric(&errs)
	case "":
		errs.Add("provider", "required: twilio or generic")
	default:
		errs.Add("provider", "must be twilio or generic, not %q", c.Provider)
	}
	if c.DefaultRegion != "" && !normalize.ValidRegion(c.DefaultRegion) {
		errs.Add("default_region", "must be a two-letter region code such as US")
	}
	if c.Settle < 0 || c.Settle > MaxSettle {
		errs.Add("settle", "must be from 0s to %s", MaxSettle)
	}
	if c.Retention < time.Hour {
		errs.Add("retention", "must be at least 1h")
	}
	if c.MaxBody <= 0 {
		errs.Add("max_body", "must be positive")
	}
	region := normalize.Region(c.DefaultRegion, "")
	for _, list := range []struct {
		key  string
		nums []string
	}{{"own_numbers", c.OwnNumbers}, {"agent_numbers", c.AgentNumbers}} {
		for i, n := range list.nums {
			if _, err := normalize.NormalizePhone(n, region); err != nil {
				errs.Add(validate.Index(list.key, i), "not a phone number: %q", n)
			}
		}
	}
	return errs
}

func (c *Config) validateTwilio(errs *validate.Errors) {
	if len(c.tokens()) == 0 {
		errs.Add("auth_token", "required for provider twilio")
	}
	for i, t := range c.AuthTokens {
		if t == "" {
			errs.Add(validate.Index("auth_tokens", i), "empty token")
		}
	}
	if c.SignatureURL != "" {
		u, err := url.Parse(c.SignatureURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs.Add("signature_url", "must be an absolute http or https URL")
		case u.RawQuery != "" || u.Fragment != "":
			errs.Add("signature_url", "must have no query or fragment (the request's query is appended)")
		}
	}
	if c.Secret != "" || len(c.Secrets) > 0 {
		errs.Add("secret", "is for provider generic; Twilio signs with auth_token")
	}
}

func (c *Config) validateGeneric(errs *validate.Errors) {
	if len(c.secrets()) == 0 {
		errs.Add("secret", "required for provider generic (or secrets)")
	} else if _, err := stdwebhooks.NewVerifier(c.secrets(), c.Tolerance, nil); err != nil {
		errs.Add("secret", "%v", err)
	}
	if c.Tolerance < time.Second {
		errs.Add("tolerance", "must be at least 1s")
	}
	if len(c.tokens()) > 0 {
		errs.Add("auth_token", "is for provider twilio; generic callbacks are signed with secret")
	}
	if c.SignatureURL != "" {
		errs.Add("signature_url", "is for provider twilio")
	}
}

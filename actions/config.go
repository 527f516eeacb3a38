// Package actions runs the automation rules of stages (architecture §3 rule 6):
// signed outbound webhooks, a Bitrix24 mirror, changes to the item
// (set_field, set_responsible) and mail to the customer over SMTP
// (send_email, through github.com/emersion/go-smtp), besides the engine's
// own log action. The
// engine records every action in the store's outbox atomically with the
// move that caused it and runs it from there at least once; this package
// performs one attempt at a time and tells the engine whether a failure is
// worth retrying.
//
// Outbound HTTP goes through github.com/go-resty/resty/v2 on a transport
// that refuses, at dial time, loopback, private, link-local and other
// special addresses (code.dny.dev/ssrf in the dialer's Control, after DNS
// resolution, so a name that resolves or rebinds to such an address is
// refused too), unless the config allows them. Redirects are never
// followed.
package actions

import (
	"net/netip"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/validate"
)

// Config is the actions section of the config file: the engine's dispatch
// policy (timeout, max_attempts, backoff, workers, max_chain_depth, lease,
// poll; its defaults and checks live in engine.ActionPolicy) and the
// settings of outbound HTTP.
type Config struct {
	engine.ActionPolicy `yaml:",inline"`
	// AllowPrivate lets actions reach loopback, private and other special
	// addresses: for development and tests only.
	AllowPrivate bool `yaml:"allow_private"`
	// AllowNetworks are prefixes (CIDR) reachable even though they are
	// special, such as an internal CRM's subnet.
	AllowNetworks []string `yaml:"allow_networks"`
	// UserAgent is sent with every request. Default "stagegate".
	UserAgent string `yaml:"user_agent"`
}

// DefaultUserAgent is the User-Agent of outbound requests.
const DefaultUserAgent = "stagegate"

// SetDefaults fills empty fields.
func (c *Config) SetDefaults() {
	c.ActionPolicy.SetDefaults()
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
}

// Validate checks the section; paths are relative to it.
func (c *Config) Validate() validate.Errors {
	errs := c.ActionPolicy.Validate()
	for i, n := range c.AllowNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			errs.Add(validate.Index("allow_networks", i), "must be a prefix such as 10.1.2.0/24, not %q", n)
		}
	}
	return errs
}

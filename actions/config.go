// Package actions runs the automation rules of stages (DESIGN §3 rule 6):
// signed outbound webhooks, a Bitrix24 mirror, and changes to the item
// (set_field, set_responsible), besides the engine's own log action. The
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
	"time"

	"github.com/stagegate/stagegate/validate"
)

// Config is the actions section of the config file.
type Config struct {
	// AllowPrivate lets actions reach loopback, private and other special
	// addresses: for development and tests only.
	AllowPrivate bool `yaml:"allow_private"`
	// AllowNetworks are prefixes (CIDR) reachable even though they are
	// special, such as an internal CRM's subnet.
	AllowNetworks []string `yaml:"allow_networks"`
	// Timeout bounds one HTTP attempt (an action's own timeout overrides
	// it). Default 15s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts bounds the attempts of one action; then it is failed and
	// waits for POST /api/v1/actions/{id}/retry. Default 10.
	MaxAttempts int `yaml:"max_attempts"`
	// BackoffMin and BackoffMax bound the delay between attempts, which
	// doubles with each attempt and is jittered. Defaults 1s and 10m.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// Workers is how many actions run at once. Default 64.
	Workers int `yaml:"workers"`
	// MaxChainDepth bounds chains of moves caused by actions. Default 5.
	MaxChainDepth int `yaml:"max_chain_depth"`
	// Lease is how long a worker holds an action before another may take
	// it over (after a crash). Default: the longest timeout plus 30s.
	Lease time.Duration `yaml:"lease"`
	// Poll is the longest pause between looks at the outbox for due
	// actions (delays, retries, other processes' moves). Default 1s.
	Poll time.Duration `yaml:"poll"`
	// UserAgent is sent with every request. Default "stagegate".
	UserAgent string `yaml:"user_agent"`
}

// Defaults of the section.
const (
	DefaultTimeout       = 15 * time.Second
	DefaultMaxAttempts   = 10
	DefaultBackoffMin    = time.Second
	DefaultBackoffMax    = 10 * time.Minute
	DefaultWorkers       = 64
	DefaultMaxChainDepth = 5
	DefaultPoll          = time.Second
	DefaultUserAgent     = "stagegate"
	leaseMargin          = 30 * time.Second
)

// SetDefaults fills empty fields.
func (c *Config) SetDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Timeout, DefaultTimeout)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.Poll, DefaultPoll)
	def(&c.Lease, c.Timeout+leaseMargin)
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.MaxChainDepth == 0 {
		c.MaxChainDepth = DefaultMaxChainDepth
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
}

// Validate checks the section; paths are relative to it.
func (c *Config) Validate() validate.Errors {
	var errs validate.Errors
	if c.Timeout < 10*time.Millisecond || c.Timeout > 5*time.Minute {
		errs.Add("timeout", "must be between 10ms and 5m")
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 100 {
		errs.Add("max_attempts", "must be from 1 to 100")
	}
	if c.BackoffMin < time.Millisecond {
		errs.Add("backoff_min", "must be at least 1ms")
	}
	if c.BackoffMax < c.BackoffMin {
		errs.Add("backoff_max", "must not be less than backoff_min")
	}
	if c.Workers < 1 || c.Workers > 4096 {
		errs.Add("workers", "must be from 1 to 4096")
	}
	if c.MaxChainDepth < 1 || c.MaxChainDepth > 100 {
		errs.Add("max_chain_depth", "must be from 1 to 100")
	}
	if c.Lease <= c.Timeout {
		errs.Add("lease", "must be longer than timeout (%s)", c.Timeout)
	}
	if c.Poll < time.Millisecond || c.Poll > time.Minute {
		errs.Add("poll", "must be between 1ms and 1m")
	}
	for i, n := range c.AllowNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			errs.Add(validate.Index("allow_networks", i), "must be a prefix such as 10.1.2.0/24, not %q", n)
		}
	}
	return errs
}

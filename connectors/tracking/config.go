package tracking

import (
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/connectors/tracking/botscore"
	"github.com/stagegate/stagegate/validate"
)

// Defaults of the tracking section.
const (
	defaultRetention    = 180 * 24 * time.Hour
	defaultMaxLinks     = 200
	DefaultMaxBody      = 2 << 20 // 2 MiB of JSON for POST /api/v1/messages
	defaultMaxHits      = 1000
	maxPendingHits      = 1 << 16
	defaultStoreTimeout = 2 * time.Second
	defaultCacheSize    = 10000
	defaultThreshold    = 50
	defaultQuick        = 10 * time.Second
	defaultBurstWindow  = 10 * time.Second
	defaultReturnGap    = 30 * time.Minute
	minKeyLength        = 16 // bytes of a signing key
)

var domainPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`)

// Config is the section of a connector of type tracking. A gateway serves
// the /t/… routes and the /api/v1/messages API of one tracking connector
// only: configure at most one.
type Config struct {
	// Keys sign and verify tracking tokens: the first signs, all verify, so
	// a new key is added first and the old one removed once its links are
	// no longer clicked. At least 16 bytes each; use ${ENV}.
	Keys []string `yaml:"keys"`
	// Retention is how long tracked messages, their links and hits are
	// kept. Default 180 days.
	Retention time.Duration `yaml:"retention"`
	// MessageIDDomain is the right-hand side of generated Message-IDs.
	// Default: the domain of the message's From address.
	MessageIDDomain string `yaml:"message_id_domain"`
	// MaxLinks bounds the tracked links of one message. Default 200.
	MaxLinks int `yaml:"max_links"`
	// MaxBody bounds the JSON body of POST /api/v1/messages. Default 2 MiB.
	MaxBody int64 `yaml:"max_body"`
	// MaxHits bounds the hits stored per message (statistics); hits over it
	// are still scored and still fire events. Default 1000.
	MaxHits int `yaml:"max_hits"`
	// PendingHits is how many pixel and click hits may be answered before
	// they are stored (scored, written and their events submitted in the
	// background, in groups). A crash can lose at most this many hits and
	// the events they would make; a graceful stop loses none. When that
	// many are pending, the next hit is stored before its answer. Default
	// 0: every hit is stored before its answer.
	PendingHits int `yaml:"pending_hits"`
	// StoreTimeout bounds each store call of the pixel and click paths.
	// Default 2s.
	StoreTimeout time.Duration `yaml:"store_timeout"`
	// CacheSize is how many messages (links, recent hits) are kept in
	// memory; link destinations stay known through a store outage. Default 10000.
	CacheSize int `yaml:"cache_size"`
	// ClientIPHeader names a header set by a trusted reverse proxy that
	// carries the client address (X-Forwarded-For: its first entry). Empty:
	// the TCP peer address.
	ClientIPHeader string `yaml:"client_ip_header"`
	// Scoring tunes the human/machine score.
	Scoring Scoring `yaml:"scoring"`
	// Site configures site visit tracking (GET /t/v.js, POST /t/v).
	Site Site `yaml:"site"`

	// sharedKeys: Keys came from secrets.tracking_keys (UseSecrets), where
	// the config loader checks them; Validate does not report them again
	// at a path the file does not set.
	sharedKeys bool
}

// Scoring tunes how hits are scored.
type Scoring struct {
	// Threshold is the score from which a hit is machine-made. Default 50.
	Threshold int `yaml:"threshold"`
	// Quick: a hit this soon after the message was sent (or prepared, when
	// no send was recorded) is suspect. Default 10s.
	Quick time.Duration `yaml:"quick"`
	// BurstWindow: clicks on several links of one message within this
	// window are machine-made. Default 10s.
	BurstWindow time.Duration `yaml:"burst_window"`
	// Agents adds user-agent rules to the built-in list, one rule a string
	// in the list's format: "<weight> <name> <exact|prefix|contains> <pattern>".
	Agents []string `yaml:"agents"`
}

// Site configures the site visit tracker.
type Site struct {
	// Enabled serves GET /t/v.js and POST /t/v. Default false.
	Enabled bool `yaml:"enabled"`
	// AllowedOrigins lists the site origins (scheme://host[:port]) whose
	// pages may report visits; "*" allows any. Required when enabled.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// ReturnGap is the pause after which a known visitor's page view is a
	// return (site.return). Default 30m.
	ReturnGap time.Duration `yaml:"return_gap"`
	// LinkDomains lists the hosts (and their subdomains) of your site: a
	// click redirect to one of them carries sg_t=<token>, which the site
	// script reports, tying the visitor to the email's item.
	LinkDomains []string `yaml:"link_domains"`
	// Identify lets the site script report the email field of a form the
	// visitor submits, making the visitor known. Default true.
	Identify bool `yaml:"identify"`
}

var _ connectors.SecretsUser = (*Config)(nil)

// NewConfig returns a Config with defaults set.
func NewConfig() *Config {
	return &Config{
		Retention:    defaultRetention,
		MaxLinks:     defaultMaxLinks,
		MaxBody:      DefaultMaxBody,
		MaxHits:      defaultMaxHits,
		StoreTimeout: defaultStoreTimeout,
		CacheSize:    defaultCacheSize,
		Scoring:      Scoring{Threshold: defaultThreshold, Quick: defaultQuick, BurstWindow: defaultBurstWindow},
		Site:         Site{ReturnGap: defaultReturnGap, Identify: true},
	}
}

// UseSecrets implements connectors.SecretsUser: without keys of its own,
// the connector signs with the config file's secrets.tracking_keys.
func (c *Config) UseSecrets(s connectors.SharedSecrets) {
	if len(c.Keys) == 0 {
		c.Keys = append([]string(nil), s.TrackingKeys...)
		c.sharedKeys = len(c.Keys) > 0
	}
}

// Validate checks the section; paths are relative to it.
func (c *Config) Validate() validate.Errors {
	var errs validate.Errors
	if len(c.Keys) == 0 {
		errs.Add("keys", "at least one signing key is required (here or in secrets.tracking_keys)")
	}
	// Keys taken from secrets.tracking_keys are checked there, where the
	// file sets them: once, at their own path.
	for i, k := range c.Keys {
		if !c.sharedKeys && len(k) < minKeyLength {
			errs.Add(validate.Index("keys", i), "must be at least %d bytes", minKeyLength)
		}
	}
	if c.Retention < time.Hour {
		errs.Add("retention", "must be at least 1h")
	}
	if c.MessageIDDomain != "" && !domainPattern.MatchString(c.MessageIDDomain) {
		errs.Add("message_id_domain", "must be a domain name such as mail.example.com")
	}
	positive := []struct {
		path string
		v    int64
	}{{"max_links", int64(c.MaxLinks)}, {"max_body", c.MaxBody}, {"max_hits", int64(c.MaxHits)}, {"cache_size", int64(c.CacheSize)}}
	for _, p := range positive {
		if p.v <= 0 {
			errs.Add(p.path, "must be positive")
		}
	}
	if c.PendingHits < 0 || c.PendingHits > maxPendingHits {
		errs.Add("pending_hits", "must be between 0 (every hit stored before its answer) and %d", maxPendingHits)
	}
	if c.StoreTimeout < time.Millisecond {
		errs.Add("store_timeout", "must be at least 1ms")
	}
	if c.ClientIPHeader != "" && strings.ContainsAny(c.ClientIPHeader, " :\t") {
		errs.Add("client_ip_header", "must be a header name")
	}
	errs.Merge("scoring", c.Scoring.validate())
	errs.Merge("site", c.Site.validate())
	return errs
}

func (s *Scoring) validate() validate.Errors {
	var errs validate.Errors
	if s.Threshold < 1 || s.Threshold > 100 {
		errs.Add("threshold", "must be between 1 and 100")
	}
	if s.Quick < 0 {
		errs.Add("quick", "must not be negative")
	}
	if s.BurstWindow < 0 {
		errs.Add("burst_window", "must not be negative")
	}
	for i, line := range s.Agents {
		if err := botscore.CheckAgentRule(line); err != nil {
			errs.Add(validate.Index("agents", i), "%v", err)
		}
	}
	return errs
}

func (s *Site) validate() validate.Errors {
	var errs validate.Errors
	if s.Enabled && len(s.AllowedOrigins) == 0 {
		errs.Add("allowed_origins", "required when site tracking is enabled (your site's origin, or *)")
	}
	for i, o := range s.AllowedOrigins {
		if o != "*" && !validOrigin(o) {
			errs.Add(validate.Index("allowed_origins", i), "must be scheme://host[:port] without a path, or *")
		}
	}
	if s.ReturnGap < time.Minute {
		errs.Add("return_gap", "must be at least 1m")
	}
	for i, d := range s.LinkDomains {
		if !domainPattern.MatchString(d) {
			errs.Add(validate.Index("link_domains", i), "must be a domain name such as www.example.com")
		}
	}
	return errs
}

// validOrigin reports whether o is a web origin such as https://www.example.com.
func validOrigin(o string) bool {
	u, err := url.Parse(strings.TrimSuffix(o, "/"))
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}

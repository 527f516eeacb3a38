package store

import (
	"time"

	"github.com/stagegate/stagegate/validate"
)

// Config is the store section of the config file.
type Config struct {
	Driver string `yaml:"driver"` // bolt (default) | redis
	// Path is the bolt database file.
	Path string `yaml:"path"`
	// URL is the Redis URL (redis://host:port/db or rediss://…).
	URL string `yaml:"url"`
	// Prefix is put before every Redis key, so several gateways can share one Redis.
	Prefix string `yaml:"prefix"`
	// DedupWindow is how long an event id is remembered; the same id within
	// the window is a duplicate. Default 720h (30 days).
	DedupWindow time.Duration `yaml:"dedup_window"`
	// ClaimAfter is how long a Redis log entry may stay unacknowledged by a
	// consumer before another consumer takes it over. Default 30s.
	ClaimAfter time.Duration `yaml:"claim_after"`
	// FailFast makes start-up fail (the process exits 1) when Redis cannot
	// be reached, instead of serving with /readyz failing and waiting for
	// it. Default false. A bolt file that cannot be opened always fails.
	FailFast bool `yaml:"fail_fast"`
}

// Defaults used when a field is left empty.
const (
	DefaultDriver      = "bolt"
	DefaultPath        = "data/stagegate.db"
	DefaultPrefix      = "sg"
	DefaultDedupWindow = 30 * 24 * time.Hour
	DefaultClaimAfter  = 30 * time.Second
)

// SetDefaults fills empty fields.
func (c *Config) SetDefaults() {
	if c.Driver == "" {
		c.Driver = DefaultDriver
	}
	if c.Driver == "bolt" && c.Path == "" {
		c.Path = DefaultPath
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.ClaimAfter == 0 {
		c.ClaimAfter = DefaultClaimAfter
	}
}

// Validate checks the section; paths are relative to it.
func (c *Config) Validate() validate.Errors {
	var errs validate.Errors
	switch c.Driver {
	case "bolt":
		if c.Path == "" {
			errs.Add("path", "required for driver bolt")
		}
	case "redis":
		if c.URL == "" {
			errs.Add("url", "required for driver redis")
		}
	default:
		errs.Add("driver", "must be bolt or redis, not %q", c.Driver)
	}
	if c.DedupWindow < time.Minute {
		errs.Add("dedup_window", "must be at least 1m")
	}
	if c.ClaimAfter < time.Second {
		errs.Add("claim_after", "must be at least 1s")
	}
	return errs
}

package imap

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/validate"
)

// TLS modes.
const (
	TLSImplicit = "tls"      // TLS from the first byte (port 993)
	TLSStart    = "starttls" // plain connection upgraded with STARTTLS (port 143)
	TLSNone     = "none"     // no encryption: loopback (tests) unless allow_plaintext
)

// Modes of waiting for new mail.
const (
	ModeAuto = "auto" // IDLE when the server announces it, else poll
	ModePoll = "poll" // always poll, even when IDLE is available
)

// Special values of folders.sent.
const (
	SentAuto = "auto" // the folder with the \Sent special-use attribute, if any
	SentNone = "none" // do not watch a sent folder
)

// StartNow is the default start: only mail arriving from now on.
const StartNow = "now"

// Defaults of the config section.
const (
	DefaultIncoming        = "INBOX"
	DefaultMaxMessageBytes = 10 << 20 // 10 MiB read of each mail
	DefaultBatchSize       = 1000
	DefaultPollInterval    = 30 * time.Second
	DefaultIdleRefresh     = 4 * time.Minute // IDLE is restarted (and the link proven) this often
	DefaultCommandTimeout  = 60 * time.Second
	DefaultReconnectMin    = time.Second
	DefaultReconnectMax    = 5 * time.Minute
	DefaultRescanWindow    = 30 * 24 * time.Hour // the store's default dedup window
	DefaultExcerptChars    = 1000

	// maxIdleRefresh keeps IDLE below the 30 minutes after which RFC 2177
	// lets a server drop an idle client.
	maxIdleRefresh = 29 * time.Minute
)

// Config is the section of a connector of type imap: one mail account.
type Config struct {
	// Host and Port of the IMAP server. Port defaults to 993 (tls) or 143.
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// TLS is tls (implicit, default), starttls or none.
	TLS string `yaml:"tls"`
	// InsecureSkipVerify accepts any server certificate (self-signed test
	// servers). Never in production.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// AllowPlaintext allows tls: none with a host that is not loopback.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// Username and Password log in (LOGIN); write the password as ${ENV}.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Folders says which folders are watched.
	Folders Folders `yaml:"folders"`
	// Start is now (default: only mail arriving from now on) or a backfill
	// window such as 7d or 36h, used the first time a folder is seen.
	Start string `yaml:"start"`
	// OwnAddresses are our mailboxes (sales@acme.test) and domains
	// (acme.test or @acme.test, subdomains included). Mail from them is
	// never taken for a customer's. The username counts when it is an address.
	OwnAddresses []string `yaml:"own_addresses"`
	// AcceptLists makes mail carrying List-Id or List-Unsubscribe customer
	// mail. Default false: such mail is recorded but fires no trigger.
	AcceptLists bool `yaml:"accept_lists"`
	// MaxMessageBytes is how much of each mail is fetched and parsed; the
	// rest is not downloaded and the event notes the truncation.
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// BatchSize is how many mails one FETCH asks for (default 1000); the
	// cursor follows every 100 mails of the stream.
	BatchSize int `yaml:"batch_size"`
	// Mode is auto (IDLE when supported, default) or poll.
	Mode string `yaml:"mode"`
	// PollInterval is the wait between two polls without IDLE. Default 30s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// IdleRefresh is how long one IDLE lasts before it is restarted, which
	// also proves the connection alive. Default 4m, at most 29m.
	IdleRefresh time.Duration `yaml:"idle_refresh"`
	// CommandTimeout bounds the wait for a server answer (for FETCH: for
	// the next mail). A silent server is disconnected. Default 60s.
	CommandTimeout time.Duration `yaml:"command_timeout"`
	// ReconnectMin and ReconnectMax bound the exponential backoff (with
	// jitter) between reconnection attempts. Defaults 1s and 5m.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// RescanWindow bounds a rescan after a UIDVALIDITY change: mail dated
	// earlier is not considered. Keep it within the store's dedup window.
	RescanWindow time.Duration `yaml:"rescan_window"`
	// Lease makes one gateway at a time watch each folder when several
	// share a store (Redis). Default true; a store one process owns (bolt)
	// never leases.
	Lease *bool `yaml:"lease"`
}

// Folders names the watched folders.
type Folders struct {
	// Incoming folders give email.incoming. Default [INBOX]; a single
	// name or a list.
	Incoming StringList `yaml:"incoming"`
	// Sent gives email.sent: a folder name, auto (default: the folder with
	// the \Sent special-use attribute, if any) or none.
	Sent string `yaml:"sent"`
}

// StringList is a list of strings that YAML may also give as one string.
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = StringList{n.Value}
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("must be a folder name or a list of them")
	}
	*l = s
	return nil
}

var _ connectors.Config = (*Config)(nil)

// NewConfig returns a Config with defaults set.
func NewConfig() *Config {
	return &Config{
		TLS:             TLSImplicit,
		Folders:         Folders{Incoming: StringList{DefaultIncoming}, Sent: SentAuto},
		Start:           StartNow,
		MaxMessageBytes: DefaultMaxMessageBytes,
		BatchSize:       DefaultBatchSize,
		Mode:            ModeAuto,
		PollInterval:    DefaultPollInterval,
		IdleRefresh:     DefaultIdleRefresh,
		CommandTimeout:  DefaultCommandTimeout,
		ReconnectMin:    DefaultReconnectMin,
		ReconnectMax:    DefaultReconnectMax,
		RescanWindow:    DefaultRescanWindow,
	}
}

// Addr returns host:port, with the TLS mode's default port when unset.
func (c *Config) Addr() string {
	port := c.Port
	if port == 0 {
		port = 143
		if c.TLS == TLSImplicit {
			port = 993
		}
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(port))
}

// LeaseEnabled reports whether folders are leased (default true).
func (c *Config) LeaseEnabled() bool { return c.Lease == nil || *c.Lease }

// SentFolder returns the configured sent folder: a name, SentAuto or SentNone.
func (c *Config) SentFolder() string {
	switch s := strings.TrimSpace(c.Folders.Sent); {
	case s == "" || strings.EqualFold(s, SentAuto):
		return SentAuto
	case strings.EqualFold(s, SentNone):
		return SentNone
	default:
		return s
	}
}

// Backfill returns the backfill window of Start (0 for now).
func (c *Config) Backfill() (time.Duration, error) { return parseStart(c.Start) }

// parseStart reads now, Nd (days) or a Go duration such as 36h.
func parseStart(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == StartNow {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 3650 {
			return 0, fmt.Errorf("must be now or a window such as 7d or 36h, not %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("must be now or a window such as 7d or 36h, not %q", s)
	}
	return d, nil
}

// Validate checks the section; paths are relative to it.
func (c *Config) Validate() validate.Errors {
	var errs validate.Errors
	if c.Host == "" {
		errs.Add("host", "required")
	}
	if c.Port < 0 || c.Port > 65535 {
		errs.Add("port", "must be 1 to 65535")
	}
	switch c.TLS {
	case TLSImplicit, TLSStart:
	case TLSNone:
		if c.Host != "" && !isLoopback(c.Host) && !c.AllowPlaintext {
			errs.Add("tls", "none sends the password in clear; only for a loopback host unless allow_plaintext is true")
		}
	default:
		errs.Add("tls", "must be tls, starttls or none, not %q", c.TLS)
	}
	if c.Username == "" {
		errs.Add("username", "required")
	}
	if c.Password == "" {
		errs.Add("password", "required (write it as ${ENV_VAR})")
	}
	c.validateFolders(&errs)
	if _, err := parseStart(c.Start); err != nil {
		errs.Add("start", "%v", err)
	}
	for i, a := range c.OwnAddresses {
		if _, err := parseOwn(a); err != nil {
			errs.Add(validate.Index("own_addresses", i), "%v", err)
		}
	}
	if c.MaxMessageBytes < 64<<10 {
		errs.Add("max_message_bytes", "must be at least 65536")
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs.Add("batch_size", "must be 1 to 10000")
	}
	if c.Mode != ModeAuto && c.Mode != ModePoll {
		errs.Add("mode", "must be auto or poll, not %q", c.Mode)
	}
	checkDuration(&errs, "poll_interval", c.PollInterval, 10*time.Millisecond, time.Hour)
	checkDuration(&errs, "idle_refresh", c.IdleRefresh, 10*time.Millisecond, maxIdleRefresh)
	checkDuration(&errs, "command_timeout", c.CommandTimeout, 100*time.Millisecond, time.Hour)
	checkDuration(&errs, "reconnect_min", c.ReconnectMin, time.Millisecond, time.Hour)
	checkDuration(&errs, "reconnect_max", c.ReconnectMax, c.ReconnectMin, 24*time.Hour)
	if c.RescanWindow < time.Hour {
		errs.Add("rescan_window", "must be at least 1h")
	}
	return errs
}

func (c *Config) validateFolders(errs *validate.Errors) {
	if len(c.Folders.Incoming) == 0 {
		errs.Add("folders.incoming", "at least one folder is required")
	}
	seen := map[string]bool{}
	for i, f := range c.Folders.Incoming {
		switch {
		case strings.TrimSpace(f) == "":
			errs.Add(validate.Index("folders.incoming", i), "empty folder name")
		case seen[f]:
			errs.Add(validate.Index("folders.incoming", i), "folder %q listed twice", f)
		}
		seen[f] = true
	}
	if s := c.SentFolder(); seen[s] {
		errs.Add("folders.sent", "folder %q is also an incoming folder", s)
	}
}

func checkDuration(errs *validate.Errors, path string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		errs.Add(path, "must be between %v and %v", lo, hi)
	}
}

// isLoopback reports whether host is localhost or a loopback IP.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

package actions

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/netx"
	"github.com/stagegate/stagegate/validate"
)

// SMTP TLS modes.
const (
	SMTPStartTLS = "starttls" // plain connection upgraded with STARTTLS (port 587, the default)
	SMTPImplicit = "implicit" // TLS from the first byte (port 465)
	SMTPNone     = "none"     // no encryption: loopback only, unless allow_plaintext
)

// Defaults of an SMTP account.
const (
	DefaultSMTPDialTimeout    = 10 * time.Second
	DefaultSMTPCommandTimeout = 30 * time.Second
	DefaultSMTPSubmitTimeout  = 2 * time.Minute
)

// SMTPAccount is one entry of the top-level smtp section: a mail server
// the send_email action submits through, by name.
type SMTPAccount struct {
	Name string `yaml:"name"`
	Host string `yaml:"host"`
	// Port defaults to 587 (starttls), 465 (implicit) or 25 (none).
	Port int `yaml:"port"`
	// TLS is starttls (default), implicit or none ("tls" is read as
	// implicit, as the imap connector writes it).
	TLS string `yaml:"tls"`
	// AllowPlaintext allows tls: none with a host that is not loopback.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// InsecureSkipVerify accepts any server certificate (a self-signed
	// test server); never for a real one.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// Username and Password authenticate with AUTH PLAIN (over TLS, or on
	// loopback); no username: no AUTH.
	Username       string        `yaml:"username"`
	Password       string        `yaml:"password"`
	DialTimeout    time.Duration `yaml:"dial_timeout"`
	CommandTimeout time.Duration `yaml:"command_timeout"`
	// SubmitTimeout bounds the wait for the answer to the end of DATA.
	SubmitTimeout time.Duration `yaml:"submit_timeout"`
	// MaxPerMinute bounds the messages sent through the account in one
	// calendar minute, by every gateway sharing the store; 0: no bound.
	MaxPerMinute int `yaml:"max_per_minute"`
}

var smtpName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// SetDefaults fills empty fields.
func (a *SMTPAccount) SetDefaults() {
	if a.TLS == "" {
		a.TLS = SMTPStartTLS
	}
	if a.TLS == "tls" {
		a.TLS = SMTPImplicit
	}
	if a.Port == 0 {
		a.Port = map[string]int{SMTPStartTLS: 587, SMTPImplicit: 465, SMTPNone: 25}[a.TLS]
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&a.DialTimeout, DefaultSMTPDialTimeout)
	def(&a.CommandTimeout, DefaultSMTPCommandTimeout)
	def(&a.SubmitTimeout, DefaultSMTPSubmitTimeout)
}

// Validate checks an account with its defaults set; paths are relative to
// it.
func (a *SMTPAccount) Validate() validate.Errors {
	var errs validate.Errors
	if !smtpName.MatchString(a.Name) {
		errs.Add("name", "required: 1-64 lowercase letters, digits, '_' or '-'")
	}
	if a.Host == "" {
		errs.Add("host", "required")
	}
	if a.Port < 1 || a.Port > 65535 {
		errs.Add("port", "must be 1 to 65535")
	}
	switch a.TLS {
	case SMTPStartTLS, SMTPImplicit:
	case SMTPNone:
		if a.Host != "" && !netx.IsLoopback(a.Host) && !a.AllowPlaintext {
			errs.Add("tls", "none sends mail (and the password) in clear; only for a loopback host unless allow_plaintext is true")
		}
	default:
		errs.Add("tls", "must be starttls, implicit or none, not %q", a.TLS)
	}
	if a.Username != "" && a.Password == "" {
		errs.Add("password", "required with a username (write it as ${ENV_VAR})")
	}
	if a.Username == "" && a.Password != "" {
		errs.Add("username", "required with a password")
	}
	for _, d := range []struct {
		path string
		v    time.Duration
	}{{"dial_timeout", a.DialTimeout}, {"command_timeout", a.CommandTimeout}, {"submit_timeout", a.SubmitTimeout}} {
		if d.v < 10*time.Millisecond || d.v > 30*time.Minute {
			errs.Add(d.path, "must be between 10ms and 30m")
		}
	}
	if a.MaxPerMinute < 0 || a.MaxPerMinute > 100000 {
		errs.Add("max_per_minute", "must be from 0 (no bound) to 100000")
	}
	return errs
}

// SMTPAccounts is the smtp section.
type SMTPAccounts []SMTPAccount

// SetDefaults fills the defaults of every account.
func (s SMTPAccounts) SetDefaults() {
	for i := range s {
		s[i].SetDefaults()
	}
}

// Validate checks every account and that names are unique; paths are
// relative to the section ("[1].host").
func (s SMTPAccounts) Validate() validate.Errors {
	var errs validate.Errors
	first := map[string]int{}
	for i := range s {
		path := validate.Index("", i)
		errs.Merge(path, s[i].Validate())
		if j, dup := first[s[i].Name]; dup && s[i].Name != "" {
			errs.Add(path+".name", "duplicate smtp account name %q (first used by smtp[%d])", s[i].Name, j)
		} else {
			first[s[i].Name] = i
		}
	}
	return errs
}

// Get returns the account called name.
func (s SMTPAccounts) Get(name string) (*SMTPAccount, bool) {
	for i := range s {
		if s[i].Name == name {
			return &s[i], true
		}
	}
	return nil, false
}

// envelope is one submission: MAIL FROM, RCPT TO and the message.
type envelope struct {
	from string
	rcpt []string
	raw  []byte
}

// submit delivers env through the account with go-smtp: one connection per
// message (a gateway sends a few mails per stage entry, not a stream),
// closed when ctx ends. The server's answers decide how the engine goes on:
// a 4xx (or a connection that fails) is retried, a 5xx is permanent and
// carries the server's reply text. A nil error means the server accepted
// the message (250 after DATA).
func (a *SMTPAccount) submit(ctx context.Context, env envelope) error {
	addr := net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
	d := net.Dialer{Timeout: a.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return a.fail("connect", err)
	}
	tlsConf := &tls.Config{ServerName: a.Host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: a.InsecureSkipVerify}
	if a.TLS == SMTPImplicit {
		conn = tls.Client(conn, tlsConf)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() }) // go-smtp takes no context
	defer stop()
	var c *smtp.Client
	if a.TLS == SMTPStartTLS {
		// go-smtp refuses to go on in clear when the server offers no STARTTLS.
		if c, err = smtp.NewClientStartTLS(conn, tlsConf); err != nil {
			_ = conn.Close()
			return a.fail("starttls", err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	defer func() { _ = c.Close() }() // after QUIT, or to abandon the session
	c.CommandTimeout, c.SubmissionTimeout = a.CommandTimeout, a.SubmitTimeout
	if a.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", a.Username, a.Password)); err != nil {
			return a.fail("auth", err)
		}
	}
	if err := c.SendMail(env.from, env.rcpt, bytes.NewReader(env.raw)); err != nil {
		return a.fail("send", err)
	}
	_ = c.Quit() // accepted: a failing QUIT changes nothing
	return nil
}

// fail classifies an error of step: an SMTP 5xx answer is permanent, a 4xx
// and every transport error retryable. Messages carry the server's text.
func (a *SMTPAccount) fail(step string, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		werr := fmt.Errorf("smtp %s: %s: %d %s: %w", a.Name, step, se.Code, se.Message, ErrSMTPRejected)
		if se.Code >= 500 {
			return engine.Permanent(werr)
		}
		return werr
	}
	return fmt.Errorf("smtp %s: %s: %w", a.Name, step, err)
}

// ErrSMTPRejected marks an SMTP server's negative answer (4xx or 5xx).
var ErrSMTPRejected = errors.New("refused by the server")

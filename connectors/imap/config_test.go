package imap

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/validate"
)

const configYAML = `
api: {tokens: [t0ken-0123456789abcdef]}
pipelines:
  - id: sales
    stages:
      - id: new
      - id: contacted
        triggers:
          - {type: email.incoming, mailbox: sales@acme.test}
connectors:
  - name: mail
    type: imap
    host: imap.acme.test
    username: sales@acme.test
    password: "${IMAP_PASSWORD}"
    folders:
      incoming: INBOX
    start: 7d
    own_addresses: [acme.test, "@acme-mail.test", boss@gmail.test]
    create: {pipeline: sales}
  - name: support
    type: imap
    host: 127.0.0.1
    port: 1143
    tls: none
    username: support
    password: x
    folders:
      incoming: [INBOX, Escalations]
      sent: none
`

// TestConfigParse reads the section through the real config loader: ${ENV}
// secrets, a folder given as one name or a list, defaults.
func TestConfigParse(t *testing.T) {
	env := map[string]string{"IMAP_PASSWORD": "s3cret"}
	cfg, err := config.Parse([]byte(configYAML), map[string]connectors.Kind{"imap": Kind}, nil,
		func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	mail := cfg.Connectors[0].Settings.(*Config)
	if mail.Password != "s3cret" || mail.Addr() != "imap.acme.test:993" || mail.TLS != TLSImplicit {
		t.Errorf("mail: %+v", mail)
	}
	if !slices.Equal(mail.Folders.Incoming, []string{"INBOX"}) || mail.SentFolder() != SentAuto {
		t.Errorf("mail folders: %+v", mail.Folders)
	}
	if d, _ := mail.Backfill(); d != 7*24*time.Hour {
		t.Errorf("backfill %v", d)
	}
	sup := cfg.Connectors[1].Settings.(*Config)
	if !slices.Equal(sup.Folders.Incoming, []string{"INBOX", "Escalations"}) || sup.SentFolder() != SentNone || sup.Addr() != "127.0.0.1:1143" {
		t.Errorf("support: %+v", sup)
	}
	own, err := NewOwn(mail.OwnAddresses, mail.Username)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"bob@acme.test": true, "x@eu.acme.test": true, "a@acme-mail.test": true, "boss@gmail.test": true,
		"sales@acme.test": true, "ann@client.test": false, "other@gmail.test": false, "x@notacme.test": false,
	} {
		if own.Is(addr) != want {
			t.Errorf("own(%s) = %v", addr, !want)
		}
	}
}

// TestConfigValidate lists the problems a section can have, with paths.
func TestConfigValidate(t *testing.T) {
	valid := func() *Config {
		c := NewConfig()
		c.Host, c.Username, c.Password = "imap.acme.test", "u", "p"
		return c
	}
	if errs := valid().Validate(); len(errs) != 0 {
		t.Fatalf("valid config: %v", errs)
	}
	for name, tc := range map[string]struct {
		mod  func(*Config)
		path string
	}{
		"no host":          {func(c *Config) { c.Host = "" }, "host"},
		"bad tls":          {func(c *Config) { c.TLS = "ssl" }, "tls"},
		"plaintext remote": {func(c *Config) { c.TLS = TLSNone }, "tls"},
		"no password":      {func(c *Config) { c.Password = "" }, "password"},
		"bad start":        {func(c *Config) { c.Start = "yesterday" }, "start"},
		"zero days":        {func(c *Config) { c.Start = "0d" }, "start"},
		"bad own":          {func(c *Config) { c.OwnAddresses = []string{"not a domain"} }, "own_addresses[0]"},
		"no incoming":      {func(c *Config) { c.Folders.Incoming = nil }, "folders.incoming"},
		"twice":            {func(c *Config) { c.Folders.Incoming = StringList{"A", "A"} }, "folders.incoming[1]"},
		"sent is incoming": {func(c *Config) { c.Folders.Sent = "INBOX" }, "folders.sent"},
		"idle too long":    {func(c *Config) { c.IdleRefresh = 30 * time.Minute }, "idle_refresh"},
		"tiny body cap":    {func(c *Config) { c.MaxMessageBytes = 100 }, "max_message_bytes"},
		"bad mode":         {func(c *Config) { c.Mode = "push" }, "mode"},
		"batch":            {func(c *Config) { c.BatchSize = 0 }, "batch_size"},
	} {
		t.Run(name, func(t *testing.T) {
			c := valid()
			tc.mod(c)
			errs := c.Validate()
			if !slices.ContainsFunc(errs, func(e validate.Error) bool { return e.Path == tc.path }) {
				t.Errorf("errors %v do not name %s", errs, tc.path)
			}
		})
	}
	c := valid()
	c.TLS, c.Host = TLSNone, "localhost"
	if errs := c.Validate(); len(errs) != 0 {
		t.Errorf("tls none on loopback: %v", errs)
	}
	c.Host, c.AllowPlaintext = "10.0.0.5", true
	if errs := c.Validate(); len(errs) != 0 || !strings.HasSuffix(c.Addr(), ":143") {
		t.Errorf("allow_plaintext: %v %s", errs, c.Addr())
	}
}

package livechat

import (
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/validate"
)

// Defaults of the config section.
const (
	DefaultMaxFrame     = 8 << 10 // bytes of one websocket message
	DefaultMaxText      = 4000    // bytes of one chat message's text
	DefaultRate         = 5.0     // frames per second per connection
	DefaultBurst        = 20
	DefaultHistory      = 1000 // messages per conversation
	DefaultSendBuffer   = 256  // frames queued to one connection
	DefaultPingInterval = 25 * time.Second
	DefaultPongWait     = 60 * time.Second
	DefaultWriteWait    = 10 * time.Second
	DefaultRetention    = 30 * 24 * time.Hour
	DefaultQueueWindow  = 72 * time.Hour
	DefaultResync       = 2 * time.Second
	MinSecretLength     = 16
	MinAgentTokenLength = 16
)

// The identity fields the widget may ask a visitor for.
var askable = map[string]bool{"name": true, "email": true, "phone": true}

var (
	idPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// Config is the section of a connector of type livechat.
type Config struct {
	// Secret signs visitor tokens (HMAC-SHA256); at least 16 bytes.
	Secret string `yaml:"secret"`
	// Channels are the open lines a widget can start a conversation on;
	// Event.Channel is the channel id. The first one is the default.
	Channels []Channel `yaml:"channels"`
	// AllowedOrigins lists the web origins (scheme://host[:port]) whose
	// pages may open the visitor websocket; "*" allows any. The gateway's
	// own origin (the demo page) is always allowed.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AllowNoOrigin accepts visitor upgrades without an Origin header
	// (non-browser clients). Default false.
	AllowNoOrigin bool `yaml:"allow_no_origin"`
	// Agents are the people who answer, each with a bearer token for the
	// agent websocket and the console.
	Agents []Agent `yaml:"agents"`
	// AgentOrigins lists further origins allowed to open the agent
	// websocket, besides the gateway's own and clients without Origin.
	AgentOrigins []string `yaml:"agent_origins"`
	// Ask lists what the widget asks the visitor for: name, email, phone.
	Ask []string `yaml:"ask"`
	// Title is the widget's header text.
	Title string `yaml:"title"`
	// DefaultRegion is used for phone numbers without a country code.
	// Default: the engine's default_region, else US.
	DefaultRegion string `yaml:"default_region"`
	Limits        Limits `yaml:"limits"`
	// Retention is how long conversations, their messages and visitors are
	// kept after their last change. Default 720h.
	Retention time.Duration `yaml:"retention"`
	// QueueWindow is how far back the agents' queue looks. Default 72h.
	QueueWindow time.Duration `yaml:"queue_window"`
}

// Channel is one open line.
type Channel struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

// Agent is one person answering chats.
type Agent struct {
	Name  string `yaml:"name"`
	Token string `yaml:"token"`
}

// Limits bound what one connection may do.
type Limits struct {
	// MaxFrame is the largest websocket message read, in bytes; a larger
	// one closes the connection with 1009. Default 8 KiB.
	MaxFrame int64 `yaml:"max_frame"`
	// MaxText is the largest chat message text, in bytes. Default 4000.
	MaxText int `yaml:"max_text"`
	// Rate is the frames per second a connection may send on average, and
	// Burst how many at once; more are answered with rate_limited.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// History is the most messages one conversation keeps; when it is
	// reached the conversation is closed and the next message starts a new one.
	History int `yaml:"history"`
	// SendBuffer is how many frames may wait for a slow client; a client
	// that falls further behind is disconnected (it resumes on reconnect).
	SendBuffer int `yaml:"send_buffer"`
	// PingInterval, PongWait and WriteWait drive liveness: a ping every
	// PingInterval, a client silent for PongWait is dropped, a write that
	// takes longer than WriteWait drops the client.
	PingInterval time.Duration `yaml:"ping_interval"`
	PongWait     time.Duration `yaml:"pong_wait"`
	WriteWait    time.Duration `yaml:"write_wait"`
	// Resync is how often recently active conversations are compared with
	// the store, to deliver what a lost broadcast did not. Default 2s.
	Resync time.Duration `yaml:"resync"`
}

var _ connectors.Config = (*Config)(nil)

// NewConfig returns a Config with defaults set.
func NewConfig() *Config {
	return &Config{
		Title:       "Chat with us",
		Retention:   DefaultRetention,
		QueueWindow: DefaultQueueWindow,
		Limits: Limits{
			MaxFrame: DefaultMaxFrame, MaxText: DefaultMaxText, Rate: DefaultRate, Burst: DefaultBurst,
			History: DefaultHistory, SendBuffer: DefaultSendBuffer, PingInterval: DefaultPingInterval,
			PongWait: DefaultPongWait, WriteWait: DefaultWriteWait, Resync: DefaultResync,
		},
	}
}

// Validate checks the section; paths are relative to it.
func (c *Config) Validate() validate.Errors {
	var errs validate.Errors
	if len(c.Secret) < MinSecretLength {
		errs.Add("secret", "required, at least %d bytes", MinSecretLength)
	}
	if len(c.Channels) == 0 {
		errs.Add("channels", "at least one channel is required")
	}
	seen := map[string]bool{}
	for i, ch := range c.Channels {
		p := validate.Join(validate.Index("channels", i), "id")
		switch {
		case !idPattern.MatchString(ch.ID):
			errs.Add(p, "must be 1 to 64 letters, digits, _, . or -")
		case seen[ch.ID]:
			errs.Add(p, "duplicate channel id %q", ch.ID)
		}
		seen[ch.ID] = true
	}
	checkOrigins(&errs, "allowed_origins", c.AllowedOrigins, true)
	checkOrigins(&errs, "agent_origins", c.AgentOrigins, false)
	names, tokens := map[string]bool{}, map[string]bool{}
	for i, a := range c.Agents {
		p := validate.Index("agents", i)
		switch {
		case !idPattern.MatchString(a.Name):
			errs.Add(validate.Join(p, "name"), "must be 1 to 64 letters, digits, _, . or -")
		case names[a.Name]:
			errs.Add(validate.Join(p, "name"), "duplicate agent %q", a.Name)
		}
		names[a.Name] = true
		switch {
		case len(a.Token) < MinAgentTokenLength:
			errs.Add(validate.Join(p, "token"), "required, at least %d characters", MinAgentTokenLength)
		case tokens[a.Token]:
			errs.Add(validate.Join(p, "token"), "shared with another agent")
		}
		tokens[a.Token] = true
	}
	for i, f := range c.Ask {
		if !askable[f] {
			errs.Add(validate.Index("ask", i), "must be name, email or phone, not %q", f)
		}
	}
	if c.DefaultRegion != "" && !normalize.ValidRegion(c.DefaultRegion) {
		errs.Add("default_region", "must be a two-letter region code such as US")
	}
	c.Limits.validate(&errs)
	if c.Retention < time.Hour {
		errs.Add("retention", "must be at least 1h")
	}
	if c.QueueWindow < time.Minute {
		errs.Add("queue_window", "must be at least 1m")
	}
	return errs
}

func (l *Limits) validate(errs *validate.Errors) {
	positive := func(name string, ok bool) {
		if !ok {
			errs.Add("limits."+name, "must be positive")
		}
	}
	positive("max_frame", l.MaxFrame > 0)
	positive("max_text", l.MaxText > 0)
	positive("rate", l.Rate > 0)
	positive("burst", l.Burst > 0)
	positive("history", l.History > 0)
	positive("send_buffer", l.SendBuffer > 0)
	positive("write_wait", l.WriteWait > 0)
	positive("resync", l.Resync > 0)
	if l.PingInterval <= 0 {
		errs.Add("limits.ping_interval", "must be positive")
	} else if l.PongWait <= l.PingInterval {
		errs.Add("limits.pong_wait", "must be longer than ping_interval")
	}
	if l.MaxText > 0 && int64(l.MaxText) > l.MaxFrame {
		errs.Add("limits.max_text", "must not exceed max_frame")
	}
}

// Agent returns the agent whose token is token.
func (c *Config) agentByToken(token string) (Agent, bool) {
	for _, a := range c.Agents {
		if constantTimeEqual(a.Token, token) {
			return a, true
		}
	}
	return Agent{}, false
}

// channel returns the configured channel with id, or the default channel
// when id is empty.
func (c *Config) channel(id string) (Channel, bool) {
	if id == "" {
		return c.Channels[0], true
	}
	for _, ch := range c.Channels {
		if ch.ID == id {
			return ch, true
		}
	}
	return Channel{}, false
}

func checkOrigins(errs *validate.Errors, field string, origins []string, star bool) {
	for i, o := range origins {
		if (star && o == "*") || validOrigin(o) {
			continue
		}
		msg := "must be scheme://host[:port] without a path"
		if star {
			msg += ", or *"
		}
		errs.Add(validate.Index(field, i), "%s", msg)
	}
}

// validOrigin reports whether o is a web origin such as https://www.example.com.
func validOrigin(o string) bool {
	u, err := url.Parse(strings.TrimSuffix(o, "/"))
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}

// canonicalOrigin lower-cases an origin and drops a trailing slash, so that
// configured and received origins compare equal.
func canonicalOrigin(o string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(o), "/"))
}

package livechat

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   []string // paths with an error, in order
	}{
		{"valid", func(*Config) {}, nil},
		{"any origin", func(c *Config) { c.AllowedOrigins = []string{"*"} }, nil},
		{"short secret", func(c *Config) { c.Secret = "short" }, []string{"secret"}},
		{"no channels", func(c *Config) { c.Channels = nil }, []string{"channels"}},
		{"bad and duplicate channels", func(c *Config) {
			c.Channels = []Channel{{ID: "a b"}, {ID: "x"}, {ID: "x"}}
		}, []string{"channels[0].id", "channels[2].id"}},
		{"bad origins", func(c *Config) {
			c.AllowedOrigins = []string{"https://ok.example", "example.com", "https://x.example/path"}
			c.AgentOrigins = []string{"*"}
		}, []string{"allowed_origins[1]", "allowed_origins[2]", "agent_origins[0]"}},
		{"agents", func(c *Config) {
			c.Agents = []Agent{{Name: "alice", Token: "short"}, {Name: "alice", Token: aliceToken}, {Name: "", Token: aliceToken}}
		}, []string{"agents[0].token", "agents[1].name", "agents[2].name", "agents[2].token"}},
		{"ask", func(c *Config) { c.Ask = []string{"name", "age"} }, []string{"ask[1]"}},
		{"region", func(c *Config) { c.DefaultRegion = "USA" }, []string{"default_region"}},
		{"limits", func(c *Config) {
			c.Limits = Limits{MaxFrame: 100, MaxText: 200, Rate: 1, Burst: 1, History: 1, SendBuffer: 1,
				PingInterval: time.Second, PongWait: time.Second, WriteWait: time.Second, Resync: time.Second}
		}, []string{"limits.pong_wait", "limits.max_text"}},
		{"zero limits", func(c *Config) { c.Limits = Limits{} }, []string{"limits.max_frame", "limits.max_text",
			"limits.rate", "limits.burst", "limits.history", "limits.send_buffer", "limits.write_wait", "limits.resync",
			"limits.ping_interval"}},
		{"durations", func(c *Config) { c.Retention = time.Minute; c.QueueWindow = time.Second },
			[]string{"retention", "queue_window"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.change(c)
			var got []string
			for _, e := range c.Validate() {
				got = append(got, e.Path)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("errors at %v, want %v (%v)", got, tc.want, c.Validate())
			}
		})
	}
}

func TestVisitorToken(t *testing.T) {
	s := tokenSigner{key: []byte(testSecret), connector: "chat"}
	id := newID("v_")
	tok := s.Sign(id)
	if got, ok := s.Verify(tok); !ok || got != id {
		t.Fatalf("verify own token: %q %v", got, ok)
	}
	other := newID("v_")
	for name, bad := range map[string]string{
		"other connector":  tokenSigner{key: []byte(testSecret), connector: "chat2"}.Sign(id),
		"other secret":     tokenSigner{key: []byte("another-secret-0123456789"), connector: "chat"}.Sign(id),
		"swapped visitor":  "v1." + other + "." + strings.Split(tok, ".")[2],
		"no prefix":        strings.TrimPrefix(tok, "v1."),
		"empty":            "",
		"malformed id":     "v1.v_x." + strings.Split(tok, ".")[2],
		"truncated mac":    tok[:len(tok)-2],
		"appended garbage": tok + "x",
	} {
		if _, ok := s.Verify(bad); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

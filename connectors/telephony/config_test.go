package telephony

import (
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/validate"
)

// decodeConfig decodes a section the way the config loader does: unknown
// keys rejected, into a config with defaults set.
func decodeConfig(t *testing.T, src string) *Config {
	t.Helper()
	cfg := NewConfig()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return cfg
}

func paths(errs validate.Errors) []string {
	ps := []string{}
	for _, e := range errs {
		ps = append(ps, e.Path)
	}
	return ps
}

func TestConfigDefaults(t *testing.T) {
	cfg := decodeConfig(t, "provider: twilio\nauth_token: abc\n")
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if !cfg.VoicemailIsMissed || cfg.Settle != DefaultSettle || cfg.Retention != DefaultRetention ||
		cfg.MaxBody != DefaultMaxBody || cfg.DefaultRegion != "" {
		t.Errorf("defaults %+v", cfg)
	}
	cfg = decodeConfig(t, `
provider: generic
secret: whsec_c2VjcmV0
voicemail_is_missed: false
settle: 0s
own_numbers: ["+1 (555) 000-1111", "555.000.2222"]
agent_numbers: ["+44 20 7946 0958"]
default_region: GB
`)
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if cfg.VoicemailIsMissed || cfg.Settle != 0 {
		t.Errorf("decoded %+v", cfg)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{"{}", []string{"provider"}},
		{"provider: asterisk", []string{"provider"}},
		{"provider: twilio", []string{"auth_token"}},
		{"provider: twilio\nauth_token: x\nsecret: y\nsignature_url: ftp://x/in", []string{"signature_url", "secret"}},
		{"provider: twilio\nauth_token: x\nsignature_url: https://x/in?a=1", []string{"signature_url"}},
		{"provider: twilio\nauth_tokens: ['']", []string{"auth_tokens[0]"}},
		{"provider: generic", []string{"secret"}},
		{"provider: generic\nsecret: whsec_!!\nauth_token: x\ntolerance: 0s", []string{"secret", "tolerance", "auth_token"}},
		{"provider: twilio\nauth_token: x\nsettle: 11m\nretention: 1m\nmax_body: 0\ndefault_region: USA",
			[]string{"default_region", "settle", "retention", "max_body"}},
		{"provider: twilio\nauth_token: x\nown_numbers: [main]\nagent_numbers: ['+1', '+15557770001']",
			[]string{"own_numbers[0]", "agent_numbers[0]"}},
	} {
		if got := paths(decodeConfig(t, tc.src).Validate()); !slices.Equal(got, tc.want) {
			t.Errorf("%q: paths %q, want %q", tc.src, got, tc.want)
		}
	}
	if got := NewConfig().Tolerance; got != 5*time.Minute {
		t.Errorf("tolerance default %s", got)
	}
}

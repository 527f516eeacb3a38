package tracking

import (
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/validate"
)

// decodeInto decodes a YAML section the way the config loader does:
// unknown keys rejected, into a config with defaults set.
func decodeInto(t *testing.T, src string, cfg any) {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		t.Fatalf("decode: %v", err)
	}
}

func paths(errs validate.Errors) []string {
	var ps []string
	for _, e := range errs {
		ps = append(ps, e.Path)
	}
	return ps
}

func TestConfig(t *testing.T) {
	cfg := NewConfig()
	decodeInto(t, `
keys: ["`+testKey+`", "old-key-0123456789abc"]
retention: 720h
scoring:
  quick: 5s
  agents: ["90 acme contains AcmeScan"]
site:
  enabled: true
  allowed_origins: ["https://www.seller.test"]
  link_domains: [seller.test]
`, cfg)
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatalf("valid section: %v", errs)
	}
	if cfg.Retention != 720*time.Hour || cfg.Scoring.Quick != 5*time.Second || cfg.Scoring.Threshold != defaultThreshold ||
		cfg.Site.ReturnGap != defaultReturnGap || !cfg.Site.Identify || cfg.MaxHits != defaultMaxHits {
		t.Errorf("decoded %+v", cfg)
	}

	bad := NewConfig()
	decodeInto(t, `
keys: ["short"]
retention: 1m
message_id_domain: "not a domain"
max_links: 0
store_timeout: 0s
scoring: {threshold: 0, agents: ["nonsense"]}
site: {enabled: true, return_gap: 1s, link_domains: ["https://x"]}
`, bad)
	want := []string{"keys[0]", "retention", "message_id_domain", "max_links", "store_timeout",
		"scoring.threshold", "scoring.agents[0]", "site.allowed_origins", "site.return_gap", "site.link_domains[0]"}
	if got := paths(bad.Validate()); !slices.Equal(got, want) {
		t.Errorf("paths %q, want %q", got, want)
	}
	if got := paths(NewConfig().Validate()); !slices.Equal(got, []string{"keys"}) {
		t.Errorf("no keys: %q", got)
	}
}

// Keys taken from secrets.tracking_keys are checked where the file sets
// them: a short shared key is not reported again at keys[0], a path the
// file does not set; the connector's own keys still are.
func TestValidateSharedKeysReportedOnce(t *testing.T) {
	shared := NewConfig()
	shared.UseSecrets(connectors.SharedSecrets{TrackingKeys: []string{"short"}})
	if got := paths(shared.Validate()); len(got) != 0 {
		t.Errorf("inherited key reported again at %q", got)
	}
	own := NewConfig()
	own.Keys = []string{"short"}
	own.UseSecrets(connectors.SharedSecrets{TrackingKeys: []string{testKey}})
	if got := paths(own.Validate()); !slices.Equal(got, []string{"keys[0]"}) {
		t.Errorf("own short key: %q", got)
	}
	none := NewConfig()
	none.UseSecrets(connectors.SharedSecrets{})
	if got := paths(none.Validate()); !slices.Equal(got, []string{"keys"}) {
		t.Errorf("no keys anywhere: %q", got)
	}
}

func TestKindNew(t *testing.T) {
	cfg := NewConfig()
	cfg.Keys = []string{testKey}
	deps := connectors.Deps{Intake: &fakeIntake{}, PublicURL: testPublic, Records: newFakeRecords(time.Now)}
	c, err := Kind.New(connectors.Base{Name: "track", Type: "tracking"}, cfg, deps)
	if err != nil || c.Name() != "track" {
		t.Fatalf("New: %v %v", c, err)
	}
	noRecs := deps
	noRecs.Records = nil
	if _, err := Kind.New(connectors.Base{Name: "track"}, cfg, noRecs); err == nil {
		t.Error("no records accepted")
	}
	noURL := deps
	noURL.PublicURL = ""
	if _, err := Kind.New(connectors.Base{Name: "track"}, cfg, noURL); err == nil {
		t.Error("no public URL accepted")
	}
	if _, err := Kind.New(connectors.Base{Name: "track"}, &struct{ Config }{}, deps); err == nil {
		t.Error("wrong config type accepted")
	}
}

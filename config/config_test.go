package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/actions"
	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/testutil/golden"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/validate"
)

// fakeWebhook is a connector kind config whose secret is required.
type fakeWebhook struct {
	Secret    string            `yaml:"secret"`
	Tolerance time.Duration     `yaml:"tolerance"`
	Headers   map[string]string `yaml:"headers"`
}

func (c *fakeWebhook) Validate() validate.Errors {
	var errs validate.Errors
	if c.Secret == "" {
		errs.Add("secret", "required")
	}
	return errs
}

// fakeForms is a connector kind config with nothing required.
type fakeForms struct {
	AllowOrigins []string `yaml:"allow_origins"`
}

func (c *fakeForms) Validate() validate.Errors { return nil }

var (
	testKinds = map[string]connectors.Kind{
		"webhook": {NewConfig: func() connectors.Config { return &fakeWebhook{Tolerance: 5 * time.Minute} }},
		"forms":   {NewConfig: func() connectors.Config { return &fakeForms{} }},
	}
	testActions = map[string]engine.ActionKind{"log": engine.LogKind(),
		"notify": {NewSettings: func() engine.ActionSettings { return new(fakeNotify) }, Timeout: true}}
	testEnv = map[string]string{
		"STAGEGATE_API_TOKEN":      "api-token-0123456789",
		"STAGEGATE_TRACKING_KEY":   "tracking-key-0123456789",
		"STAGEGATE_WEBHOOK_SECRET": "whsec_c2VjcmV0",
	}
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// errorLines returns the problems of err, one a line, failing the test if
// err is not a validate.Errors.
func errorLines(t *testing.T, err error) string {
	t.Helper()
	var errs validate.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v (%T) is not validate.Errors", err, err)
	}
	return errs.Error() + "\n"
}

func TestLoadValid(t *testing.T) {
	cfg, err := Load("../testdata/config/valid.yaml", testKinds, testActions, lookup(testEnv))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	wantStore := store.Config{Driver: "bolt", Path: "data/stagegate.db", Prefix: "sg",
		DedupWindow: 48 * time.Hour, ClaimAfter: store.DefaultClaimAfter}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", cfg.Listen, "127.0.0.1:8080"},
		{"public_url", cfg.PublicURL, "http://127.0.0.1:8080"},
		{"store", cfg.Store, wantStore},
		{"api", cfg.API.Tokens, []string{"api-token-0123456789"}},
		{"secrets", cfg.Secrets.TrackingKeys, []string{"tracking-key-0123456789"}},
		{"log", cfg.Log, Log{Level: "debug", Format: "auto"}},
		{"engine", cfg.Engine, Engine{BatchSize: 256, DefaultRegion: "US"}},
		{"limits", cfg.Limits, Limits{MaxBody: 1 << 20}},
		{"actions", cfg.Actions, actions.Config{ActionPolicy: engine.ActionPolicy{Timeout: 15 * time.Second, MaxAttempts: 10,
			BackoffMin: time.Second, BackoffMax: 10 * time.Minute, Workers: 64, MaxChainDepth: 5, Lease: 45 * time.Second,
			Poll: time.Second}, UserAgent: "stagegate"}},
		{"pipelines", len(cfg.Pipelines), 1},
		{"stages", len(cfg.Pipelines[0].Stages), 5},
		{"reaction seconds", *cfg.Pipelines[0].Stages[2].Triggers[2].Seconds, 90.0},
		{"action", cfg.Pipelines[0].Stages[3].Actions, []engine.ActionSpec{{Type: "log", Settings: &engine.LogSettings{Message: "deal won"}}}},
		{"connectors", len(cfg.Connectors), 2},
		{"forms base", cfg.Connectors[0].Base, connectors.Base{Name: "forms", Type: "forms",
			Create: &connectors.Create{Pipeline: "sales", Stage: "new"}}},
		{"forms settings", cfg.Connectors[0].Settings, &fakeForms{}},
		{"hooks base", cfg.Connectors[1].Base, connectors.Base{Name: "hooks", Type: "webhook"}},
		{"hooks settings", cfg.Connectors[1].Settings, &fakeWebhook{Secret: "whsec_c2VjcmV0",
			Tolerance: 5 * time.Minute, Headers: map[string]string{"X-Team": "crm"}}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestLoadBrokenGolden(t *testing.T) {
	_, err := Load("../testdata/config/broken.yaml", testKinds, testActions, lookup(testEnv))
	if err == nil {
		t.Fatal("Load succeeded on a broken config")
	}
	got := errorLines(t, err)
	golden.CheckFile(t, filepath.Join("..", "testdata", "config", "broken.golden"), []byte(got))
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), testKinds, testActions, lookup(testEnv))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want fs.ErrNotExist", err)
	}
}

const minimal = `
api: {tokens: [abcdefgh]}
pipelines: [{id: p, stages: [{id: a}, {id: b}]}]
`

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal+"listen: :9000\nengine: {default_region: gb}\n"), nil, nil, lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":9000" || cfg.PublicURL != "http://localhost:9000" {
		t.Errorf("listen %q, public_url %q", cfg.Listen, cfg.PublicURL)
	}
	if cfg.Engine.DefaultRegion != "GB" || cfg.Log.Level != "info" || cfg.Store.Driver != "bolt" {
		t.Errorf("defaults not applied: %+v %+v %+v", cfg.Engine, cfg.Log, cfg.Store)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"syntax", "listen: [\n", "line 2: did not find expected node content\n"},
		// yaml.v3 reports its parser's errors one line early: the line
		// shown is the one with the problem.
		{"unclosed list", "api: {tokens: [abcdefgh]}\nlisten: a:1\nstore: [1, 2\nlog: {}\n", "line 3: did not find expected ',' or ']'\n"},
		{"unclosed mapping", "api: {tokens: [abcdefgh]}\n\nstore: {driver: bolt\nlog: {}\n", "line 3: did not find expected ',' or '}'\n"},
		{"list in mapping", "api: {tokens: [abcdefgh]}\n- x\n", "line 2: did not find expected key\n"},
		{"scanner error", "api: {tokens: [abcdefgh]}\nlisten: a:1\nlog: @x\n", "line 3: found character that cannot start any token\n"},
		{"tab indent", "api:\n\ttokens: []\n", "line 2: found character that cannot start any token\n"},
		{"top level list", "- a\n", "the top level must be a mapping of sections (listen, store, pipelines, ...), not a list\n"},
		{"empty", "# nothing\n", "api.tokens: at least one token is required\npipelines: at least one pipeline is required\n"},
		{"two documents", minimal + "---\nlisten: x\n", "only one YAML document is allowed (another starts at line 4)\n"},
		{"duplicate key", minimal + "listen: a:1\nlisten: b:2\n", "listen: key defined twice (lines 4 and 5)\n"},
		{"bad list item", "pipelines: [{id: p, stages: [x, {id: a}, {id: a}]}]\napi: {tokens: [abcdefgh]}\n",
			"pipelines[0].stages[0]: must be a mapping, not \"x\"\npipelines[0].stages[2].id: duplicate stage id \"a\"\n"},
		{"wrong shape", minimal + "store: [bolt]\nconnectors: {name: x}\n",
			"store: must be a mapping, not a list\nconnectors: must be a list, not a mapping\n"},
		{"bad values", minimal + "listen: localhost\npublic_url: https://x.test/?a=1\nlimits: {max_body: -1}\nsecrets: {tracking_keys: [short, '']}\n",
			"listen: must be host:port, not \"localhost\"\n" +
				"public_url: must have no user, query or fragment\n" +
				"limits.max_body: must be positive\n" +
				"secrets.tracking_keys[0]: must be at least 16 bytes\n" +
				"secrets.tracking_keys[1]: empty key (is its environment variable set?)\n"},
		{"more values", minimal + "listen: ':70000'\npublic_url: /relative\nlog: {format: xml}\nengine: {workers: -1, default_region: ZZ}\n",
			"listen: port must be a number from 0 to 65535, not \"70000\"\n" +
				"public_url: must be an absolute http or https URL, not \"/relative\"\n" +
				"log.format: must be auto, text or json, not \"xml\"\n" +
				"engine.workers: must be positive\n" +
				"engine.default_region: unknown region \"ZZ\" (want a two-letter code such as US)\n"},
		{"empty env token", "api: {tokens: [\"${EMPTY}\"]}\npipelines: [{id: p, stages: [{id: a}]}]\n",
			"api.tokens[0]: empty token (is its environment variable set?)\n"},
		{"connectors", minimal + "connectors:\n- {type: forms, create: {pipeline: p, stage: b}}\n- {name: a, type: webhook, secret: s, tolerance: 5}\n- {name: a, type: '', create: {}}\n",
			"connectors[0].name: required\n" +
				"connectors[1].tolerance: must be a duration such as 30s, 15m or 720h, not \"5\"\n" +
				"connectors[2].name: duplicate connector name \"a\" (first used by connectors[1])\n" +
				"connectors[2].type: required\n" +
				"connectors[2].create.pipeline: required\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), testKinds, testActions, lookup(map[string]string{"EMPTY": ""}))
			if err == nil {
				t.Fatalf("no error, config %+v", cfg)
			}
			if cfg != nil {
				t.Error("config returned with errors")
			}
			if got := errorLines(t, err); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestParseAliases(t *testing.T) {
	cycle := "api: {tokens: [abcdefgh]}\npipelines: &p [{id: a, stages: *p}]\n"
	_, err := Parse([]byte(cycle), testKinds, testActions, lookup(nil))
	if got, want := errorLines(t, err), "pipelines[0].stages: alias *p refers to an anchor that contains it\n"; got != want {
		t.Errorf("cycle: got %q, want %q", got, want)
	}

	// An alias bomb under a connector of unknown type, whose keys are
	// all walked as free-form values.
	bomb := "connectors:\n- name: c\n  type: nope\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 1; i < 9; i++ {
		bomb += fmt.Sprintf("  l%d: &l%d [%s]\n", i, i, strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9)+fmt.Sprintf("*l%d", i-1))
	}
	_, err = Parse([]byte(bomb), testKinds, testActions, lookup(nil))
	if got, want := errorLines(t, err), errTooComplex+"\n"; got != want {
		t.Errorf("bomb: got %q, want %q", got, want)
	}
}

func TestParseNoPanicOnOddInput(t *testing.T) {
	for _, in := range []string{"", "~", "listen:", "pipelines: [~]", "connectors: [~, []]", "a: &x {b: *x}", "<<: 1", strings.Repeat("[", 50)} {
		_, _ = Parse([]byte(in), testKinds, testActions, lookup(nil))
	}
}

// A kind's config that uses the shared secrets gets secrets.tracking_keys
// when it has no keys of its own, before it is validated.
func TestSharedSecretsOffered(t *testing.T) {
	kinds := map[string]connectors.Kind{"t": {
		NewConfig: func() connectors.Config { return &secretsUser{} },
		New: func(connectors.Base, connectors.Config, connectors.Deps) (connectors.Connector, error) {
			return nil, nil
		},
	}}
	src := `
api: {tokens: [abcdefghij]}
secrets: {tracking_keys: [k1-0123456789abcdef]}
pipelines: [{id: p, stages: [{id: a}]}]
connectors: [{name: t1, type: t}, {name: t2, type: t, keys: [own]}]
`
	cfg, err := Parse([]byte(src), kinds, testActions, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Connectors[0].Settings.(*secretsUser).Keys; len(got) != 1 || got[0] != "k1-0123456789abcdef" {
		t.Fatalf("t1 keys %v", got)
	}
	if got := cfg.Connectors[1].Settings.(*secretsUser).Keys; len(got) != 1 || got[0] != "own" {
		t.Fatalf("t2 keys %v", got)
	}
	src2 := strings.Replace(src, "secrets: {tracking_keys: [k1-0123456789abcdef]}\n", "", 1)
	_, err = Parse([]byte(src2), kinds, testActions, func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "connectors[0].keys: required") {
		t.Fatalf("missing keys not reported: %v", err)
	}
}

type secretsUser struct {
	Keys []string `yaml:"keys"`
}

func (s *secretsUser) UseSecrets(sh connectors.SharedSecrets) {
	if len(s.Keys) == 0 {
		s.Keys = sh.TrackingKeys
	}
}

func (s *secretsUser) Validate() validate.Errors {
	var errs validate.Errors
	if len(s.Keys) == 0 {
		errs.Add("keys", "required")
	}
	return errs
}

// fakeNotify is the settings of the test action type notify.
type fakeNotify struct {
	URL string `yaml:"url"`
}

func (*fakeNotify) Validate(string) validate.Errors { return nil }

// Two connectors whose kinds serve the same fixed routes (two tracking
// connectors) are a config error at the second, naming both; a kind
// without fixed routes can be configured many times.
func TestRouteConflict(t *testing.T) {
	kinds := map[string]connectors.Kind{
		"pixel": connectors.Kind{NewConfig: func() connectors.Config { return &fakeForms{} }}.
			WithRoutes("GET /t/o/{token...}", "POST /api/v1/messages"),
		"other": connectors.Kind{NewConfig: func() connectors.Config { return &fakeForms{} }}.
			WithRoutes("GET /api/v1/other"),
		"forms": testKinds["forms"],
	}
	src := minimal + "connectors:\n- {name: p1, type: pixel}\n- {name: f1, type: forms}\n- {name: f2, type: forms}\n- {name: o1, type: other}\n"
	if _, err := Parse([]byte(src), kinds, testActions, lookup(nil)); err != nil {
		t.Fatalf("no conflict, but: %v", err)
	}
	_, err := Parse([]byte(src+"- {name: p2, type: pixel}\n"), kinds, testActions, lookup(nil))
	want := `connectors[4].type: connector "p2" (type pixel) serves "GET /t/o/{token...}", which conflicts with ` +
		`"GET /t/o/{token...}" of connectors[0] ("p1", type pixel): configure one such connector per gateway` + "\n"
	if got := errorLines(t, err); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// SetListen (serve -listen) moves a public_url made from listen along, and
// keeps one the file set; a bad address changes nothing.
func TestSetListen(t *testing.T) {
	cfg, err := Parse([]byte(minimal+"listen: 127.0.0.1:8080\n"), nil, nil, lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.SetListen("127.0.0.1:9090"); err != nil || cfg.Listen != "127.0.0.1:9090" || cfg.PublicURL != "http://127.0.0.1:9090" {
		t.Errorf("defaulted public_url: %v %q %q", err, cfg.Listen, cfg.PublicURL)
	}
	if err := cfg.SetListen("nope"); err == nil || cfg.Listen != "127.0.0.1:9090" || cfg.PublicURL != "http://127.0.0.1:9090" {
		t.Errorf("bad address: %v %q %q", err, cfg.Listen, cfg.PublicURL)
	}
	cfg, err = Parse([]byte(minimal+"listen: 127.0.0.1:8080\npublic_url: https://gw.example.com/\n"), nil, nil, lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.SetListen(":9090"); err != nil || cfg.Listen != ":9090" || cfg.PublicURL != "https://gw.example.com" {
		t.Errorf("set public_url: %v %q %q", err, cfg.Listen, cfg.PublicURL)
	}
}

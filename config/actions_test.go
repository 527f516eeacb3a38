package config

import (
	"testing"
	"time"

	"github.com/stagegate/stagegate/actions"
)

// The action kinds of package actions decode their settings from the
// action's own mapping: type errors and unknown keys are reported at their
// paths, a key of another type as not a setting of this one.
func TestActionSettings(t *testing.T) {
	const src = `api: {tokens: ["0123456789abcdef0123"]}
pipelines:
  - id: sales
    stages:
      - id: new
        actions:
          - {type: log, message: hi, url: "https://x.test/"}
          - {type: webhook, url: "https://x.test/", field: f, retries: 3, timeout: 1h}
          - {type: bitrix24, webhook_url: "https://p.test/rest/1/x/", entity_type_id: abc, stage_id: S}
          - {type: set_field, field: [a], value: x}
          - {type: set_responsible, user: "{{.Nope", timeout: 2s}
          - {type: fax, url: "https://x.test/", frobnicate: 1}
          - type: webhook
            <<: {url: "ftp://x", user: bob}
          - {type: log, after: 10 parsecs}
      - id: won
actions:
  timeout: 1h
  lease: 2s
  workers: -1
`
	_, err := Parse([]byte(src), testKinds, actions.Kinds(), lookup(nil))
	if err == nil {
		t.Fatal("no error")
	}
	want := `pipelines[0].stages[0].actions[0].url: not a setting of log actions
pipelines[0].stages[0].actions[1].field: not a setting of webhook actions
pipelines[0].stages[0].actions[1].retries: unknown key
pipelines[0].stages[0].actions[1].timeout: must be between 0 and 5m0s
pipelines[0].stages[0].actions[2].entity_type_id: must be an integer, not "abc"
pipelines[0].stages[0].actions[3].field: must be a string, not a list
pipelines[0].stages[0].actions[4].user: template: user:1: unclosed action
pipelines[0].stages[0].actions[4].timeout: not a setting of set_responsible actions
pipelines[0].stages[0].actions[5].type: unknown action type "fax"
pipelines[0].stages[0].actions[5].frobnicate: unknown key
pipelines[0].stages[0].actions[6].user: not a setting of webhook actions
pipelines[0].stages[0].actions[6].url: must be an absolute http or https URL without a fragment
pipelines[0].stages[0].actions[7].after: must be a duration such as 30s, 15m or 720h, not "10 parsecs"
actions.timeout: must be between 10ms and 5m
actions.lease: must be longer than timeout (1h0m0s)
actions.workers: must be from 1 to 4096`
	if got := err.Error(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	cfg, err := Parse([]byte(`
api: {tokens: ["0123456789abcdef0123"]}
pipelines:
  - id: sales
    stages:
      - id: new
      - id: won
        actions:
          - {type: webhook, url: "https://crm.example.com/hooks/won", timeout: 2m, secret: s}
          - {type: bitrix24, webhook_url: "https://p.test/rest/1/x/", entity_type_id: 2, stage_map: {won: "C1:WON"}}
`), testKinds, actions.Kinds(), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	as := cfg.Pipelines[0].Stages[1].Actions
	if w, ok := as[0].Settings.(*actions.Webhook); !ok || w.URL != "https://crm.example.com/hooks/won" || w.Secret != "s" || as[0].Timeout != 2*time.Minute {
		t.Fatalf("webhook = %+v %+v", as[0], as[0].Settings)
	}
	if b, ok := as[1].Settings.(*actions.Bitrix24); !ok || b.Stage("won") != "C1:WON" {
		t.Fatalf("bitrix24 = %+v", as[1].Settings)
	}
}

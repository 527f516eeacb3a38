package actions

import (
	"encoding/json"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/engine"
)

// Each type checks its own settings; a key of another type is reported
// by name, and the generic keys are the engine's.
func TestValidateActions(t *testing.T) {
	const src = `
- id: p
  stages:
    - id: won
      actions:
        - {type: webhook}
        - type: webhook
          url: ftp://x
          method: GET
          secret: whsec_%%
          template: "{{.Item"
          field: x
          headers: {Idempotency-Key: "1", X Bad: v, X-Ok: "a\nb"}
        - {type: bitrix24, webhook_url: "https://portal.example/hooks/", stage_map: {lost: "C1:LOSE"}}
        - {type: bitrix24, webhook_url: "https://portal.example/rest/1/t/", mode: trigger, entity_type_id: 31, stage_id: X}
        - {type: bitrix24, webhook_url: "https://portal.example/rest/1/t/", mode: sync}
        - {type: set_field, value: "{{bad}}"}
        - {type: set_responsible, after: -1m, skip_if_left: false, timeout: 1h}
        - {type: log, message: ok, after: 1m}
        - {type: webhook, url: "https://example.com/hook", secret: whsec_c2VjcmV0, template: '{"id": {{json .Item.ID}}}'}
        - {type: bitrix24, webhook_url: "https://portal.example/rest/1/t/", entity_type_id: 2, stage_map: {won: WON}}
        - {type: bitrix24, webhook_url: "https://portal.example/rest/1/t/", mode: trigger, entity_type_id: 2, code: abc}
`
	var ps []engine.Pipeline
	if err := yaml.Unmarshal([]byte(src), &ps); err != nil {
		t.Fatal(err)
	}
	got := engine.ValidatePipelines(ps, Kinds()).Error()
	want := `pipelines[0].stages[0].actions[0].url: required
pipelines[0].stages[0].actions[1].field: not a setting of webhook actions
pipelines[0].stages[0].actions[1].url: must be an absolute http or https URL without a fragment
pipelines[0].stages[0].actions[1].method: must be POST, PUT or PATCH, not "GET"
pipelines[0].stages[0].actions[1].secret: a whsec_ secret must be followed by base64
pipelines[0].stages[0].actions[1].headers.Idempotency-Key: is set by the gateway and cannot be configured
pipelines[0].stages[0].actions[1].headers.X Bad: not a valid header name
pipelines[0].stages[0].actions[1].headers.X-Ok: value must not contain line breaks
pipelines[0].stages[0].actions[1].template: template: template:1: unclosed action
pipelines[0].stages[0].actions[2].webhook_url: must be a Bitrix24 inbound webhook URL, like https://portal.bitrix24.com/rest/1/abc123/
pipelines[0].stages[0].actions[2].entity_type_id: required for mode update (1 lead, 2 deal, or a smart process type id)
pipelines[0].stages[0].actions[2].stage_map: no Bitrix24 stage for stage "won" (set stage_id, or add won to stage_map)
pipelines[0].stages[0].actions[3].mode: stage_id and stage_map need mode: update
pipelines[0].stages[0].actions[3].code: required for mode trigger (the code of the Bitrix24 webhook trigger)
pipelines[0].stages[0].actions[3].target_type: required unless entity_type_id is 1 (LEAD) or 2 (DEAL)
pipelines[0].stages[0].actions[4].mode: must be update or trigger, not "sync"
pipelines[0].stages[0].actions[5].field: required
pipelines[0].stages[0].actions[5].value: template: value:1: function "bad" not defined
pipelines[0].stages[0].actions[6].after: must not be negative
pipelines[0].stages[0].actions[6].timeout: not a setting of set_responsible actions
pipelines[0].stages[0].actions[6].timeout: must be between 0 and 5m0s
pipelines[0].stages[0].actions[6].user: required`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// Decoded settings are the type's, and secrets stay out of JSON.
	a := ps[0].Stages[0].Actions[8]
	w, ok := a.Settings.(*Webhook)
	if !ok || w.URL != "https://example.com/hook" || w.Secret != "whsec_c2VjcmV0" {
		t.Fatalf("webhook settings = %#v", a.Settings)
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"webhook","url":"https://example.com/hook","template":"{\"id\": {{json .Item.ID}}}"}`; string(b) != want {
		t.Fatalf("JSON = %s, want %s", b, want)
	}
	if l := ps[0].Stages[0].Actions[7]; l.After != time.Minute || l.Settings.(*engine.LogSettings).Message != "ok" {
		t.Fatalf("log action = %+v", l)
	}
}

// Every kind's settings type validates and has its keys.
func TestKindsHaveSettings(t *testing.T) {
	for name, k := range Kinds() {
		if k.NewSettings == nil || len(k.SettingKeys()) == 0 {
			t.Errorf("kind %s has no settings", name)
		}
	}
}

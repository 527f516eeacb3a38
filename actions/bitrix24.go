package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/validate"
)

// Bitrix24 REST methods the bitrix24 action calls through the portal's
// inbound webhook (https://<portal>/rest/<user>/<token>/<method>).
const (
	Bitrix24ItemUpdate = "crm.item.update"
	Bitrix24Trigger    = "crm.automation.trigger"
)

// bitrix24Retryable are Bitrix24 error codes that mean "not now".
var bitrix24Retryable = map[string]bool{
	"QUERY_LIMIT_EXCEEDED": true, "INTERNAL_SERVER_ERROR": true, "OPERATION_TIME_LIMIT": true,
}

// Bitrix24 are the settings of bitrix24.
type Bitrix24 struct {
	// WebhookURL is the portal's inbound webhook, a secret.
	WebhookURL   string            `yaml:"webhook_url" json:"-"`
	Mode         string            `yaml:"mode" json:"mode,omitempty"` // update (default) or trigger
	EntityTypeID int               `yaml:"entity_type_id" json:"entity_type_id,omitempty"`
	IDField      string            `yaml:"id_field" json:"id_field,omitempty"`
	StageID      string            `yaml:"stage_id" json:"stage_id,omitempty"`
	StageMap     map[string]string `yaml:"stage_map" json:"stage_map,omitempty"`
	Code         string            `yaml:"code" json:"code,omitempty"`
	TargetType   string            `yaml:"target_type" json:"target_type,omitempty"`
}

// Bitrix24 modes.
const (
	Bitrix24ModeUpdate  = "update"
	Bitrix24ModeTrigger = "trigger"
)

// DefaultBitrix24IDField is the item field holding the Bitrix24 item id.
const DefaultBitrix24IDField = "bitrix24_id"

var targetType = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// Stage is the Bitrix24 stageId an update sets when the item enters
// stage: stage_id, else the stage_map entry.
func (a *Bitrix24) Stage(stage string) string {
	if a.StageID != "" {
		return a.StageID
	}
	return a.StageMap[stage]
}

// Target is the TYPENAME of crm.automation.trigger's target (TYPENAME_ID):
// target_type, else LEAD for entity type 1 and DEAL for 2.
func (a *Bitrix24) Target() string {
	if a.TargetType != "" {
		return a.TargetType
	}
	return map[int]string{1: "LEAD", 2: "DEAL"}[a.EntityTypeID]
}

// Validate implements engine.ActionSettings.
func (a *Bitrix24) Validate(stage string) validate.Errors {
	var errs validate.Errors
	if engine.CheckURL(&errs, "webhook_url", a.WebhookURL) && !strings.Contains(a.WebhookURL, "/rest/") {
		errs.Add("webhook_url", "must be a Bitrix24 inbound webhook URL, like https://portal.bitrix24.com/rest/1/abc123/")
	}
	if a.EntityTypeID < 0 {
		errs.Add("entity_type_id", "must be positive")
	}
	switch a.Mode {
	case "", Bitrix24ModeUpdate:
		if a.Code != "" || a.TargetType != "" {
			errs.Add("mode", "code and target_type need mode: trigger")
		}
		if a.EntityTypeID == 0 {
			errs.Add("entity_type_id", "required for mode update (1 lead, 2 deal, or a smart process type id)")
		}
		if a.Stage(stage) == "" {
			errs.Add("stage_map", "no Bitrix24 stage for stage %q (set stage_id, or add %s to stage_map)", stage, stage)
		}
	case Bitrix24ModeTrigger:
		if a.StageID != "" || len(a.StageMap) > 0 {
			errs.Add("mode", "stage_id and stage_map need mode: update")
		}
		if a.Code == "" {
			errs.Add("code", "required for mode trigger (the code of the Bitrix24 webhook trigger)")
		}
		switch tt := a.Target(); {
		case tt == "":
			errs.Add("target_type", "required unless entity_type_id is 1 (LEAD) or 2 (DEAL)")
		case !targetType.MatchString(tt):
			errs.Add("target_type", "must be upper-case letters, digits and _, like DEAL, not %q", tt)
		}
	default:
		errs.Add("mode", "must be update or trigger, not %q", a.Mode)
	}
	return errs
}

var bitrix24Kind = newKind(true, (*Runner).runBitrix24)

// runBitrix24 mirrors the stage entry into a Bitrix24 portal: mode update
// sets the item's stage (crm.item.update with entityTypeId, id and
// fields.stageId), mode trigger fires a webhook trigger set up in the
// portal's automation (crm.automation.trigger with target TYPENAME_ID and
// code). The Bitrix24 item id is the item field id_field (default
// bitrix24_id).
func (r *Runner) runBitrix24(ctx context.Context, in engine.ActionInput, a *Bitrix24) error {
	field := a.IDField
	if field == "" {
		field = DefaultBitrix24IDField
	}
	raw := strings.TrimSpace(in.Item.Fields[field])
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return engine.Permanent(fmt.Errorf("bitrix24: item %s has no Bitrix24 id in field %q (got %q)", in.Item.ID, field, raw))
	}
	var method string
	var params any
	switch a.Mode {
	case Bitrix24ModeTrigger:
		method = Bitrix24Trigger
		params = map[string]any{"target": a.Target() + "_" + strconv.FormatInt(id, 10), "code": a.Code}
	default:
		stage := a.Stage(in.Stage.ID)
		if stage == "" {
			return engine.Permanent(fmt.Errorf("bitrix24: no Bitrix24 stage for stage %s", in.Stage.ID))
		}
		method = Bitrix24ItemUpdate
		params = map[string]any{"entityTypeId": a.EntityTypeID, "id": id, "fields": map[string]string{"stageId": stage}}
	}
	if err := r.callBitrix24(ctx, in, a, method, params); err != nil {
		return fmt.Errorf("bitrix24 %s %s: %w", portal(a.WebhookURL), method, err)
	}
	return nil
}

// callBitrix24 POSTs params as JSON to the method and checks the answer:
// {"result": …} is success; {"error": …} or a non-2xx status is a failure,
// retried for 429, 5xx and Bitrix24's "not now" codes.
func (r *Runner) callBitrix24(ctx context.Context, in engine.ActionInput, a *Bitrix24, method string, params any) error {
	body, err := json.Marshal(params)
	if err != nil {
		return engine.Permanent(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set(HeaderIdempotencyKey, in.Key())
	target := strings.TrimRight(a.WebhookURL, "/") + "/" + method
	ctx, cancel := context.WithTimeout(ctx, r.timeout(in.Action))
	defer cancel()
	resp, err := send(ctx, r.http, http.MethodPost, target, h, body)
	if err != nil {
		return err
	}
	var ans struct {
		Result      json.RawMessage `json:"result"`
		Error       string          `json:"error"`
		Description string          `json:"error_description"`
	}
	jerr := json.Unmarshal(resp.body, &ans)
	ok2xx := resp.status >= 200 && resp.status <= 299
	switch {
	case ans.Error != "":
		msg := fmt.Errorf("%d %s: %s", resp.status, ans.Error, ans.Description)
		if bitrix24Retryable[ans.Error] || retryableStatus(resp.status) {
			return &engine.ActionError{Err: msg, RetryAfter: retryAfter(resp.header.Get("Retry-After"), r.now())}
		}
		return engine.Permanent(msg)
	case !ok2xx:
		return statusError(resp, r.now())
	case jerr != nil || len(ans.Result) == 0:
		return errors.New("answer without a result: " + snippet(resp.body))
	}
	return nil
}

// portal is the host of a Bitrix24 webhook URL: the rest of it is a secret.
func portal(webhookURL string) string {
	u, err := url.Parse(webhookURL)
	if err != nil {
		return "(bad url)"
	}
	return u.Host
}

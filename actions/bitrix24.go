package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/stagegate/stagegate/engine"
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

// runBitrix24 mirrors the stage entry into a Bitrix24 portal: mode update
// sets the item's stage (crm.item.update with entityTypeId, id and
// fields.stageId), mode trigger fires a webhook trigger set up in the
// portal's automation (crm.automation.trigger with target TYPENAME_ID and
// code). The Bitrix24 item id is the item field id_field (default
// bitrix24_id).
func (r *Runner) runBitrix24(ctx context.Context, in engine.ActionInput) error {
	a := in.Action
	field := a.IDField
	if field == "" {
		field = engine.DefaultBitrix24IDField
	}
	raw := strings.TrimSpace(in.Item.Fields[field])
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return engine.Permanent(fmt.Errorf("bitrix24: item %s has no Bitrix24 id in field %q (got %q)", in.Item.ID, field, raw))
	}
	var method string
	var params any
	switch a.Mode {
	case engine.Bitrix24Trigger:
		method = Bitrix24Trigger
		params = map[string]any{"target": a.Bitrix24TargetType() + "_" + strconv.FormatInt(id, 10), "code": a.Code}
	default:
		stage := a.Bitrix24Stage(in.Stage.ID)
		if stage == "" {
			return engine.Permanent(fmt.Errorf("bitrix24: no Bitrix24 stage for stage %s", in.Stage.ID))
		}
		method = Bitrix24ItemUpdate
		params = map[string]any{"entityTypeId": a.EntityTypeID, "id": id, "fields": map[string]string{"stageId": stage}}
	}
	if err := r.callBitrix24(ctx, in, method, params); err != nil {
		return fmt.Errorf("bitrix24 %s %s: %w", portal(a.WebhookURL), method, err)
	}
	return nil
}

// callBitrix24 POSTs params as JSON to the method and checks the answer:
// {"result": …} is success; {"error": …} or a non-2xx status is a failure,
// retried for 429, 5xx and Bitrix24's "not now" codes.
func (r *Runner) callBitrix24(ctx context.Context, in engine.ActionInput, method string, params any) error {
	body, err := json.Marshal(params)
	if err != nil {
		return engine.Permanent(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set(HeaderIdempotencyKey, in.Key())
	target := strings.TrimRight(in.Action.WebhookURL, "/") + "/" + method
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

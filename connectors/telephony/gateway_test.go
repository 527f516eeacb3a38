package telephony_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/gateway/gatewaytest"

	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/connectors/telephony"
	"github.com/stagegate/stagegate/gateway"
)

const gwConfig = `
listen: 127.0.0.1:0
public_url: https://calls.example.com   # the proxy in front; Twilio signs this URL
store: {driver: bolt, path: DBPATH}
api:
  tokens: ["api-token-0123456789"]
pipelines:
  - id: sales
    stages:
      - id: new
      - id: called
        triggers:
          - {type: call.inbound, line: "+1 (555) 000-2222"}
      - id: missed
        triggers:
          - {type: call.missed, line: "(555) 000-1111"}
connectors:
  - name: tel
    type: telephony
    create: {pipeline: sales, stage: new}
    provider: twilio
    auth_token: "${TWILIO_AUTH_TOKEN}"
    settle: 0s
`

// TestThroughGateway runs a whole gateway: signed Twilio callbacks posted
// to /in/tel through a "proxy" (public_url differs from the listener),
// the engine creating a lead and moving it, and the call read back through
// the authenticated API.
func TestThroughGateway(t *testing.T) {
	const token = "twilio-e2e-token"
	src := strings.Replace(gwConfig, "DBPATH", filepath.Join(t.TempDir(), "sg.db"), 1)
	cfg, err := config.Parse([]byte(src), gateway.Kinds, gateway.ActionTypes(), func(k string) (string, bool) {
		return token, k == "TWILIO_AUTH_TOKEN"
	})
	if err != nil {
		t.Fatal(err)
	}
	base := gatewaytest.Start(t, cfg, gateway.Options{Instance: "tel-test", ShutdownTimeout: 5 * time.Second}).Base

	for seq, status := range []string{"ringing", "no-answer"} {
		p := url.Values{"CallSid": {"CA100"}, "CallStatus": {status}, "Direction": {"inbound"},
			"From": {"+12025550123"}, "To": {"+15550001111"}, "SequenceNumber": {string(rune('0' + seq))}}
		req, _ := http.NewRequest(http.MethodPost, base+"/in/tel", strings.NewReader(p.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(telephony.TwilioSignatureHeader, telephony.TwilioSignature(token, "https://calls.example.com/in/tel", p))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s: %d", status, resp.StatusCode)
		}
	}

	get := func(path, tok string, out any) int {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil && resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s: %v: %s", path, err, b)
			}
		}
		return resp.StatusCode
	}
	var items struct {
		Items []struct{ Stage string } `json:"items"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if get("/api/v1/items?pipeline=sales", "api-token-0123456789", &items) == http.StatusOK &&
			len(items.Items) == 1 && items.Items[0].Stage == "missed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lead moved to missed: %+v", items)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var call telephony.CallView
	if code := get("/api/v1/calls/CA100", "api-token-0123456789", &call); code != http.StatusOK {
		t.Fatalf("GET call: %d", code)
	}
	if call.Outcome != telephony.OutcomeMissed || len(call.Callbacks) != 2 || len(call.Events) != 2 || call.Line != "+15550001111" {
		t.Errorf("call %+v", call)
	}
	if code := get("/api/v1/calls/CA100", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET call without a token: %d", code)
	}
	if code := get("/api/v1/events/tel:CA100:missed", "api-token-0123456789", nil); code != http.StatusOK {
		t.Errorf("GET missed event: %d", code)
	}
}

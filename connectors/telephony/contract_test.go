package telephony

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/connectors/connectortest"
)

// Both providers keep the push-connector contract; Twilio's answer is a
// bodyless 204.
func TestContract(t *testing.T) {
	build := func(t *testing.T, in connectors.Intake, provider string) *env {
		cfg := NewConfig()
		cfg.Provider, cfg.Settle, cfg.MaxBody = provider, 0, 4<<10
		cfg.AuthToken, cfg.Secret = testToken, testSecret
		if provider == ProviderTwilio {
			cfg.Secret = ""
		} else {
			cfg.AuthToken = ""
		}
		if errs := cfg.Validate(); len(errs) > 0 {
			t.Fatal(errs)
		}
		e := &env{rec: newFakeRecords(), clk: newClock(), name: "tel"}
		deps := connectors.Deps{Intake: in, Now: e.clk.Now, PublicURL: testPublicURL, Records: e.rec, Region: "US"}
		c, err := Kind.New(connectors.Base{Name: e.name, Type: "telephony"}, cfg, deps)
		if err != nil {
			t.Fatal(err)
		}
		e.c = c.(*Connector)
		if err := e.c.initCursor(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.sigBase = testPublicURL + "/in/" + e.name
		return e
	}
	t.Run("generic", func(t *testing.T) {
		connectortest.RunPush(t, connectortest.Setup{
			New: func(t *testing.T, in connectors.Intake) http.Handler { return build(t, in, ProviderGeneric).c },
			Input: func(_ *testing.T, n int) *http.Request {
				id := strconv.Itoa(n)
				return genericRequest("msg_"+id, t0, `{"call_id":"c`+id+`","direction":"inbound","from":"`+customer+
					`","to":"`+lineMain+`","status":"completed","duration_s":30}`)
			},
			MaxBody: 4 << 10,
		})
	})
	t.Run("twilio", func(t *testing.T) {
		var e *env
		connectortest.RunPush(t, connectortest.Setup{
			New: func(t *testing.T, in connectors.Intake) http.Handler {
				e = build(t, in, ProviderTwilio)
				return e.c
			},
			Input: func(_ *testing.T, n int) *http.Request {
				return e.twilioRequest("/", twilio("CallSid", "CA"+strconv.Itoa(n), "CallStatus", "completed",
					"Direction", "inbound", "From", customer, "To", lineMain, "CallDuration", "30"))
			},
			AcceptStatus: http.StatusNoContent, NoDuplicateFlag: true,
			MaxBody: 4 << 10,
		})
	})
}

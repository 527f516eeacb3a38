package webhook

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/connectors/connectortest"
)

// The webhook and forms connectors keep the push-connector contract.
func TestContract(t *testing.T) {
	t.Run("webhook", func(t *testing.T) {
		connectortest.RunPush(t, connectortest.Setup{
			New: func(t *testing.T, in connectors.Intake) http.Handler {
				return newTestWebhook(t, in, newClock())
			},
			Input: func(_ *testing.T, n int) *http.Request {
				return signed("/", "msg_"+strconv.Itoa(n), t0, okBody)
			},
			MaxBody: 4 << 10,
		})
	})
	t.Run("forms", func(t *testing.T) {
		connectortest.RunPush(t, connectortest.Setup{
			New: func(t *testing.T, in connectors.Intake) http.Handler {
				return newTestForms(t, in, newClock(), nil)
			},
			Input: func(_ *testing.T, n int) *http.Request {
				return postForm("/contact", url.Values{"email": {"ann@client.test"}, SubmissionIDField: {"s" + strconv.Itoa(n)}})
			},
			MaxBody: 2048,
		})
	})
}

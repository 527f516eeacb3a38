package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/fakes"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/internal/stdwebhooks"
	"github.com/stagegate/stagegate/normalize"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2026, 3, 1, 10, 15, 30, 0, time.UTC)

// testSecret is a Standard Webhooks secret; testKey is what it decodes to.
var (
	testKey    = []byte("stagegate-test-key-0123456789")
	testSecret = stdwebhooks.SecretPrefix + base64.StdEncoding.EncodeToString(testKey)
)

// clock and fakeIntake are the shared test doubles.
type (
	clock      = fakes.Clock
	fakeIntake = fakes.Intake
)

func newClock() *clock { return fakes.NewClock(t0) }

func testDeps(in connectors.Intake, clk *clock) connectors.Deps {
	return connectors.Deps{Intake: in, Now: clk.Now, PublicURL: "http://127.0.0.1:8080"}
}

// signHeaders sets the Standard Webhooks headers of r for body.
func signHeaders(r *http.Request, secret, id string, ts time.Time, body []byte) {
	r.Header.Set(stdwebhooks.HeaderID, id)
	r.Header.Set(stdwebhooks.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	r.Header.Set(stdwebhooks.HeaderSignature, stdwebhooks.Sign(secret, id, ts, body))
}

// serve runs one request through h.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// decodeAccepted reads a 200 answer.
func decodeAccepted(t *testing.T, w *httptest.ResponseRecorder) connectors.Accepted {
	t.Helper()
	var a connectors.Accepted
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.EventID == "" {
		t.Fatalf("answer %d %q is not an Accepted body (%v)", w.Code, w.Body.String(), err)
	}
	return a
}

// errorCode reads the code of an error answer.
func errorCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var e httpx.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("answer %d %q is not an error body: %v", w.Code, w.Body.String(), err)
	}
	return e.Error.Code
}

// nopIntake accepts everything and keeps nothing, so a benchmark measures
// the connector alone.
type nopIntake struct{}

func (nopIntake) Submit(_ context.Context, ev *normalize.Event) (connectors.Result, error) {
	return connectors.Result{EventID: ev.ID}, nil
}

func (nopIntake) Reject(string, string) {}

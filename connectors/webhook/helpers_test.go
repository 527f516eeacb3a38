package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/normalize"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2026, 3, 1, 10, 15, 30, 0, time.UTC)

// testSecret is a Standard Webhooks secret; testKey is what it decodes to.
var (
	testKey    = []byte("stagegate-test-key-0123456789")
	testSecret = SecretPrefix + base64.StdEncoding.EncodeToString(testKey)
)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeIntake records submitted events, answers Duplicate for an id seen
// before, and fails with connectors.ErrUnavailable while down.
type fakeIntake struct {
	mu      sync.Mutex
	down    bool
	seen    map[string]bool
	events  []*normalize.Event
	rejects []string
}

func (f *fakeIntake) Submit(_ context.Context, ev *normalize.Event) (connectors.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return connectors.Result{}, fmt.Errorf("fake store: %w", connectors.ErrUnavailable)
	}
	if f.seen[ev.ID] {
		return connectors.Result{EventID: ev.ID, Duplicate: true}, nil
	}
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	f.seen[ev.ID] = true
	f.events = append(f.events, ev)
	return connectors.Result{EventID: ev.ID}, nil
}

func (f *fakeIntake) Reject(connector, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejects = append(f.rejects, connector+"/"+reason)
}

func (f *fakeIntake) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeIntake) Events() []*normalize.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

func (f *fakeIntake) Rejects() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rejects)
}

func testDeps(in connectors.Intake, clk *clock) connectors.Deps {
	return connectors.Deps{Intake: in, Now: clk.Now, PublicURL: "http://127.0.0.1:8080"}
}

// signHeaders sets the Standard Webhooks headers of r for body.
func signHeaders(r *http.Request, secret, id string, ts time.Time, body []byte) {
	r.Header.Set(HeaderID, id)
	r.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	r.Header.Set(HeaderSignature, Sign(secret, id, ts, body))
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

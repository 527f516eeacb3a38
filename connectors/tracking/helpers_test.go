package tracking

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/fakes"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/store"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2026, 3, 1, 10, 15, 30, 0, time.UTC)

const (
	testKey    = "tracking-test-key-0123456789"
	testPublic = "http://gw.test"
)

// clock and fakeIntake are the shared test doubles.
type (
	clock      = fakes.Clock
	fakeIntake = fakes.Intake
)

func newClock() *clock { return fakes.NewClock(t0) }

// fakeRecords is the shared in-memory store.Records, with TTLs on the
// test clock.
type fakeRecords = fakes.Records

func newFakeRecords(now func() time.Time) *fakeRecords { return fakes.NewRecords(now) }

// env is a tracker with its fakes, and its routes on an httptest server.
type env struct {
	t       *testing.T
	tr      *Tracker
	clk     *clock
	in      *fakeIntake
	recs    store.Records
	fake    *fakeRecords // nil when recs is a real store
	srv     *httptest.Server
	noRedir *http.Client
	logs    *countHandler
}

// countHandler counts log records by level.
type countHandler struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countHandler) WithGroup(string) slog.Handler            { return h }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[r.Level]++
	return nil
}

// count returns how many records of level were logged.
func (h *countHandler) count(level slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[level]
}

// newEnv builds a tracker on fake records (or on recs when given), with
// cfg adjusted by tweak, served by a real HTTP server.
func newEnv(t *testing.T, recs store.Records, tweak func(*Config)) *env {
	t.Helper()
	return newEnvClock(t, newClock(), recs, tweak)
}

// newEnvClock is newEnv on the clock clk.
func newEnvClock(t *testing.T, clk *clock, recs store.Records, tweak func(*Config)) *env {
	t.Helper()
	return newEnvIntake(t, clk, &fakeIntake{}, recs, tweak)
}

// newEnvIntake is newEnvClock feeding the intake in.
func newEnvIntake(t *testing.T, clk *clock, in *fakeIntake, recs store.Records, tweak func(*Config)) *env {
	t.Helper()
	e := &env{t: t, clk: clk, in: in, recs: recs, logs: &countHandler{n: map[slog.Level]int{}}}
	if recs == nil {
		e.fake = newFakeRecords(e.clk.Now)
		e.recs = e.fake
	}
	cfg := NewConfig()
	cfg.Keys = []string{testKey}
	if tweak != nil {
		tweak(cfg)
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatalf("config: %v", errs)
	}
	deps := connectors.Deps{
		Logger: slog.New(e.logs), Intake: e.in, Now: e.clk.Now, PublicURL: testPublic, Records: e.recs,
	}
	tr, err := New(connectors.Base{Name: "track", Type: "tracking"}, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e.tr = tr
	mux := http.NewServeMux()
	tr.PublicRoutes(mux)
	tr.APIRoutes(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.noRedir = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return e
}

// prepare creates a tracked message through the API.
func (e *env) prepare(req string) *Prepared {
	e.t.Helper()
	resp := e.do("POST", "/api/v1/messages", req, nil)
	if resp.code != http.StatusCreated {
		e.t.Fatalf("prepare: %d %s", resp.code, resp.body)
	}
	var p Prepared
	if err := json.Unmarshal([]byte(resp.body), &p); err != nil {
		e.t.Fatal(err)
	}
	return &p
}

// answer is a read response.
type answer struct {
	code   int
	header http.Header
	body   string
}

// do sends a request to the test server (redirects are not followed).
func (e *env) do(method, path, body string, hdr map[string]string) answer {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if _, ok := hdr["User-Agent"]; !ok {
		req.Header.Set("User-Agent", humanUA)
	}
	resp, err := e.noRedir.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// path returns the path of a gateway URL.
func path(u string) string { return strings.TrimPrefix(u, testPublic) }

// humanUA is a desktop browser.
const humanUA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"

const basicMessage = `{"item_id":"i_1","from":"Bob <bob@seller.test>","to":"ann@client.test","subject":"Hello",
 "html":"<html><body><p>See <a href=\"https://example.com/pricing\">pricing</a> and <a href=\"https://example.com/demo\">demo</a></p></body></html>"}`

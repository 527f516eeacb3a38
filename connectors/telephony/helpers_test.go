package telephony

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/fakes"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/internal/stdwebhooks"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2026, 3, 1, 10, 15, 30, 0, time.UTC)

const (
	testToken     = "twilio-test-auth-token"
	testPublicURL = "https://gw.example.com"
	lineMain      = "+15550001111"
	lineSupport   = "+15550002222"
	customer      = "+12025550123"
)

var (
	testKey    = []byte("stagegate-telephony-test-key")
	testSecret = stdwebhooks.SecretPrefix + base64.StdEncoding.EncodeToString(testKey)
)

// clock and fakeIntake are the shared test doubles.
type (
	clock      = fakes.Clock
	fakeIntake = fakes.Intake
)

func newClock() *clock { return fakes.NewClock(t0) }

// types lists the types of events, in order.
func types(evs []*normalize.Event) []normalize.Type {
	out := []normalize.Type{}
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

// nopIntake accepts everything and keeps nothing.
type nopIntake struct{}

func (nopIntake) Submit(_ context.Context, ev *normalize.Event) (connectors.Result, error) {
	return connectors.Result{EventID: ev.ID}, nil
}

func (nopIntake) Reject(string, string) {}

// fakeRecords is the shared in-memory store.Records, without TTLs.
type fakeRecords = fakes.Records

func newFakeRecords() *fakeRecords { return fakes.NewRecords(nil) }

// keys lists every record and list key of f but the sweep cursor: what
// callbacks recorded.
func keys(f *fakeRecords) []string {
	var ks []string
	for _, k := range f.Keys() {
		if !strings.HasSuffix(k, "/sweep") {
			ks = append(ks, k)
		}
	}
	return ks
}

// storedCall returns the stored state of call id of connector name in f.
func storedCall(t testing.TB, f *fakeRecords, name, id string) (Call, bool) {
	t.Helper()
	r, ok := f.Peek(callKey(name, id))
	if !ok {
		return Call{}, false
	}
	var c Call
	if err := json.Unmarshal(r.Value, &c); err != nil {
		t.Fatal(err)
	}
	return c, true
}

// env is a connector under test with its fakes.
type env struct {
	c       *Connector
	in      *fakeIntake
	rec     store.Records
	fake    *fakeRecords // rec, when it is the fake
	clk     *clock
	name    string
	sigBase string
}

// newEnv builds a connector named name of the given provider over fake
// records; edit changes the config before validation.
func newEnv(t testing.TB, provider string, edit func(*Config)) *env {
	t.Helper()
	f := newFakeRecords()
	e := newEnvWith(t, "tel", provider, f, edit)
	e.fake = f
	return e
}

// newEnvWith builds a connector over rec.
func newEnvWith(t testing.TB, name, provider string, rec store.Records, edit func(*Config)) *env {
	t.Helper()
	cfg := NewConfig()
	cfg.Provider = provider
	cfg.Settle = 0
	if provider == ProviderTwilio {
		cfg.AuthToken = testToken
	} else {
		cfg.Secret = testSecret
	}
	if edit != nil {
		edit(cfg)
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	e := &env{in: &fakeIntake{}, rec: rec, clk: newClock(), name: name}
	deps := connectors.Deps{Intake: e.in, Now: e.clk.Now, PublicURL: testPublicURL, Records: rec, Region: "US"}
	conn, err := Kind.New(connectors.Base{Name: e.name, Type: "telephony"}, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e.c = conn.(*Connector)
	if err := e.c.initCursor(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.sigBase = testPublicURL + "/in/" + e.name
	return e
}

// twilio builds Twilio callback parameters from key, value pairs.
func twilio(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// twilioRequest builds a POST of params to path (with query), signed for
// the URL Twilio would have used.
func (e *env) twilioRequest(path string, params url.Values) *http.Request {
	body := params.Encode()
	r := httptest.NewRequest(http.MethodPost, "http://10.0.0.5:8080"+path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	u := e.sigBase
	if p, _, _ := strings.Cut(path, "?"); p != "/" {
		u += p
	}
	if _, q, ok := strings.Cut(path, "?"); ok {
		u += "?" + q
	}
	r.Header.Set(TwilioSignatureHeader, TwilioSignature(testToken, u, params))
	return r
}

// postTwilio sends one signed Twilio callback and returns the answer.
func (e *env) postTwilio(t testing.TB, params url.Values) *httptest.ResponseRecorder {
	t.Helper()
	return serve(e.c, e.twilioRequest("/", params))
}

// genericRequest builds a POST of body signed with Standard Webhooks.
func genericRequest(id string, ts time.Time, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(stdwebhooks.HeaderID, id)
	r.Header.Set(stdwebhooks.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	r.Header.Set(stdwebhooks.HeaderSignature, stdwebhooks.Sign(testSecret, id, ts, []byte(body)))
	return r
}

// serve runs one request through h.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// errorCode reads the code of an error answer.
func errorCode(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	var e httpx.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("answer %d %q is not an error body: %v", w.Code, w.Body.String(), err)
	}
	return e.Error.Code
}

// intakeMode says which intake a test's connector gets: stepwise makes
// every step on its own (as on Redis); putting records events in the
// step of the call's write (connectors.PutIntake, as on bolt).
type intakeMode bool

const (
	stepwise intakeMode = false
	putting  intakeMode = true
)

func (m intakeMode) String() string {
	if m == putting {
		return "put"
	}
	return "steps"
}

// on gives e the intake of mode m and returns e.
func (m intakeMode) on(e *env) *env {
	if m == putting {
		e.in.PutWith(e.rec)
	}
	return e
}

// eachIntake runs f as a subtest per intake mode.
func eachIntake(t *testing.T, f func(t *testing.T, m intakeMode)) {
	for _, m := range []intakeMode{stepwise, putting} {
		t.Run(m.String(), func(t *testing.T) { f(t, m) })
	}
}

// readCounter is store.Records that counts the calls' reads.
type readCounter struct {
	store.Records
	reads atomic.Int64
}

func (r *readCounter) GetRecord(ctx context.Context, key string) (store.Record, error) {
	r.reads.Add(1)
	return r.Records.GetRecord(ctx, key)
}

// postAllThenSettle posts every callback of all at once (one goroutine
// each), then moves the clock past settle and sweeps.
func postAllThenSettle(t *testing.T, e *env, all []url.Values) {
	t.Helper()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Go(func() {
			if w := e.postTwilio(t, p); w.Code != http.StatusNoContent {
				t.Errorf("%d %s", w.Code, w.Body)
			}
		})
	}
	wg.Wait()
	e.clk.Add(DefaultSettle + 2*SettleBucket)
	if err := e.c.sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
}

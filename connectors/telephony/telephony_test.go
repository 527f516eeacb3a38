package telephony

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// runHTTP sends the steps of a sequence through the connector's handler
// (ticks run the sweeper, two buckets later so that the due bucket is
// wholly past) and returns the events the intake received.
func runHTTP(t *testing.T, e *env, tc seqCase) []*normalize.Event {
	t.Helper()
	for i, s := range tc.steps {
		e.clk.Set(t0.Add(s.after))
		switch {
		case s.tick:
			e.clk.Add(2 * SettleBucket)
			if err := e.c.sweep(context.Background()); err != nil {
				t.Fatalf("step %d: sweep: %v", i, err)
			}
		case s.gen != "":
			w := serve(e.c, genericRequest("msg_"+normalize.Hash(s.gen)[:8], e.clk.Now(), s.gen))
			if w.Code != http.StatusOK {
				t.Fatalf("step %d: %d %s", i, w.Code, w.Body)
			}
		default:
			if w := e.postTwilio(t, s.tw); w.Code != http.StatusNoContent {
				t.Fatalf("step %d: %d %s", i, w.Code, w.Body)
			}
		}
	}
	return e.in.Events()
}

func envFor(t *testing.T, tc seqCase) *env {
	provider := ProviderTwilio
	if tc.steps[0].gen != "" {
		provider = ProviderGeneric
	}
	e := newEnv(t, provider, nil)
	o := foldOptions(tc)
	e.c.opts.Settle, e.c.opts.VoicemailIsMissed, e.c.opts.Agents = o.Settle, o.VoicemailIsMissed, o.Agents
	return e
}

// TestSequencesThroughHandler runs every sequence of fold_test.go through
// HTTP, the fake store and the sweeper: the same events, once each.
func TestSequencesThroughHandler(t *testing.T) {
	eachIntake(t, func(t *testing.T, m intakeMode) { sequencesThroughHandler(t, m) })
}

func sequencesThroughHandler(t *testing.T, m intakeMode) {
	for _, tc := range sequences {
		t.Run(tc.name, func(t *testing.T) {
			e := m.on(envFor(t, tc))
			evs := runHTTP(t, e, tc)
			if got := types(evs); !slices.Equal(got, tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
			if e.in.Submits() != len(evs) {
				t.Errorf("%d submits for %d events", e.in.Submits(), len(evs))
			}
			root := "CA100"
			if c := parseStep(t, 0, tc.steps[0], newNumbers("US")); c != nil {
				root = c.RootID()
			}
			call, ok := storedCall(t, e.fake, e.name, root)
			if !ok || call.Outcome != tc.outcome || call.Reason != tc.reason {
				t.Errorf("stored call %v: outcome %q reason %q, want %q %q", ok, call.Outcome, call.Reason, tc.outcome, tc.reason)
			}
		})
	}
}

func TestDuplicateCallbackRecordedOnce(t *testing.T) {
	eachIntake(t, func(t *testing.T, m intakeMode) {
		e := m.on(newEnv(t, ProviderTwilio, nil))
		for range 5 {
			if w := e.postTwilio(t, in("ringing", 0)); w.Code != http.StatusNoContent {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
		}
		if n := e.fake.ListLen(callbacksKey("tel", "CA100")); n != 1 {
			t.Errorf("%d callbacks stored, want 1", n)
		}
		if evs := e.in.Events(); len(evs) != 1 || e.in.Submits() != 1 {
			t.Errorf("events %v after %d submits", types(evs), e.in.Submits())
		}

		g := m.on(newEnv(t, ProviderGeneric, nil))
		body := `{"call_id":"c1","direction":"inbound","from":"+12025550123","to":"+15550001111","status":"ringing"}`
		for i := range 3 {
			w := serve(g.c, genericRequest("msg_1", g.clk.Now(), body))
			var a Answer
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || w.Code != http.StatusOK {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if a.Duplicate != (i > 0) || a.CallID != "c1" || a.CallbackID != "msg_1" || a.Outcome != OutcomeActive ||
				len(a.Events) != map[bool]int{true: 1, false: 0}[i == 0] {
				t.Errorf("answer %d: %+v", i, a)
			}
		}
	})
}

// TestIntakeDownWritesNoState: when the intake cannot make the events
// durable the provider gets 503 and the call state is not written, so the
// retry derives the events again.
func TestIntakeDownWritesNoState(t *testing.T) {
	eachIntake(t, func(t *testing.T, m intakeMode) {
		e := m.on(newEnv(t, ProviderTwilio, nil))
		e.in.SetDown(true)
		w := e.postTwilio(t, in("no-answer", 1))
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || errorCode(t, w) != "unavailable" {
			t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
		}
		if _, ok := storedCall(t, e.fake, "tel", "CA100"); ok {
			t.Fatal("call state written although its events are not durable")
		}
		e.in.SetDown(false)
		if w := e.postTwilio(t, in("no-answer", 1)); w.Code != http.StatusNoContent {
			t.Fatalf("retry: %d %s", w.Code, w.Body)
		}
		if got := types(e.in.Events()); !slices.Equal(got, []normalize.Type{inbound, missed}) {
			t.Errorf("events %v", got)
		}
	})
}

// TestRetryAfterIntakeDownIsNew: a callback refused because the intake was
// down is not kept in the call's callback list either, so the provider's
// retry is recorded as new (duplicate false), once, with its event.
func TestRetryAfterIntakeDownIsNew(t *testing.T) {
	eachIntake(t, func(t *testing.T, m intakeMode) {
		g := m.on(newEnv(t, ProviderGeneric, nil))
		body := `{"call_id":"c1","direction":"inbound","from":"+12025550123","to":"+15550001111","status":"ringing"}`
		g.in.SetDown(true)
		if w := serve(g.c, genericRequest("msg_1", g.clk.Now(), body)); w.Code != http.StatusServiceUnavailable {
			t.Fatalf("intake down: %d %s", w.Code, w.Body)
		}
		if n := g.fake.ListLen(callbacksKey("tel", "c1")); n != 0 {
			t.Errorf("%d callbacks kept of a refused callback, want 0", n)
		}
		g.in.SetDown(false)
		w := serve(g.c, genericRequest("msg_1", g.clk.Now(), body))
		var a Answer
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || w.Code != http.StatusOK {
			t.Fatalf("retry: %d %s", w.Code, w.Body)
		}
		if a.Duplicate || len(a.Events) != 1 || a.Events[0].Duplicate {
			t.Errorf("retry answer %+v, want a new callback with one new event", a)
		}
		if n := g.fake.ListLen(callbacksKey("tel", "c1")); n != 1 {
			t.Errorf("%d callbacks stored after the retry, want 1", n)
		}
	})
}

func TestRecordsDown(t *testing.T) {
	eachIntake(t, func(t *testing.T, m intakeMode) {
		e := m.on(newEnv(t, ProviderTwilio, nil))
		e.fake.SetDown(true)
		w := e.postTwilio(t, in("ringing", 0))
		if w.Code != http.StatusServiceUnavailable || errorCode(t, w) != "unavailable" {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if len(e.in.Events()) != 0 {
			t.Error("events submitted while the records are down")
		}
	})
}

// TestConflictRefolds: another writer (a second gateway on the store)
// changes the call between our read and our write; the fold starts again
// from its version.
func TestConflictRefolds(t *testing.T) {
	eachIntake(t, func(t *testing.T, m intakeMode) {
		e := m.on(newEnv(t, ProviderTwilio, nil))
		other := newEnvWith(t, "tel", ProviderTwilio, e.rec, nil)
		other.c.Push, _ = connectors.NewPush("telephony", connectors.Base{Name: "tel"}, connectors.Deps{Intake: e.in, Now: e.clk.Now}, DefaultMaxBody)
		var fired atomic.Bool
		e.fake.SetBeforePut(func(key string) {
			if key == callKey("tel", "CA100") && fired.CompareAndSwap(false, true) {
				if w := other.postTwilio(t, child("CA201", agentA, "in-progress", 1)); w.Code != http.StatusNoContent {
					t.Errorf("concurrent writer: %d %s", w.Code, w.Body)
				}
			}
		})
		if w := e.postTwilio(t, in("ringing", 0)); w.Code != http.StatusNoContent {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		call, _ := storedCall(t, e.fake, "tel", "CA100")
		if len(call.Legs) != 2 || call.Outcome != OutcomeAnswered || len(call.Events) != 1 {
			t.Fatalf("call %+v", call)
		}
		if evs := e.in.Events(); len(evs) != 1 {
			t.Errorf("events %v", types(evs))
		}
		// With events put with the call the cached path lost its check
		// (stepwise, the read-fold-write loop retried instead).
		if n := e.c.refolds.Load(); m == putting && n != 1 {
			t.Errorf("%d refolds, want 1", n)
		}
	})
}

// TestConcurrentCallbacks sends the callbacks of one call (three legs, each
// twice) from many goroutines at once.
func TestConcurrentCallbacks(t *testing.T) {
	eachIntake(t, func(t *testing.T, m intakeMode) {
		e := m.on(newEnv(t, ProviderTwilio, func(c *Config) { c.Settle = DefaultSettle }))
		var all []url.Values
		for range 2 {
			all = append(all,
				in("ringing", 0), in("completed", 1, "CallDuration", "80"),
				child("CA201", agentA, "ringing", 0), child("CA201", agentA, "in-progress", 1), child("CA201", agentA, "completed", 2, "CallDuration", "70"),
				child("CA202", agentB, "ringing", 0), child("CA202", agentB, "canceled", 1))
		}
		rand.New(rand.NewPCG(3, 4)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		postAllThenSettle(t, e, all)
		if got := types(e.in.Events()); !slices.Equal(got, []normalize.Type{inbound}) {
			t.Errorf("events %v", got)
		}
		call, _ := storedCall(t, e.fake, "tel", "CA100")
		if len(call.Legs) != 3 || call.Outcome != OutcomeAnswered {
			t.Errorf("call %+v", call)
		}
		if n := e.fake.ListLen(callbacksKey("tel", "CA100")); n != 7 {
			t.Errorf("%d callbacks stored, want 7", n)
		}
		// One process: each callback took its turn and found the state
		// its predecessor cached.
		if n := e.c.refolds.Load(); n != 0 {
			t.Errorf("%d callbacks lost their compare-and-set in one process, want 0", n)
		}
		if n := e.c.turns.len(); n != 0 {
			t.Errorf("%d calls still hold a turn", n)
		}
	})
}

// TestSweeperTiming: the missed decision is not taken before settle has
// passed, is taken by the sweeper within two buckets after, and once.
func TestSweeperTiming(t *testing.T) {
	e := newEnv(t, ProviderTwilio, func(c *Config) { c.Settle = 10 * time.Second })
	ctx := context.Background()
	if w := e.postTwilio(t, in("no-answer", 0)); w.Code != http.StatusNoContent {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for range 9 {
		e.clk.Add(time.Second)
		if err := e.c.sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if got := types(e.in.Events()); !slices.Equal(got, []normalize.Type{inbound}) {
			t.Fatalf("at %s: events %v", e.clk.Now().Sub(t0), got)
		}
	}
	for e.clk.Now().Before(t0.Add(10*time.Second + 2*SettleBucket)) {
		e.clk.Add(time.Second)
		if err := e.c.sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := types(e.in.Events()); !slices.Equal(got, []normalize.Type{inbound, missed}) {
		t.Fatalf("events %v", got)
	}
	e.clk.Add(time.Minute)
	if err := e.c.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if e.in.Submits() != 2 {
		t.Errorf("%d submits", e.in.Submits())
	}
	call, _ := storedCall(t, e.fake, "tel", "CA100")
	if call.Outcome != OutcomeMissed || !call.SettleAt.IsZero() {
		t.Errorf("call %+v", call)
	}
}

// TestSweeperStoreDown: a sweep that fails leaves its cursor, and the next
// one takes the decision.
func TestSweeperStoreDown(t *testing.T) {
	e := newEnv(t, ProviderTwilio, func(c *Config) { c.Settle = 10 * time.Second })
	ctx := context.Background()
	e.postTwilio(t, in("busy", 0))
	e.clk.Add(30 * time.Second)
	e.in.SetDown(true)
	if err := e.c.sweep(ctx); err == nil {
		t.Fatal("sweep with the intake down: no error")
	}
	e.in.SetDown(false)
	if err := e.c.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := types(e.in.Events()); !slices.Equal(got, []normalize.Type{inbound, missed}) {
		t.Fatalf("events %v", got)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	e := newEnv(t, ProviderTwilio, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.c.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestCallsAPI(t *testing.T) {
	e := newEnv(t, ProviderTwilio, nil)
	for _, p := range []url.Values{in("ringing", 0), in("ringing", 0), child("CA201", agentA, "no-answer", 1), in("completed", 1, "CallDuration", "9")} {
		e.postTwilio(t, p)
	}
	// A second telephony connector on the same API mux joins the route.
	other := newEnvWith(t, "tel2", ProviderTwilio, e.rec, nil)
	api := http.NewServeMux()
	e.c.APIRoutes(api)
	other.c.APIRoutes(api)

	get := func(path string) *httptest.ResponseRecorder {
		return serve(api, httptest.NewRequest(http.MethodGet, path, nil))
	}
	w := get("/api/v1/calls/CA100")
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var v CallView
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.ID != "CA100" || v.Outcome != OutcomeMissed || len(v.Legs) != 2 || len(v.Events) != 2 || len(v.Callbacks) != 3 {
		t.Fatalf("view %+v", v)
	}
	if c := v.Callbacks[2]; c.N != 3 || c.CallID != "CA100" || c.Status != StatusCompleted || c.Duration != 9 || c.Raw == "" {
		t.Errorf("callback %+v", c)
	}
	for path, code := range map[string]int{
		"/api/v1/calls/CA999":                http.StatusNotFound,
		"/api/v1/calls/CA100?connector=tel2": http.StatusNotFound,
		"/api/v1/calls/CA100?connector=tel":  http.StatusOK,
		"/api/v1/calls/a%20b":                http.StatusNotFound,
	} {
		if w := get(path); w.Code != code {
			t.Errorf("GET %s: %d %s", path, w.Code, w.Body)
		}
	}
	if w := get("/api/v1/calls/CA999"); !strings.Contains(w.Body.String(), `no call \"CA999\"`) {
		t.Errorf("the 404 does not name the call: %s", w.Body)
	}
	// Calls of the second connector are found too.
	other.postTwilio(t, tw("CA777", "", "inbound", customer, lineMain, "ringing", 0))
	if w := get("/api/v1/calls/CA777"); w.Code != http.StatusOK {
		t.Errorf("second connector's call: %d %s", w.Code, w.Body)
	}
	e.fake.SetDown(true)
	if w := get("/api/v1/calls/CA100"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("store down: %d %s", w.Code, w.Body)
	}
}

func TestNewRefuses(t *testing.T) {
	cfg := NewConfig()
	cfg.Provider, cfg.AuthToken = ProviderTwilio, testToken
	base := connectors.Base{Name: "tel", Type: "telephony"}
	if _, err := New(base, cfg, connectors.Deps{Intake: nopIntake{}, PublicURL: testPublicURL}); err == nil {
		t.Error("no records: no error")
	}
	if _, err := New(base, cfg, connectors.Deps{Intake: nopIntake{}, Records: newFakeRecords()}); err == nil {
		t.Error("twilio without public_url or signature_url: no error")
	}
	var _ store.Records = newFakeRecords()
}

// TestTwoGatewaysShareCalls: two gateways on one store receive callbacks
// of one call in turn; each one's cached copy goes stale and its
// compare-and-set sends it back to the stored call.
func TestTwoGatewaysShareCalls(t *testing.T) {
	eachIntake(t, func(t *testing.T, m intakeMode) {
		a := m.on(newEnv(t, ProviderTwilio, func(c *Config) { c.Settle = DefaultSettle }))
		b := newEnvWith(t, "tel", ProviderTwilio, a.rec, func(c *Config) { c.Settle = DefaultSettle })
		b.c.Push, _ = connectors.NewPush("telephony", connectors.Base{Name: "tel"}, connectors.Deps{Intake: a.in, Now: a.clk.Now}, DefaultMaxBody)
		steps := []struct {
			gw *env
			p  url.Values
		}{
			{a, in("ringing", 0)},
			{a, child("CA201", agentA, "ringing", 0)},
			{b, child("CA202", agentB, "ringing", 0)},
			{a, child("CA201", agentA, "no-answer", 1)},   // a's copy lacks CA202
			{b, child("CA202", agentB, "in-progress", 1)}, // b's copy lacks CA201's no-answer
			{a, child("CA202", agentB, "completed", 2, "CallDuration", "31")},
			{b, in("completed", 1, "CallDuration", "50")},
		}
		for i, s := range steps {
			if w := s.gw.postTwilio(t, s.p); w.Code != http.StatusNoContent {
				t.Fatalf("step %d: %d %s", i, w.Code, w.Body)
			}
		}
		a.clk.Add(time.Minute)
		if err := a.c.sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		call, _ := storedCall(t, a.fake, "tel", "CA100")
		if len(call.Legs) != 3 || call.Outcome != OutcomeAnswered || call.Legs[1].Status != StatusNoAnswer ||
			call.Legs[2].Status != StatusCompleted || call.Legs[2].Duration != 31 {
			t.Fatalf("call %+v", call)
		}
		if got := types(a.in.Events()); !slices.Equal(got, []normalize.Type{inbound}) {
			t.Errorf("events %v", got)
		}
	})
}

// TestOneStepPerCallback: the three callbacks of a new call read the call
// once (the first: nothing cached) and write it once each; with an intake
// that records events in the step of the call's write, the first
// callback's event goes with its write.
func TestOneStepPerCallback(t *testing.T) {
	eachIntake(t, func(t *testing.T, m intakeMode) {
		rc := &readCounter{Records: newFakeRecords()}
		e := m.on(newEnvWith(t, "tel", ProviderTwilio, rc, nil))
		before := rc.reads.Load() // the sweeper's cursor
		// ringing (emits call.inbound), in-progress, completed
		for i := range 3 {
			body, sig := benchCallback(i, e.sigBase)
			if w := serve(e.c, benchRequest(body, sig)); w.Code != http.StatusNoContent {
				t.Fatalf("callback %d: %d %s", i, w.Code, w.Body)
			}
		}
		if got := types(e.in.Events()); !slices.Equal(got, []normalize.Type{inbound}) {
			t.Fatalf("events %v", got)
		}
		if n := rc.reads.Load() - before; n != 1 {
			t.Errorf("%d reads of the call, want 1", n)
		}
		wantPuts := 0
		if m == putting {
			wantPuts = 1
		}
		if n := e.in.Puts(); n != wantPuts {
			t.Errorf("%d events put with the call, want %d", n, wantPuts)
		}
		call, err := rc.GetRecord(t.Context(), callKey("tel", "CA"+strings.Repeat("0", 32)))
		if err != nil || call.Version != 3 {
			t.Errorf("call at version %d (%v), want 3: one write per callback", call.Version, err)
		}
	})
}

// TestStaleCacheRecordsNoEvent: a gateway whose cached call is behind the
// store folds a callback into it that emits call.inbound, which the
// stored call has emitted already; the call's version refutes the cached
// state, so the event is not recorded on its strength, and the fold from
// the stored call emits nothing new.
func TestStaleCacheRecordsNoEvent(t *testing.T) {
	eachIntake(t, func(t *testing.T, m intakeMode) {
		a := m.on(newEnv(t, ProviderTwilio, nil))
		b := newEnvWith(t, "tel", ProviderTwilio, a.rec, nil)
		b.c.Push, _ = connectors.NewPush("telephony", connectors.Base{Name: "tel"}, connectors.Deps{Intake: a.in, Now: a.clk.Now}, DefaultMaxBody)
		steps := []struct {
			gw *env
			p  url.Values
		}{
			{a, child("CA201", agentA, "ringing", 0)}, // a caches the call: no root leg, no event
			{b, in("ringing", 0)},                     // b emits call.inbound
			{a, in("in-progress", 1)},                 // a's cached call has not emitted it
		}
		for i, s := range steps {
			if w := s.gw.postTwilio(t, s.p); w.Code != http.StatusNoContent {
				t.Fatalf("step %d: %d %s", i, w.Code, w.Body)
			}
		}
		if got := types(a.in.Events()); !slices.Equal(got, []normalize.Type{inbound}) {
			t.Errorf("events %v", got)
		}
		if n := a.in.Submits(); n != 1 {
			t.Errorf("%d submits, want 1: the stale state's event must not reach the intake", n)
		}
		if n := a.c.refolds.Load(); m == putting && n != 1 {
			t.Errorf("a: %d refolds, want 1 (its cached call lost the check)", n)
		}
		call, _ := storedCall(t, a.fake, "tel", "CA100")
		if call.Outcome != OutcomeActive || len(call.Events) != 1 || len(call.Legs) != 2 {
			t.Errorf("call %+v", call)
		}
		if n := a.fake.ListLen(callbacksKey("tel", "CA100")); n != 3 {
			t.Errorf("%d callbacks stored, want 3", n)
		}
	})
}

// TestSweepTakesTheTurn: the sweeper settles a call in the call's turn, so
// it waits for a callback of that call being recorded.
func TestSweepTakesTheTurn(t *testing.T) {
	e := newEnv(t, ProviderTwilio, func(c *Config) { c.Settle = 10 * time.Second })
	if w := e.postTwilio(t, in("no-answer", 0)); w.Code != http.StatusNoContent {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	e.clk.Add(10*time.Second + 2*SettleBucket)
	held, err := e.c.turns.take(t.Context(), "CA100") // a callback of the call in progress
	if err != nil {
		t.Fatal(err)
	}
	swept := make(chan error, 1)
	go func() { swept <- e.c.sweep(context.Background()) }()
	select {
	case err := <-swept:
		t.Fatalf("the sweep ended (%v) while the call's turn was held", err)
	case <-time.After(100 * time.Millisecond):
	}
	if got := types(e.in.Events()); !slices.Equal(got, []normalize.Type{inbound}) {
		t.Fatalf("events %v before the turn was given back", got)
	}
	held()
	if err := <-swept; err != nil {
		t.Fatal(err)
	}
	if got := types(e.in.Events()); !slices.Equal(got, []normalize.Type{inbound, missed}) {
		t.Fatalf("events %v", got)
	}
}

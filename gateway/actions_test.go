package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/store"
)

// actionsConfig is a gateway whose stages have actions aimed at TARGET;
// ACTIONS is the actions section, STORE the store section.
const actionsConfig = `
listen: 127.0.0.1:0
store: STORE
api:
  tokens: ["${TOKEN}"]
actions: ACTIONS
pipelines:
  - id: sales
    stages:
      - id: new
        triggers: [{type: crm.reset, allow_back: true}]
      - id: engaged
        triggers: [{type: crm.engaged}]
        actions:
          - {type: set_field, field: note, value: "engaged via {{.Trigger}}"}
          - {type: webhook, url: "TARGET/engaged", secret: "${SECRET}", headers: {X-Team: crm}}
      - id: later
        triggers: [{type: crm.later}]
        actions:
          - {type: webhook, url: "TARGET/later", after: 1500ms}
      - id: ping
        triggers: [{type: crm.ping, allow_back: true}]
        actions: [{type: webhook, url: "TARGET/ping"}]
      - id: pong
        triggers: [{type: crm.pong, allow_back: true}]
        actions: [{type: webhook, url: "TARGET/pong"}]
      - id: won
        final: success
        triggers: [{type: crm.won, name: paid}]
        actions:
          - {type: webhook, url: "TARGET/won"}
`

// startActionsGateway starts a gateway on actionsConfig.
func startActionsGateway(t *testing.T, storeYAML, actionsYAML, target string) *testGW {
	t.Helper()
	src := strings.NewReplacer("STORE", storeYAML, "ACTIONS", actionsYAML, "TARGET", target).Replace(actionsConfig)
	return startGatewayConfig(t, src)
}

// target is an HTTP endpoint that records calls by path and answers each
// path with its queued handlers in turn (then 200).
type target struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls map[string][]call
	plan  map[string][]http.HandlerFunc
}

type call struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newTarget(t *testing.T) *target {
	tt := &target{calls: map[string][]call{}, plan: map[string][]http.HandlerFunc{}}
	tt.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived := time.Now()
		body, _ := io.ReadAll(r.Body)
		tt.mu.Lock()
		tt.calls[r.URL.Path] = append(tt.calls[r.URL.Path], call{r.Header.Clone(), body, arrived})
		var h http.HandlerFunc
		if p := tt.plan[r.URL.Path]; len(p) > 0 {
			h, tt.plan[r.URL.Path] = p[0], p[1:]
		}
		tt.mu.Unlock()
		if h != nil {
			h(w, r)
		}
	}))
	t.Cleanup(tt.srv.Close)
	return tt
}

func (tt *target) answer(path string, hs ...http.HandlerFunc) {
	tt.mu.Lock()
	tt.plan[path] = append(tt.plan[path], hs...)
	tt.mu.Unlock()
}

func (tt *target) got(path string) []call {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return append([]call(nil), tt.calls[path]...)
}

// waitCalls waits until path got n calls.
func (tt *target) waitCalls(t *testing.T, path string, n int, within time.Duration) []call {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(tt.got(path)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s got %d calls within %v, want %d", path, len(tt.got(path)), within, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return tt.got(path)
}

func code(c int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(c) }
}

// newItem creates an item at new and returns its id.
func (tg *testGW) newItem() string {
	tg.t.Helper()
	var it store.Item
	if st := tg.call("POST", "/api/v1/items", map[string]any{"pipeline": "sales", "responsible": "bob"}, &it); st != http.StatusCreated {
		tg.t.Fatalf("create item: %d", st)
	}
	return it.ID
}

// send posts a crm event for an item and waits until it is applied.
func (tg *testGW) send(typ, itemID string) {
	tg.t.Helper()
	var rep postEventReply
	ev := map[string]any{"id": typ + "-" + itemID, "type": typ, "subject": map[string]string{"item_id": itemID}}
	if st := tg.call("POST", "/api/v1/events?wait=5s", ev, &rep); st != http.StatusOK || rep.Applied == nil || !*rep.Applied {
		tg.t.Fatalf("post %s: %d %+v", typ, st, rep)
	}
}

// actions lists the item's action runs by stage.
func (tg *testGW) actions(itemID string) map[string]store.OutboxEntry {
	tg.t.Helper()
	var out struct{ Actions []store.OutboxEntry }
	if st := tg.call("GET", "/api/v1/actions?item="+itemID, nil, &out); st != http.StatusOK {
		tg.t.Fatalf("list actions: %d", st)
	}
	m := map[string]store.OutboxEntry{}
	for _, e := range out.Actions {
		m[fmt.Sprintf("%s/%d", e.Stage, e.Index)] = e
	}
	return m
}

// waitTimeline polls the item's timeline until its last entry satisfies
// ok, and returns that entry.
func (tg *testGW) waitTimeline(itemID string, ok func(store.TimelineEntry) bool) store.TimelineEntry {
	tg.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var tl struct{ Entries []store.TimelineEntry }
		tg.call("GET", "/api/v1/items/"+itemID+"/timeline", nil, &tl)
		last := tl.Entries[len(tl.Entries)-1]
		if ok(last) || time.Now().After(deadline) {
			return last
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A target answering 500, 500, 200 sees three calls with the same
// Idempotency-Key, the gaps between them growing and jittered. With
// backoff_min 200ms the first retry waits a random 100-200ms, the second
// 200-400ms (engine.TestActionRetries checks the exact ranges on an
// injected clock). Measured here at the target, a gap may also hold the
// time to record the attempt and send the next one, so the upper bounds
// have slack for a loaded machine; the lower bounds are exact, and the
// second gap is at least the longest the first could be.
func TestActionRetriesSameKey(t *testing.T) { retriesSameKey(t, boltStore(t)) }

// The same on Redis (the outbox in Lua scripts).
func TestActionRetriesSameKey_Redis(t *testing.T) {
	srv := redisserver.Start(t)
	retriesSameKey(t, fmt.Sprintf("{driver: redis, url: %q, prefix: %q}", srv.URL(), "gwact"+randomID()))
}

func retriesSameKey(t *testing.T, storeYAML string) {
	tt := newTarget(t)
	tt.answer("/won", code(500), code(500))
	tg := startActionsGateway(t, storeYAML, "{allow_private: true, backoff_min: 200ms, backoff_max: 1s}", tt.srv.URL)
	id := tg.newItem()
	tg.send("crm.won", id)
	calls := tt.waitCalls(t, "/won", 3, 5*time.Second)
	key := calls[0].header.Get("Idempotency-Key")
	if key != id+"/ev:api:crm.won-"+id+"/0" {
		t.Fatalf("Idempotency-Key %q", key)
	}
	for i, c := range calls {
		if c.header.Get("Idempotency-Key") != key || c.header.Get("Stagegate-Attempt") != fmt.Sprint(i+1) {
			t.Fatalf("call %d: key %q attempt %q", i, c.header.Get("Idempotency-Key"), c.header.Get("Stagegate-Attempt"))
		}
	}
	const slack = 750 * time.Millisecond
	g1, g2 := calls[1].at.Sub(calls[0].at), calls[2].at.Sub(calls[1].at)
	t.Logf("gaps %v, %v", g1, g2)
	if g1 < 100*time.Millisecond || g1 > 200*time.Millisecond+slack || g2 < 200*time.Millisecond || g2 > 400*time.Millisecond+slack {
		t.Fatalf("gaps %v, %v; want [100ms, 200ms] and [200ms, 400ms] (+%v)", g1, g2, slack)
	}
	waitAction(t, tg, id, "won/0", store.OutboxDone)
	if e := tg.actions(id)["won/0"]; e.Attempts != 3 || !strings.Contains(e.LastError, "500") {
		t.Fatalf("action after success = %+v", e)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(tt.got("/won")); n != 3 {
		t.Fatalf("%d calls, want exactly 3", n)
	}
	var m strings.Builder
	resp, err := http.Get(tg.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(&m, resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`stagegate_actions_total{result="ok",type="webhook"} 1`, `stagegate_actions_total{result="retry",type="webhook"} 2`,
		"stagegate_outbox_depth 0", `stagegate_action_delivery_seconds_count{type="webhook"} 1`,
		`stagegate_action_attempt_seconds_count{type="webhook"} 3`,
	} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// waitAction waits until the item's action (stage/index) has status.
func waitAction(t *testing.T, tg *testGW, itemID, which, status string) store.OutboxEntry {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e := tg.actions(itemID)[which]
		if e.Status == status {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("action %s of %s is %q, want %s", which, itemID, e.Status, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After its last attempt an action is failed and listed; a retry through
// the API runs it again, with the same key.
func TestActionFailedAndRetried(t *testing.T) {
	tt := newTarget(t)
	tt.answer("/won", code(503), code(404))
	tg := startActionsGateway(t, boltStore(t), "{allow_private: true, backoff_min: 10ms, max_attempts: 3}", tt.srv.URL)
	id := tg.newItem()
	tg.send("crm.won", id)
	e := waitAction(t, tg, id, "won/0", store.OutboxFailed)
	if e.Attempts != 2 || !strings.Contains(e.LastError, "404 Not Found") {
		t.Fatalf("failed action = %+v; want failed after the 404 (attempt 2)", e)
	}
	var failed struct{ Actions []store.OutboxEntry }
	if st := tg.call("GET", "/api/v1/actions?status=failed", nil, &failed); st != 200 || len(failed.Actions) != 1 || failed.Actions[0].ID != e.ID {
		t.Fatalf("failed list: %d %+v", st, failed)
	}
	last := tg.waitTimeline(id, func(e store.TimelineEntry) bool { return strings.Contains(e.Message, "failed") })
	if !strings.Contains(last.Message, "action webhook failed after 2 attempt(s)") {
		t.Fatalf("timeline: %+v", last)
	}
	var again store.OutboxEntry
	if st := tg.call("POST", "/api/v1/actions/"+e.ID+"/retry", nil, &again); st != 200 || again.Status != store.OutboxPending {
		t.Fatalf("retry: %d %+v", st, again)
	}
	waitAction(t, tg, id, "won/0", store.OutboxDone)
	calls := tt.got("/won")
	if len(calls) != 3 || calls[2].header.Get("Idempotency-Key") != calls[0].header.Get("Idempotency-Key") {
		t.Fatalf("%d calls; the retry must carry the same key", len(calls))
	}
	var apiErr apiError
	if st := tg.call("POST", "/api/v1/actions/"+e.ID+"/retry", nil, &apiErr); st != http.StatusConflict || apiErr.Error.Code != "not_failed" {
		t.Fatalf("retry of a done action: %d %+v", st, apiErr)
	}
	if st := tg.call("POST", "/api/v1/actions/ac_nope/retry", nil, &apiErr); st != http.StatusNotFound {
		t.Fatalf("retry of an unknown action: %d", st)
	}
	if st := tg.call("GET", "/api/v1/actions?status=lost", nil, &apiErr); st != http.StatusBadRequest {
		t.Fatalf("bad status filter: %d", st)
	}
	var one store.OutboxEntry
	if st := tg.call("GET", "/api/v1/actions/"+e.ID, nil, &one); st != 200 || one.Key != e.Key || one.Status != store.OutboxDone {
		t.Fatalf("get action: %d %+v", st, one)
	}
}

// A hanging target times out (actions.timeout) and is tried again.
func TestActionTimeout(t *testing.T) {
	tt := newTarget(t)
	tt.answer("/won", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	tg := startActionsGateway(t, boltStore(t), "{allow_private: true, timeout: 300ms, backoff_min: 10ms}", tt.srv.URL)
	id := tg.newItem()
	tg.send("crm.won", id)
	calls := tt.waitCalls(t, "/won", 2, 5*time.Second)
	if gap := calls[1].at.Sub(calls[0].at); gap < 300*time.Millisecond {
		t.Fatalf("second attempt %v after the first, before the 300ms timeout", gap)
	}
	e := waitAction(t, tg, id, "won/0", store.OutboxDone)
	if e.Attempts != 2 || !strings.Contains(e.LastError, "deadline exceeded") {
		t.Fatalf("action = %+v", e)
	}
}

// A stage's actions run in order: the webhook sees the field set_field set
// just before it, and is signed.
func TestActionsInOrder(t *testing.T) {
	tt := newTarget(t)
	tg := startActionsGateway(t, boltStore(t), "{allow_private: true}", tt.srv.URL)
	id := tg.newItem()
	tg.send("crm.engaged", id)
	c := tt.waitCalls(t, "/engaged", 1, 5*time.Second)[0]
	var body struct {
		Item    store.Item `json:"item"`
		Trigger string     `json:"trigger"`
	}
	if err := json.Unmarshal(c.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Item.Fields["note"] != "engaged via crm.engaged@engaged#0" || c.header.Get("webhook-signature") == "" || c.header.Get("X-Team") != "crm" {
		t.Fatalf("webhook body %s, headers %v", c.body, c.header)
	}
}

// Delayed actions are durable: one due after a restart runs at its time;
// one whose item left the stage meanwhile does not run.
func TestDelayedActionAcrossRestart(t *testing.T) {
	tt := newTarget(t)
	storeYAML := "{driver: bolt, path: " + filepath.Join(t.TempDir(), "sg.db") + "}"
	tg := startActionsGateway(t, storeYAML, "{allow_private: true, poll: 50ms}", tt.srv.URL)
	stays, leaves := tg.newItem(), tg.newItem()
	moved := time.Now()
	tg.send("crm.later", stays)
	tg.send("crm.later", leaves)
	tg.send("crm.reset", leaves)
	tg.stop()

	tg = startActionsGateway(t, storeYAML, "{allow_private: true, poll: 50ms}", tt.srv.URL)
	calls := tt.waitCalls(t, "/later", 1, 5*time.Second)
	// Due times are wall-clock times (stored, compared with the runner's
	// time.Now()), so the check is in wall time too: with the monotonic
	// readings it failed once by 1.7 ms (2026-12-04), most likely the wall
	// clock adjusted in between; the due time is kept in wall time.
	if at := calls[0].at.Round(0).Sub(moved.Round(0)); at < 1500*time.Millisecond {
		t.Fatalf("delayed action ran %v after the move, before its 1.5s", at)
	}
	var body struct{ Item store.Item }
	json.Unmarshal(calls[0].body, &body)
	if body.Item.ID != stays {
		t.Fatalf("delayed action ran for %s, want %s", body.Item.ID, stays)
	}
	e := waitAction(t, tg, leaves, "later/0", store.OutboxSkipped)
	if !strings.Contains(e.Note, "left the stage") {
		t.Fatalf("skipped action = %+v", e)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(tt.got("/later")); n != 1 {
		t.Fatalf("%d delayed calls, want 1", n)
	}
}

// A target that answers each webhook by posting an event back, naming the
// action that caused it (Stagegate-Cause), would bounce an item between two
// stages forever: the move back into the first stage is refused, with a
// chain_stopped timeline entry, and the ping-pong ends.
func TestActionLoopStopped(t *testing.T) {
	var base string
	var n atomic.Int32
	bounce := func(typ string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				ID   string     `json:"id"`
				Item store.Item `json:"item"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				t.Errorf("decode: %v", err)
			}
			ev := fmt.Sprintf(`{"id":"bounce-%d","type":%q,"subject":{"item_id":%q}}`, n.Add(1), typ, body.Item.ID)
			req, _ := http.NewRequest("POST", base+"/api/v1/events", strings.NewReader(ev))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Stagegate-Cause", body.ID)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("post back: %v", err)
				return
			}
			resp.Body.Close()
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/ping", bounce("crm.pong"))
	mux.Handle("/pong", bounce("crm.ping"))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tg := startActionsGateway(t, boltStore(t), "{allow_private: true}", srv.URL)
	base = tg.base
	id := tg.newItem()
	tg.send("crm.ping", id)
	last := tg.waitTimeline(id, func(e store.TimelineEntry) bool { return e.Kind == store.EntryChainStopped })
	if last.Kind != store.EntryChainStopped || last.From != "pong" || last.To != "ping" || !strings.Contains(last.Message, "loop") {
		t.Fatalf("last timeline entry = %+v", last)
	}
	time.Sleep(300 * time.Millisecond)
	if got := n.Load(); got != 2 {
		t.Fatalf("%d events posted back, want 2 (ping → pong → refused)", got)
	}
	var it store.Item
	tg.call("GET", "/api/v1/items/"+id, nil, &it)
	if it.Stage != "pong" {
		t.Fatalf("item at %s, want pong", it.Stage)
	}
}

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
)

// actionsYAML is the config of the action fault tests: stage "delayed" has
// a webhook due 2s after entry, stage "now" one due at once; both aim at
// target. The lease is short so that Redis hands a dead process's running
// actions over quickly.
func actionsYAML(port int, storeYAML, target string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:%d
store: %s
api:
  tokens: ["${E2E_API_TOKEN}"]
log: {level: info, format: json}
actions: {allow_private: true, timeout: 2s, lease: 4s, backoff_min: 100ms, poll: 100ms}
pipelines:
  - id: sales
    stages:
      - id: new
      - id: delayed
        triggers: [{type: crm.delayed}]
        actions: [{type: webhook, url: "%[3]s/delayed", after: 2s}]
      - id: now
        triggers: [{type: crm.now}]
        actions: [{type: webhook, url: "%[3]s/now"}]
`, port, storeYAML, target)
}

// hookTarget records the webhooks it gets; the first call to a path can be
// made to hang until released.
type hookTarget struct {
	srv     *httptest.Server
	mu      sync.Mutex
	calls   map[string][]http.Header
	hang    map[string]chan struct{}
	arrived chan string
}

func newHookTarget(t *testing.T) *hookTarget {
	h := &hookTarget{calls: map[string][]http.Header{}, hang: map[string]chan struct{}{}, arrived: make(chan string, 16)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h.mu.Lock()
		h.calls[r.URL.Path] = append(h.calls[r.URL.Path], r.Header.Clone())
		release := h.hang[r.URL.Path]
		delete(h.hang, r.URL.Path)
		h.mu.Unlock()
		h.arrived <- r.URL.Path
		if release != nil {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// hangFirst makes the next call to path hang until the returned channel is
// closed.
func (h *hookTarget) hangFirst(path string) chan struct{} {
	ch := make(chan struct{})
	h.mu.Lock()
	h.hang[path] = ch
	h.mu.Unlock()
	return ch
}

func (h *hookTarget) keys(path string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, hd := range h.calls[path] {
		out = append(out, hd.Get("Idempotency-Key"))
	}
	return out
}

// waitKeys waits until path got n calls and returns their keys.
func (h *hookTarget) waitKeys(t *testing.T, path string, n int, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(h.keys(path)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s got %d calls within %v, want %d", path, len(h.keys(path)), within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h.keys(path)
}

// startActionsGateway runs a gateway on actionsYAML, reusing the fault
// tests' process helpers.
func startActionsGateway(t *testing.T, name, storeYAML, target string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{t: t, name: name, dir: t.TempDir(), store: storeYAML, out: &logBuffer{}}
	g.cfgPath = filepath.Join(g.dir, "stagegate.yaml")
	t.Cleanup(func() {
		g.stopQuietly()
		if t.Failed() {
			t.Logf("---- output of gateway %s (%d runs) ----\n%s", g.name, g.runs, g.out.tail(150))
		}
	})
	restartActionsGateway(g, target)
	return g
}

// restartActionsGateway (re)launches g on its port and waits for readiness.
func restartActionsGateway(g *gatewayProc, target string) {
	g.t.Helper()
	for try := 0; ; try++ {
		g.mu.Lock()
		if g.port == 0 || try > 0 {
			g.port = freePort(g.t)
		}
		port := g.port
		g.mu.Unlock()
		if err := os.WriteFile(g.cfgPath, []byte(actionsYAML(port, g.store, target)), 0o600); err != nil {
			g.t.Fatal(err)
		}
		r := g.launch()
		err := g.waitReady(r, 30*time.Second)
		if err == nil {
			return
		}
		if r.exited() && strings.Contains(g.out.String(), "address already in use") && try < 3 {
			continue
		}
		g.t.Fatalf("gateway %s: run %d: %v", g.name, g.runs, err)
	}
}

// moveItem creates an item and applies the event typ to it; it returns
// the item id and the event id.
func moveItem(t *testing.T, c *http.Client, base, typ, key string) (string, string) {
	t.Helper()
	var it itemReply
	if _, err := apiCall(c, base, "POST", "/api/v1/items", map[string]any{"pipeline": "sales"}, &it); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		EventID string `json:"event_id"`
		Applied bool   `json:"applied"`
	}
	ev := map[string]any{"id": key, "type": typ, "subject": map[string]string{"item_id": it.ID}}
	if _, err := apiCall(c, base, "POST", "/api/v1/events?wait=5s", ev, &rep); err != nil || !rep.Applied {
		t.Fatalf("event %s: %+v, %v", key, rep, err)
	}
	return it.ID, rep.EventID
}

// actionStatus returns the item's only action run.
func actionStatus(t *testing.T, c *http.Client, base, itemID string) (status string, attempts int) {
	t.Helper()
	var out struct {
		Actions []struct {
			Status   string `json:"status"`
			Attempts int    `json:"attempts"`
		} `json:"actions"`
	}
	if _, err := apiCall(c, base, "GET", "/api/v1/actions?item="+itemID, nil, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Actions) != 1 {
		t.Fatalf("item %s has %d actions, want 1", itemID, len(out.Actions))
	}
	return out.Actions[0].Status, out.Actions[0].Attempts
}

// The gateway is killed (SIGKILL) after a move and before its action ran:
// after a restart the action runs, once, with the key derived from the
// item, the stage entry and the action's index.
func TestKillBeforeAction_Bolt(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	killBeforeAction(t, boltStoreYAML(filepath.Join(t.TempDir(), "sg.db")))
}

func TestKillBeforeAction_Redis(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	srv := redisserver.Start(t)
	killBeforeAction(t, redisStoreYAML(srv.URL(), "e2e-act-before"))
}

func killBeforeAction(t *testing.T, storeYAML string) {
	target := newHookTarget(t)
	g := startActionsGateway(t, "actions", storeYAML, target.srv.URL)
	c := newClient(t)
	itemID, eventID := moveItem(t, c, g.base(), "crm.delayed", "kill-before-1")
	g.kill() // the action is due 2s after the move: it has not run
	if n := len(target.keys("/delayed")); n != 0 {
		t.Fatalf("the action ran %d times before the kill", n)
	}
	restartActionsGateway(g, target.srv.URL)
	keys := target.waitKeys(t, "/delayed", 1, 15*time.Second)
	if want := itemID + "/ev:" + eventID + "/0"; keys[0] != want {
		t.Fatalf("Idempotency-Key %q, want %q", keys[0], want)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := len(target.keys("/delayed")); n != 1 {
		t.Fatalf("the action ran %d times, want once", n)
	}
	if st, attempts := actionStatus(t, c, g.base(), itemID); st != "done" || attempts != 1 {
		t.Fatalf("action %s after %d attempts, want done after 1", st, attempts)
	}
}

// The gateway is killed while the target holds the action's request: the
// outcome is unknown, so after a restart the action runs again (at least
// once), with the same key, and then never again.
func TestKillDuringAction_Bolt(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	killDuringAction(t, boltStoreYAML(filepath.Join(t.TempDir(), "sg.db")))
}

func TestKillDuringAction_Redis(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	srv := redisserver.Start(t)
	killDuringAction(t, redisStoreYAML(srv.URL(), "e2e-act-during"))
}

func killDuringAction(t *testing.T, storeYAML string) {
	target := newHookTarget(t)
	release := target.hangFirst("/now")
	defer close(release)
	g := startActionsGateway(t, "actions", storeYAML, target.srv.URL)
	c := newClient(t)
	itemID, eventID := moveItem(t, c, g.base(), "crm.now", "kill-during-1")
	select {
	case <-target.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the action never reached the target")
	}
	g.kill()
	restartActionsGateway(g, target.srv.URL)
	keys := target.waitKeys(t, "/now", 2, 15*time.Second) // Redis: after the 4s lease
	want := itemID + "/ev:" + eventID + "/0"
	if keys[0] != want || keys[1] != want {
		t.Fatalf("keys %q, want both %q", keys, want)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := len(target.keys("/now")); n != 2 {
		t.Fatalf("%d calls, want 2 (the interrupted one and one after the restart)", n)
	}
	if st, attempts := actionStatus(t, c, g.base(), itemID); st != "done" || attempts != 2 {
		t.Fatalf("action %s after %d attempts, want done after 2", st, attempts)
	}
}

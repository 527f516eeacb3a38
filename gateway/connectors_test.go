package gateway

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/stdwebhooks"
	"github.com/stagegate/stagegate/store"
)

func (tg *testGW) postWebhook(id, body string, ts time.Time, secret string) (int, string) {
	tg.t.Helper()
	req, _ := http.NewRequest("POST", tg.base+"/in/hooks", strings.NewReader(body))
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", stdwebhooks.Sign(secret, id, ts, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tg.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A signed webhook moves the item through the whole gateway; a replay and
// refused requests record nothing.
func TestWebhookEndToEnd(t *testing.T) {
	tg := startGateway(t, boltStore(t))
	var it store.Item
	tg.call("POST", "/api/v1/items", map[string]any{"pipeline": "sales", "contact": map[string]string{"email": "ann@client.test"}}, &it)
	body := `{"code":"ping","subject":{"email":"ann@client.test"}}`
	now := time.Now()
	if st, b := tg.postWebhook("msg_1", body, now, "whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="); st != 401 {
		t.Fatalf("wrong secret: %d %s", st, b)
	}
	if st, b := tg.postWebhook("msg_1", body, now.Add(-6*time.Minute), testWebhookSecret); st != 400 {
		t.Fatalf("stale: %d %s", st, b)
	}
	if st, b := tg.postWebhook("msg_1", body, now, testWebhookSecret); st != 200 || !strings.Contains(b, `"duplicate":false`) {
		t.Fatalf("valid: %d %s", st, b)
	}
	if st, b := tg.postWebhook("msg_1", body, now, testWebhookSecret); st != 200 || !strings.Contains(b, `"duplicate":true`) {
		t.Fatalf("replay: %d %s", st, b)
	}
	waitStage(t, tg, it.ID, "contacted")
	var tl struct{ Entries []store.TimelineEntry }
	tg.call("GET", "/api/v1/items/"+it.ID+"/timeline", nil, &tl)
	if len(tl.Entries) != 2 || tl.Entries[1].EventID != "hooks:msg_1" {
		t.Fatalf("timeline %+v", tl.Entries)
	}
}

// A callback form from an unknown visitor creates a contact and a lead,
// which the form's own trigger then moves.
func TestFormCreatesLead(t *testing.T) {
	tg := startGateway(t, boltStore(t))
	resp, err := http.PostForm(tg.base+"/in/forms/call", url.Values{"phone": {"(202) 555-0123"}, "name": {"Bo"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("form: %d", resp.StatusCode)
	}
	var list struct{ Items []store.Item }
	deadline := time.Now().Add(5 * time.Second)
	for len(list.Items) == 0 && time.Now().Before(deadline) {
		tg.call("GET", "/api/v1/items?pipeline=sales", nil, &list)
		time.Sleep(20 * time.Millisecond)
	}
	if len(list.Items) != 1 {
		t.Fatalf("items %+v", list.Items)
	}
	it := waitStage(t, tg, list.Items[0].ID, "contacted")
	var c store.Contact
	tg.call("GET", "/api/v1/contacts/"+it.ContactID, nil, &c)
	if c.Name != "Bo" || len(c.Identities) != 1 || c.Identities[0].Value != "+12025550123" {
		t.Fatalf("contact %+v", c)
	}
}

func waitStage(t *testing.T, tg *testGW, id, stage string) store.Item {
	t.Helper()
	var it store.Item
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		tg.call("GET", "/api/v1/items/"+id, nil, &it)
		if it.Stage == stage {
			return it
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("item %s at %q, want %q", id, it.Stage, stage)
	return it
}

// Two connectors claiming the same public routes stop the gateway from
// starting with an error naming the second, instead of a panic.
func TestRouteConflictIsAnError(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /t/o/{token}", func(http.ResponseWriter, *http.Request) {})
	err := register("track2", func() { mux.HandleFunc("GET /t/o/{token}", func(http.ResponseWriter, *http.Request) {}) })
	if err == nil || !strings.Contains(err.Error(), "connector track2") || !strings.Contains(err.Error(), "GET /t/o/{token}") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), ".go:") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Go source paths or several lines in %q", err)
	}
}

type fakeHealth struct{ ok bool }

func (f fakeHealth) Name() string                                 { return "mail" }
func (f fakeHealth) Health() (bool, any)                          { return f.ok, map[string]string{"acct": "login failed"} }
func (f fakeHealth) ServeHTTP(http.ResponseWriter, *http.Request) {}

// A connector that is not healthy shows in /readyz as "degraded" with its
// detail, and the instance stays ready (200).
func TestReadyzShowsConnectorHealth(t *testing.T) {
	tg := startGateway(t, boltStore(t))
	tg.g.health = append(tg.g.health, fakeHealth{ok: false})
	var body struct {
		Status string         `json:"status"`
		Checks map[string]any `json:"checks"`
	}
	if st := tg.callToken("", "GET", "/readyz", nil, &body); st != 200 || body.Status != "degraded" || body.Checks["connector:mail"] == nil {
		t.Fatalf("%d %+v", st, body)
	}
}

package tracking_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/gateway/gatewaytest"
	"github.com/stagegate/stagegate/internal/testutil/fakes"

	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/connectors/tracking"
	"github.com/stagegate/stagegate/gateway"
	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/store"
)

const gwToken = "tracking-test-token-0123"

// gwConfig: opening an email moves an item to "viewed", clicking the
// pricing link to "clicked".
const gwConfig = `
listen: 127.0.0.1:0
public_url: http://PUBLIC
store: STORE
api:
  tokens: ["` + gwToken + `"]
pipelines:
  - id: sales
    stages:
      - id: new
      - id: viewed
        triggers:
          - {type: email.opened, name: Email viewed}
      - id: clicked
        triggers:
          - {type: email.clicked, url: "https://example.com/pricing", name: Email link clicked}
connectors:
  - name: track
    type: tracking
    keys: ["${STAGEGATE_TRACKING_KEY}"]
`

// offsetClock is the shared real-time-plus-offset clock.
type offsetClock = fakes.OffsetClock

type gw struct {
	t    *testing.T
	base string
	clk  *offsetClock
}

func startGW(t *testing.T, storeYAML string) *gw {
	t.Helper()
	// The port is known only after listening: links use a stand-in public
	// URL (127.0.0.1:1) that call sends to the gateway's real address.
	src := strings.Replace(gwConfig, "STORE", storeYAML, 1)
	getenv := func(k string) (string, bool) {
		if k == "STAGEGATE_TRACKING_KEY" {
			return "gateway-test-tracking-key-01", true
		}
		return "", false
	}
	probe, err := config.Parse([]byte(strings.Replace(src, "PUBLIC", "127.0.0.1:1", 1)), gateway.Kinds, gateway.ActionTypes(), getenv)
	if err != nil {
		t.Fatal(err)
	}
	clk := &offsetClock{}
	r := gatewaytest.Start(t, probe, gateway.Options{Instance: "t", Now: clk.Now, ShutdownTimeout: 5 * time.Second})
	return &gw{t: t, base: r.Base, clk: clk}
}

// call sends a request; path may be a full tracking URL of the probe
// public URL (http://127.0.0.1:1/...), which is sent to the gateway.
func (g *gw) call(method, path, body string, hdr map[string]string, out any) (int, http.Header) {
	g.t.Helper()
	path = strings.TrimPrefix(path, "http://127.0.0.1:1")
	req, _ := http.NewRequest(method, g.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+gwToken)
	req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			g.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, resp.Header
}

// applied waits until the engine applied event id and returns whether it
// moved its item.
func (g *gw) applied(id string) bool {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var rep struct {
			store.EventRecord
			Items []store.ItemDecisions `json:"items"`
		}
		if code, _ := g.call("GET", "/api/v1/events/"+id, "", nil, &rep); code == http.StatusOK && rep.Applied {
			for _, it := range rep.Items {
				if it.Moved {
					return true
				}
			}
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatalf("event %s not applied in time", id)
	return false
}

func (g *gw) stage(item string) string {
	var it store.Item
	g.call("GET", "/api/v1/items/"+item, "", nil, &it)
	return it.Stage
}

// TestGatewayMovesItem: through the real HTTP server and engine, on both
// store drivers: a machine open moves nothing, the human open moves the
// item to "viewed" once, the click moves it to "clicked".
func TestGatewayMovesItem(t *testing.T) {
	drivers := map[string]func(t *testing.T) string{
		"bolt": func(t *testing.T) string { return "{driver: bolt, path: " + filepath.Join(t.TempDir(), "sg.db") + "}" },
		"redis": func(t *testing.T) string {
			return "{driver: redis, url: \"" + redisserver.Start(t).URL() + "\", prefix: trk}"
		},
	}
	for name, storeYAML := range drivers {
		t.Run(name, func(t *testing.T) {
			g := startGW(t, storeYAML(t))
			var item store.Item
			if code, _ := g.call("POST", "/api/v1/items", `{"pipeline":"sales","contact":{"email":"ann@client.test"}}`, nil, &item); code != http.StatusCreated {
				t.Fatalf("create item: %d", code)
			}
			var p tracking.Prepared
			msg := `{"item_id":"` + item.ID + `","from":"bob@seller.test","to":"ann@client.test","subject":"Offer",
				"html":"<p><a href=\"https://example.com/pricing\">pricing</a></p>"}`
			if code, _ := g.call("POST", "/api/v1/messages", msg, nil, &p); code != http.StatusCreated {
				t.Fatalf("prepare: %d", code)
			}
			g.call("POST", "/api/v1/messages/"+p.ID+"/sent", "", nil, nil)
			// A message for an item the store does not have: 404, not 201.
			unknown := strings.Replace(msg, item.ID, "i_nope", 1)
			if code, _ := g.call("POST", "/api/v1/messages", unknown, nil, nil); code != http.StatusNotFound {
				t.Errorf("message for an unknown item: %d", code)
			}

			// Apple's proxy fetches the pixel at delivery: a machine open.
			code, h := g.call("GET", p.PixelURL, "", map[string]string{"User-Agent": "Mozilla/5.0"}, nil)
			if code != http.StatusOK || h.Get("Content-Type") != "image/gif" {
				t.Fatalf("pixel: %d %v", code, h)
			}
			if g.applied(tracking.OpenEventID("track", p.ID, true)) || g.stage(item.ID) != "new" {
				t.Fatalf("a machine open moved the item to %q", g.stage(item.ID))
			}
			g.clk.Add(time.Hour)
			g.call("GET", p.PixelURL, "", nil, nil)
			if !g.applied(tracking.OpenEventID("track", p.ID, false)) || g.stage(item.ID) != "viewed" {
				t.Fatalf("the human open left the item at %q", g.stage(item.ID))
			}
			g.call("GET", p.PixelURL, "", nil, nil) // again: a duplicate, no second move
			var tl struct {
				Entries []store.TimelineEntry `json:"entries"`
			}
			g.call("GET", "/api/v1/items/"+item.ID+"/timeline", "", nil, &tl)
			moves := 0
			for _, e := range tl.Entries {
				if e.Kind == store.EntryMove {
					moves++
				}
			}
			if moves != 1 {
				t.Errorf("%d moves after two human opens: %+v", moves, tl.Entries)
			}

			code, h = g.call("GET", p.Links[0].ClickURL+"?u=https://evil.example", "", nil, nil)
			if code != http.StatusFound || h.Get("Location") != "https://example.com/pricing" {
				t.Fatalf("click: %d %v", code, h)
			}
			if !g.applied(tracking.ClickEventID("track", p.ID, 1, false)) || g.stage(item.ID) != "clicked" {
				t.Fatalf("the click left the item at %q", g.stage(item.ID))
			}
			var rep tracking.Report
			g.call("GET", "/api/v1/messages/"+p.ID, "", nil, &rep)
			if rep.Opens.Human != 2 || rep.Opens.Machine != 1 || rep.Links[0].Clicks.Human != 1 || len(rep.Hits) != 4 {
				t.Errorf("report %+v", rep)
			}
			// The tracking API is behind the bearer token.
			req, _ := http.NewRequest("POST", g.base+"/api/v1/messages", bytes.NewReader([]byte(msg)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("no token: %d", resp.StatusCode)
			}
		})
	}
}

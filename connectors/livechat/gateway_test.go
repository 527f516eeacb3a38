package livechat_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/gateway/gatewaytest"
	"github.com/stagegate/stagegate/internal/testutil/fakes"

	"github.com/gorilla/websocket"

	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/gateway"
	"github.com/stagegate/stagegate/store"
)

const (
	apiToken   = "livechat-api-token-0123456789"
	aliceToken = "alice-token-0123456789"
)

// gwConfig is the gateway of the end-to-end tests: one pipeline whose
// stages carry every chat trigger. STORE is replaced by the store section.
const gwConfig = `
listen: 127.0.0.1:0
store: STORE
api:
  tokens: ["` + apiToken + `"]
pipelines:
  - id: sales
    stages:
      - id: new
      - id: chatting
        triggers:
          - {type: chat.started, channel: sales, name: "Initial message posted by client"}
      - id: asked_price
        triggers:
          - {type: chat.text, text: "Price", name: "Customer message contains a phrase"}
      - id: discount
        triggers:
          - {type: chat.text, text: "discount", case_sensitive: false}
      - id: ordered
        triggers:
          - {type: chat.text, text: '^order #[0-9]+$', match: regex}
      - id: slow
        triggers:
          - {type: chat.reaction_time, seconds: 60, name: "Agent reaction time"}
      - id: won
        final: success
connectors:
  - name: chat
    type: livechat
    create: {pipeline: sales, stage: new}
    secret: "livechat-e2e-secret-0123456789"
    channels: [{id: sales, name: Sales}]
    allowed_origins: ["https://www.example.com"]
    agents: [{name: alice, token: "` + aliceToken + `"}]
    ask: [name, email]
`

// offsetClock is the shared real-time-plus-offset clock.
type offsetClock = fakes.OffsetClock

// gw is a whole gateway on a free loopback port.
type gw struct {
	t      *testing.T
	g      *gateway.Gateway
	base   string
	wsBase string
}

func boltStore(t *testing.T) string {
	return "{driver: bolt, path: " + filepath.Join(t.TempDir(), "sg.db") + "}"
}

func startGateway(t *testing.T, cfgYAML, storeYAML, instance string, now func() time.Time) *gw {
	t.Helper()
	cfg, err := config.Parse([]byte(strings.Replace(cfgYAML, "STORE", storeYAML, 1)), gateway.Kinds,
		gateway.ActionTypes(), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	r := gatewaytest.Start(t, cfg, gateway.Options{Instance: instance, Now: now, ShutdownTimeout: 5 * time.Second})
	return &gw{t: t, g: r.Gateway, base: r.Base, wsBase: "ws://" + r.Addr + "/in/chat"}
}

// wsClient is a gorilla client speaking the chat protocol.
type wsClient struct {
	t       *testing.T
	ws      *websocket.Conn
	backlog []map[string]any
}

func (g *gw) dial(path, origin string) *wsClient {
	g.t.Helper()
	hdr := http.Header{}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	ws, _, err := websocket.DefaultDialer.Dial(g.wsBase+path, hdr)
	if err != nil {
		g.t.Fatalf("dial %s: %v", path, err)
	}
	g.t.Cleanup(func() { ws.Close() })
	return &wsClient{t: g.t, ws: ws}
}

// visitor connects a visitor and returns it with its welcome.
func (g *gw) visitor(hello map[string]any) (*wsClient, map[string]any) {
	g.t.Helper()
	c := g.dial("/ws", "https://www.example.com")
	if hello == nil {
		hello = map[string]any{}
	}
	hello["type"] = "hello"
	c.send(hello)
	return c, c.expect("welcome")
}

func (g *gw) agent() *wsClient {
	g.t.Helper()
	c := g.dial("/agent/ws", "")
	c.send(map[string]any{"type": "hello", "token": aliceToken})
	c.expect("welcome")
	return c
}

func (c *wsClient) send(v map[string]any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

// say sends a message and returns its ack.
func (c *wsClient) say(id, text string) map[string]any {
	c.t.Helper()
	c.send(map[string]any{"type": "message", "id": id, "text": text})
	return c.expect("ack")
}

// expect returns the next frame of type typ; others wait in the backlog.
func (c *wsClient) expect(typ string) map[string]any {
	c.t.Helper()
	return c.expectWhere(typ, func(map[string]any) bool { return true })
}

func (c *wsClient) expectWhere(typ string, ok func(map[string]any) bool) map[string]any {
	c.t.Helper()
	for i, f := range c.backlog {
		if f["type"] == typ && ok(f) {
			c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
			return f
		}
	}
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var f map[string]any
		if err := c.ws.ReadJSON(&f); err != nil {
			c.t.Fatalf("waiting for %s: %v", typ, err)
		}
		if f["type"] == "error" {
			c.t.Logf("error frame: %v", f)
		}
		if f["type"] == typ && ok(f) {
			return f
		}
		c.backlog = append(c.backlog, f)
	}
}

// item returns the item of a chat visitor, waiting for the engine to
// create it.
func (g *gw) item(visitorID string) store.Item {
	g.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ct, err := g.g.Store().FindContact(ctx, store.Identity{Kind: store.IdentityVisitor, Value: visitorID})
		if err == nil {
			items, err := g.g.Store().ListItems(ctx, store.ItemFilter{ContactID: ct.ID})
			if err == nil && len(items) > 0 {
				return items[0]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatalf("no item for visitor %s", visitorID)
	return store.Item{}
}

// applied waits until the engine applied event id and returns the item's
// stage then.
func (g *gw) applied(eventID, itemID string) string {
	g.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rec, _, err := g.g.Store().GetEvent(ctx, eventID)
		if err == nil && rec.Applied {
			it, err := g.g.Store().GetItem(ctx, itemID)
			if err != nil {
				g.t.Fatal(err)
			}
			return it.Stage
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatalf("event %s not applied", eventID)
	return ""
}

// A visitor's first message creates a lead and moves it to the stage of
// the chat.started trigger; phrases move it further, with the case
// rules of each trigger.
func TestGatewayChatTriggers(t *testing.T) {
	g := startGateway(t, gwConfig, boltStore(t), "test", nil)
	v, w := g.visitor(map[string]any{"name": "Ann"})
	vid := w["visitor_id"].(string)
	conv := v.say("m1", "hello")["conversation_id"].(string)
	it := g.item(vid)
	if st := g.applied("chat:"+conv+":started", it.ID); st != "chatting" {
		t.Fatalf("after the first message the item is at %q, want chatting", st)
	}
	for _, tc := range []struct{ id, text, stage string }{
		{"m2", "what is the price?", "chatting"}, // "Price" is case-sensitive
		{"m3", "Price please", "asked_price"},
		{"m4", "Any DISCOUNT today?", "discount"}, // case_sensitive: false
		{"m5", "order #12 please", "discount"},    // the regex is anchored
		{"m6", "order #12", "ordered"},
	} {
		v.say(tc.id, tc.text)
		if st := g.applied("chat:"+conv+":msg:"+tc.id, it.ID); st != tc.stage {
			t.Fatalf("after %q the item is at %q, want %q", tc.text, st, tc.stage)
		}
	}
	rec, decisions, err := g.g.Store().GetEvent(context.Background(), "chat:"+conv+":msg:m2")
	if err != nil || rec.Event.Attrs["text"] != "what is the price?" || len(decisions) != 1 {
		t.Fatalf("explain m2: %+v %+v %v", rec, decisions, err)
	}
	if d := decisions[0].Decisions[0]; d.Stage != "asked_price" || d.Outcome != "conditions_not_met" {
		t.Fatalf("decision %+v", d)
	}
}

// chat.reaction_time fires when the agent accepts later than its seconds
// after the visitor's first message, and not sooner (injected clock).
func TestGatewayReactionTime(t *testing.T) {
	clk := &offsetClock{}
	g := startGateway(t, gwConfig, boltStore(t), "test", clk.Now)
	agent := g.agent()
	for _, tc := range []struct {
		wait  time.Duration
		stage string
	}{
		{30 * time.Second, "chatting"},
		{2 * time.Minute, "slow"},
	} {
		v, w := g.visitor(nil)
		conv := v.say("first", "hi")["conversation_id"].(string)
		it := g.item(w["visitor_id"].(string))
		g.applied("chat:"+conv+":started", it.ID)
		clk.Add(tc.wait)
		agent.send(map[string]any{"type": "accept", "conversation_id": conv})
		agent.expectWhere("history", func(f map[string]any) bool {
			return f["conversation"].(map[string]any)["id"] == conv
		})
		if st := g.applied("chat:"+conv+":accepted", it.ID); st != tc.stage {
			t.Fatalf("accepted after %v: item at %q, want %q", tc.wait, st, tc.stage)
		}
		rec, _, _ := g.g.Store().GetEvent(context.Background(), "chat:"+conv+":accepted")
		if got, want := rec.Event.Attrs["reaction_s"], fmt.Sprint(tc.wait.Seconds()); !strings.HasPrefix(got, want) {
			t.Fatalf("reaction_s %q, want about %s", got, want)
		}
	}
}

// The API sees the chat events like any other (the explain endpoint).
func TestGatewayEventAPI(t *testing.T) {
	g := startGateway(t, gwConfig, boltStore(t), "test", nil)
	v, w := g.visitor(nil)
	conv := v.say("m1", "hello")["conversation_id"].(string)
	it := g.item(w["visitor_id"].(string))
	g.applied("chat:"+conv+":msg:m1", it.ID)
	req, _ := http.NewRequest("GET", g.base+"/api/v1/events/chat:"+conv+":started", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 200 || !strings.Contains(fmt.Sprint(body), "chat.started") {
		t.Fatalf("GET event: %d %v", resp.StatusCode, body)
	}
}

package board_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/gateway/board"
	"github.com/stagegate/stagegate/internal/testutil/redisserver"
)

func boolp(b bool) *bool { return &b }

func TestTriggerText(t *testing.T) {
	secs := 90.0
	cases := []struct {
		t    engine.Trigger
		want string
	}{
		{engine.Trigger{Type: "email.clicked", URL: "https://example.com/pricing"},
			"Moves here when a customer clicks a link starting with https://example.com/pricing — human clicks only."},
		{engine.Trigger{Type: "email.clicked", URL: "https://x.test/a", Match: "exact", HumanOnly: boolp(false)},
			"Moves here when a customer clicks the link https://x.test/a — machine clicks count too."},
		{engine.Trigger{Type: "chat.text", Text: "price", AllowBack: true, AsUser: "alice"},
			`Moves here when a customer writes a chat message containing "price" (letter case counts); also moves items back here from later stages; recorded as alice.`},
		{engine.Trigger{Type: "call.inbound", Line: "+15550001111"}, "Moves here when a customer calls on line +15550001111."},
		{engine.Trigger{Type: "call.missed"}, "Moves here when a customer's call is missed (any line)."},
		{engine.Trigger{Type: "chat.reaction_time", Seconds: &secs}, "Moves here when an agent accepts a chat more than 90 s after the customer's first message."},
		{engine.Trigger{Type: "form.callback", Form: "call"}, `Moves here when a customer asks to be called back with the form "call".`},
		{engine.Trigger{Type: "webhook.received", Code: "ping"}, `Moves here when a signed webhook with code "ping" arrives.`},
		{engine.Trigger{Type: "crm.invoice_paid", Attrs: map[string]string{"plan": "pro"}}, `Moves here when the CRM reports invoice paid with plan = "pro".`},
	}
	for _, c := range cases {
		t.Run(c.t.Type, func(t *testing.T) {
			if got := board.TriggerText(&c.t); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestActionText(t *testing.T) {
	cases := []struct {
		a    engine.ActionSpec
		want string
	}{
		{engine.ActionSpec{Type: "log"}, "Writes to the timeline."},
		{engine.ActionSpec{Type: "fax", After: 24 * time.Hour}, "Runs a fax action, 24h0m0s after the item enters (unless it has left by then)."},
	}
	for _, c := range cases {
		if got := board.ActionText(&c.a); got != c.want {
			t.Errorf("%s: got %q, want %q", c.a.Type, got, c.want)
		}
	}
}

// The page is public (it asks for the token) and locked down; the board's
// API routes take the bearer token only in the header.
func TestRoutesAuth(t *testing.T) {
	g := startGateway(t, "{driver: bolt, path: "+filepath.Join(t.TempDir(), "sg.db")+"}", "http://127.0.0.1:9/x", "a")
	resp, err := http.Get(g.Base + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<script src="app.js"`) {
		t.Fatalf("GET /ui/: %d %.200s", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	resp, err = http.Get(g.Base + "/ui/nope.js")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), `"code":"not_found"`) {
		t.Errorf("GET /ui/nope.js: %d %s", resp.StatusCode, body)
	}
	for _, path := range []string{"/api/v1/board", "/api/v1/board/stream", "/api/v1/board/stream?token=" + testToken, "/api/v1/board/items/i_x/events"} {
		resp, err := http.Get(g.Base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a header: %d, want 401", path, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", g.Base+"/api/v1/board?pipeline=nope", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("unknown pipeline: %d, want 422", resp.StatusCode)
	}
}

// The stream says hello, then a change for a move made through the API.
func TestStream(t *testing.T) {
	g := startGateway(t, "{driver: bolt, path: "+filepath.Join(t.TempDir(), "sg.db")+"}", "http://127.0.0.1:9/x", "a")
	id := createItem(t, g.Base, "Ann", "ann@client.test", "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", g.Base+"/api/v1/board/stream", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func(prefix string) string {
		t.Helper()
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("stream ended before %q: %v", prefix, lines.Err())
		return ""
	}
	if l := next("event:"); l != "event: hello" {
		t.Fatalf("first event %q", l)
	}
	call(t, g.Base, "POST", "/api/v1/items/"+id+"/move", map[string]any{"stage": "won"})
	if l := next("event:"); l != "event: change" {
		t.Fatalf("event %q, want change", l)
	}
	if l := next("data:"); !strings.Contains(l, `"items"`) {
		t.Fatalf("data %q", l)
	}
}

// An event that reaches an item without moving it is listed for the item,
// on either store; one that moves it is not (the timeline has it).
func TestItemNonMoves(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) string
	}{
		{"bolt", func(t *testing.T) string { return "{driver: bolt, path: " + filepath.Join(t.TempDir(), "sg.db") + "}" }},
		{"redis", func(t *testing.T) string {
			srv := redisserver.Start(t)
			return "{driver: redis, url: " + srv.URL() + ", prefix: nonmoves}"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, tc.store(t), "http://127.0.0.1:9/x", "a")
			id := createItem(t, g.Base, "Ann", "ann@client.test", "bob")
			postEvent(t, g.Base, "paid-1", "crm.invoice_paid", "ann@client.test") // moves to won
			postEvent(t, g.Base, "call-1", "crm.called", "ann@client.test")       // closed: no move
			deadline := time.Now().Add(5 * time.Second)
			for {
				evs := call(t, g.Base, "GET", "/api/v1/board/items/"+id+"/events", nil)["events"].([]any)
				if len(evs) == 1 {
					ev := evs[0].(map[string]any)
					if ev["event_id"] != "api:call-1" || ev["type"] != "crm.called" || ev["stage"] != "won" {
						t.Fatalf("non-move %v", ev)
					}
					return
				}
				if len(evs) > 1 || time.Now().After(deadline) {
					t.Fatalf("non-moves %v, want the call only", evs)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// The board's cards: contact, responsible, the time the item entered its
// stage and the event that moved it there; stages with their words.
func TestBoardCards(t *testing.T) {
	g := startGateway(t, "{driver: bolt, path: "+filepath.Join(t.TempDir(), "sg.db")+"}", "http://127.0.0.1:9/x", "a")
	ann := createItem(t, g.Base, "Ann", "ann@client.test", "bob")
	ben := createItem(t, g.Base, "", "ben@client.test", "")
	postEvent(t, g.Base, "call-1", "crm.called", "ann@client.test")
	b := call(t, g.Base, "GET", "/api/v1/board", nil)
	p := b["pipeline"].(map[string]any)
	if p["id"] != "sales" || len(p["stages"].([]any)) != 5 {
		t.Fatalf("pipeline %v", p)
	}
	won := p["stages"].([]any)[3].(map[string]any)
	if won["final"] != "success" || won["triggers"].([]any)[0].(map[string]any)["text"] != "Moves here when the CRM reports invoice paid." {
		t.Errorf("stage won: %v", won)
	}
	cards := map[string]map[string]any{}
	for _, c := range b["items"].([]any) {
		cards[c.(map[string]any)["id"].(string)] = c.(map[string]any)
	}
	a := cards[ann]
	if a["stage"] != "contacted" || a["contact_name"] != "Ann" || a["responsible"] != "bob" {
		t.Errorf("Ann's card: %v", a)
	}
	ev, _ := a["last_event"].(map[string]any)
	if ev["id"] != "api:call-1" || ev["type"] != "crm.called" || ev["connector"] != "api" {
		t.Errorf("Ann's last event: %v", a["last_event"])
	}
	entered, _ := time.Parse(time.RFC3339Nano, a["entered_at"].(string))
	updated, _ := time.Parse(time.RFC3339Nano, a["updated_at"].(string))
	if entered.IsZero() || entered.After(updated.Add(time.Second)) {
		t.Errorf("Ann entered at %v, updated at %v", a["entered_at"], a["updated_at"])
	}
	if c := cards[ben]; c["identity"] != "ben@client.test" || c["last_event"] != nil || c["stage"] != "new" {
		t.Errorf("Ben's card: %v", c)
	}
}

package livechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/fakes"

	"github.com/gorilla/websocket"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

// t0 is the fixed start of the tests' clock.
var t0 = time.Date(2026, 3, 1, 10, 15, 30, 0, time.UTC)

const (
	testSecret  = "livechat-test-secret-0123456789"
	aliceToken  = "alice-token-0123456789"
	bobToken    = "bob-token-0123456789ab"
	siteOrigin  = "https://www.example.com"
	otherOrigin = "https://evil.example.net"
)

// clock and fakeIntake are the shared test doubles.
type (
	clock      = fakes.Clock
	fakeIntake = fakes.Intake
)

// testConfig is a valid config with two channels and two agents, and
// timings short enough for tests.
func testConfig() *Config {
	c := NewConfig()
	c.Secret = testSecret
	c.Channels = []Channel{{ID: "sales", Name: "Sales"}, {ID: "support", Name: "Support"}}
	c.AllowedOrigins = []string{siteOrigin}
	c.Agents = []Agent{{Name: "alice", Token: aliceToken}, {Name: "bob", Token: bobToken}}
	c.Ask = []string{"name", "email"}
	c.Limits.PingInterval = 200 * time.Millisecond
	c.Limits.PongWait = time.Second
	c.Limits.Resync = 200 * time.Millisecond
	return c
}

// harness is one connector on an httptest server, on a real bolt store.
type harness struct {
	t      *testing.T
	c      *Connector
	srv    *httptest.Server
	in     *fakeIntake
	clk    *clock
	st     *bolt.Store
	wsBase string
}

func openBolt(t *testing.T) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(store.Config{Driver: "bolt", Path: filepath.Join(t.TempDir(), "sg.db")}, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	return newHarnessRecords(t, mutate, nil)
}

// newHarnessRecords is newHarness with the connector's records seen
// through wrap (to step in between its writes).
func newHarnessRecords(t *testing.T, mutate func(*Config), wrap func(store.Records) store.Records) *harness {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(cfg)
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatalf("test config: %v", errs)
	}
	h := &harness{t: t, in: &fakeIntake{}, clk: fakes.NewClock(t0), st: openBolt(t)}
	var rec store.Records = h.st
	if wrap != nil {
		rec = wrap(rec)
	}
	c, err := New(connectors.Base{Name: "chat", Type: "livechat"}, cfg, connectors.Deps{
		Intake: h.in, Now: h.clk.Now, Records: rec, Broadcast: h.st,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	h.srv = httptest.NewServer(c)
	h.wsBase = "ws" + strings.TrimPrefix(h.srv.URL, "http")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		h.srv.Close()
		h.st.Close()
	})
	return h
}

// sessions counts the connector's live connections.
func (h *harness) sessions() int { return h.c.Connections() }

// frame is any server frame, decoded.
type frame struct {
	Out
	Msg Message // the message fields of a message frame
	raw string
}

// client is a gorilla websocket client of a harness.
type client struct {
	t       *testing.T
	ws      *websocket.Conn
	backlog []frame // frames read while waiting for another type
}

func dial(t *testing.T, url, origin string) (*client, *http.Response, error) {
	t.Helper()
	hdr := http.Header{}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	ws, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if err != nil {
		return nil, resp, err
	}
	cl := &client{t: t, ws: ws}
	t.Cleanup(func() { ws.Close() })
	return cl, resp, nil
}

// visitor connects a visitor from the allowed origin and says hello.
func (h *harness) visitor(hello map[string]any) (*client, frame) {
	h.t.Helper()
	cl, _, err := dial(h.t, h.wsBase+"/ws", siteOrigin)
	if err != nil {
		h.t.Fatal(err)
	}
	if hello == nil {
		hello = map[string]any{}
	}
	hello["type"] = TypeHello
	cl.send(hello)
	return cl, cl.expect(TypeWelcome)
}

// agent connects an agent and says hello.
func (h *harness) agent(token string, cursors ...Cursor) (*client, frame) {
	h.t.Helper()
	cl, _, err := dial(h.t, h.wsBase+"/agent/ws", "")
	if err != nil {
		h.t.Fatal(err)
	}
	cl.send(map[string]any{"type": TypeHello, "token": token, "cursors": cursors})
	return cl, cl.expect(TypeWelcome)
}

func (cl *client) send(v any) {
	cl.t.Helper()
	if err := cl.ws.WriteJSON(v); err != nil {
		cl.t.Fatalf("send %v: %v", v, err)
	}
}

// say sends a visitor message.
func (cl *client) say(id, text string) {
	cl.t.Helper()
	cl.send(map[string]any{"type": TypeMessage, "id": id, "text": text})
}

// next reads one frame, failing the test after 5s.
func (cl *client) next() (frame, error) {
	_ = cl.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := cl.ws.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(b, &f.Out); err != nil {
		return frame{}, fmt.Errorf("frame %s: %w", b, err)
	}
	if f.Type == TypeMessage {
		_ = json.Unmarshal(b, &f.Msg)
	}
	f.raw = string(b)
	return f, nil
}

// expect returns the first frame of type typ, reading more as needed;
// frames of other types wait in the backlog for a later expect, so each
// type is seen in order.
func (cl *client) expect(typ string) frame {
	cl.t.Helper()
	for i, f := range cl.backlog {
		if f.Type == typ {
			cl.backlog = append(cl.backlog[:i:i], cl.backlog[i+1:]...)
			return f
		}
	}
	for {
		f, err := cl.next()
		if err != nil {
			cl.t.Fatalf("waiting for %s: %v (backlog %d frames)", typ, err, len(cl.backlog))
		}
		if f.Type == typ {
			return f
		}
		cl.backlog = append(cl.backlog, f)
	}
}

// closeCode reads until the connection ends and returns the close code
// (1006 when it ended without a close frame).
func (cl *client) closeCode() int {
	cl.t.Helper()
	for {
		_, err := cl.next()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return websocket.CloseAbnormalClosure
	}
}

// messages returns the stored messages of a conversation.
func (h *harness) messages(conv string) []Message {
	h.t.Helper()
	msgs, err := h.c.st.readMessages(context.Background(), conv, 0, 10000)
	if err != nil {
		h.t.Fatal(err)
	}
	return msgs
}

// waitFor polls cond every 5 ms until it holds, or fails the test after
// within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Package livechat is the live chat connector: a visitor widget and an
// agent console talking over websockets (github.com/gorilla/websocket).
// Every message of a conversation is stored with a sequence number before
// it is acknowledged or shown, so a client that reconnects with its cursor
// gets exactly what it missed; the visitor's messages and the agents'
// acceptances become chat.started, chat.message and chat.accepted events.
//
// Routes, under /in/{name}/: GET /ws (visitor websocket), GET /agent/ws
// (agent websocket), GET /widget.js (the embeddable widget), GET /demo (a
// page with the widget) and GET /agent (the agent console). The JSON
// protocol is described in README.section.md.
package livechat

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// opTimeout bounds the store and intake work for one frame.
const opTimeout = 10 * time.Second

// shutdownGrace is how long Run waits, after asking clients to go away,
// before cutting the connections that remain.
const shutdownGrace = 3 * time.Second

// Kind is the connector kind "livechat".
var Kind = connectors.NewKind("livechat", NewConfig, New)

// Connector is one live chat connector instance.
type Connector struct {
	*connectors.Push
	name     string
	cfg      *Config
	region   string // for phone numbers without a country code
	log      *slog.Logger
	intake   connectors.Intake
	now      func() time.Time
	st       *state
	bc       store.Broadcaster
	finder   connectors.ItemFinder // the visitor's items for the console; may be nil
	topic    string
	hub      *hub
	signer   tokenSigner
	upgrader websocket.Upgrader
	mux      *http.ServeMux
	allowed  map[string]bool
	allowAny bool
	agentOK  map[string]bool
	files    map[string]asset

	base   context.Context // of the connections' work; cancelled at shutdown
	cancel context.CancelFunc

	mu       sync.Mutex // guards the fields below
	closed   bool
	sessions map[*session]struct{}
	wg       sync.WaitGroup // one per connection
}

var (
	_ connectors.HTTPConnector = (*Connector)(nil)
	_ connectors.Service       = (*Connector)(nil)
)

// New builds a live chat connector from its validated config. It needs
// the store's records (deps.Records); without a broadcaster it fans out
// within this process only.
func New(base connectors.Base, cfg *Config, deps connectors.Deps) (*Connector, error) {
	push, err := connectors.NewPush("livechat", base, deps, cfg.Limits.MaxFrame)
	if err != nil {
		return nil, err
	}
	if deps.Records == nil {
		return nil, fmt.Errorf("livechat %s: the store keeps no records", base.Name)
	}
	c := &Connector{
		Push: push, name: base.Name, cfg: cfg, log: push.Logger(), intake: deps.Intake, now: push.Now,
		region:  normalize.Region(cfg.DefaultRegion, deps.Region),
		topic:   "livechat/" + base.Name,
		signer:  tokenSigner{key: []byte(cfg.Secret), connector: base.Name},
		st:      &state{rec: deps.Records, prefix: "livechat/" + base.Name + "/", retention: cfg.Retention},
		allowed: map[string]bool{}, agentOK: map[string]bool{}, sessions: map[*session]struct{}{},
	}
	c.bc, c.finder = deps.Broadcast, deps.Finder
	if c.bc == nil {
		c.bc = &localBroadcaster{}
	}
	c.hub = newHub(c.st, c.log, cfg.Limits.History)
	for _, o := range cfg.AllowedOrigins {
		c.allowAny = c.allowAny || o == "*"
		c.allowed[canonicalOrigin(o)] = true
	}
	for _, o := range cfg.AgentOrigins {
		c.agentOK[canonicalOrigin(o)] = true
	}
	c.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.Limits.WriteWait,
		WriteBufferPool:  &sync.Pool{},
		CheckOrigin:      func(*http.Request) bool { return true }, // checked before Upgrade
	}
	if c.files, err = loadAssets(); err != nil {
		return nil, fmt.Errorf("livechat %s: %w", base.Name, err)
	}
	c.base, c.cancel = context.WithCancel(context.Background())
	c.mux = http.NewServeMux()
	routes := map[string]http.HandlerFunc{
		"/ws": c.serveVisitor, "/agent/ws": c.serveAgent, "/widget.js": c.serveAsset("widget.js"),
		"/demo": c.serveAsset("demo.html"), "/agent": c.serveAsset("console.html"),
	}
	for path, h := range routes {
		c.mux.HandleFunc("GET "+path, h)
	}
	c.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := routes[r.URL.Path]; ok { // every route is GET (and HEAD)
			w.Header().Set("Allow", "GET, HEAD")
			c.Refuse(w, r, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use GET")
			return
		}
		c.Refuse(w, r, http.StatusNotFound, "not_found", "no such live chat route")
	})
	return c, nil
}

// ServeHTTP routes the connector's requests.
func (c *Connector) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Run delivers broadcasts to the local connections until ctx is done,
// then asks every client to go away (1001) and waits for the connections
// to end.
func (c *Connector) Run(ctx context.Context) error {
	c.hub.run(ctx, c.bc, c.topic, c.cfg.Limits.Resync)
	c.mu.Lock()
	c.closed = true
	all := make([]*session, 0, len(c.sessions))
	for s := range c.sessions {
		all = append(all, s)
	}
	c.mu.Unlock()
	for _, s := range all {
		s.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		for _, s := range all {
			s.kill()
		}
		<-done
	}
	c.cancel()
	return nil
}

// upgrade turns the request into a session, unless the connector is
// shutting down.
func (c *Connector) upgrade(w http.ResponseWriter, r *http.Request, agent string) (*session, bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		w.Header().Set("Retry-After", "5")
		c.Refuse(w, r, http.StatusServiceUnavailable, "shutting_down", "the gateway is shutting down")
		return nil, false
	}
	c.wg.Add(1)
	c.mu.Unlock()
	ws, err := c.upgrader.Upgrade(w, r, nil)
	if err != nil { // the upgrader has answered
		c.wg.Done()
		c.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return nil, false
	}
	s := c.newSession(ws, agent)
	c.mu.Lock()
	c.sessions[s] = struct{}{}
	c.mu.Unlock()
	return s, true
}

// Connections returns how many websockets (visitors and agents) are open.
func (c *Connector) Connections() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}

// runSession reads the session's frames until it ends, then releases it.
func (c *Connector) runSession(s *session, handle func(Frame) bool) {
	defer c.endSession(s)
	s.loop(handle)
}

func (c *Connector) endSession(s *session) {
	s.end()
	c.mu.Lock()
	delete(c.sessions, s)
	c.mu.Unlock()
	c.wg.Done()
}

// opContext bounds the work for one frame.
func (c *Connector) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.base, opTimeout)
}

// loop reads frames until the connection ends or handle returns false.
// Over-rate frames are answered rate_limited (and a client that persists
// is closed with 1008), malformed ones bad_frame. Each frame is decoded
// and handled on a goroutine of its own (see work).
func (s *session) loop(handle func(Frame) bool) {
	for {
		b, err := s.read()
		if err != nil {
			s.c.log.Debug("websocket closed", "agent", s.agent, "err", err)
			return
		}
		ok, err := s.allow()
		if err != nil {
			s.enqueue(errorFrame(CodeRateLimited, err.Error(), "", false))
			s.closeWith(websocket.ClosePolicyViolation, CodeRateLimited)
			return
		}
		if !ok {
			s.enqueue(errorFrame(CodeRateLimited, "too many frames; send this one again later", peekID(b), true))
			continue
		}
		more := true
		s.work(func() {
			f, err := DecodeFrame(b, s.c.cfg.Limits.MaxText)
			if err != nil {
				s.enqueue(errorFrame(CodeBadFrame, err.Error(), peekID(b), false))
				return
			}
			more = handle(f)
		})
		if !more {
			return
		}
	}
}

// work runs f on a goroutine of its own and waits for it. Decoding and
// the store work of a frame need a deep stack; run on the reading
// goroutine, which lives as long as the connection, that stack would stay
// with every idle connection. A panic drops the connection, not the process.
func (s *session) work(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				s.c.log.Error("livechat: panic handling a frame", "panic", r, "stack", string(debug.Stack()))
				s.kill()
			}
		}()
		f()
	}()
	<-done
}

// peekID returns the id of a frame that could not be handled, for the
// error frame's ref.
func peekID(b []byte) string {
	var f struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(b, &f) != nil || !clientIDPattern.MatchString(f.ID) {
		return ""
	}
	return f.ID
}

// visitorOrigin reports whether a visitor upgrade's Origin is allowed: a
// listed origin, any origin with "*", the gateway's own origin, and no
// Origin only with allow_no_origin.
func (c *Connector) visitorOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return c.cfg.AllowNoOrigin
	}
	o = canonicalOrigin(o)
	return c.allowAny || c.allowed[o] || sameOrigin(o, r)
}

// agentOrigin reports whether an agent upgrade's Origin is allowed: none
// (a program), the gateway's own, or one of agent_origins.
func (c *Connector) agentOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	o = canonicalOrigin(o)
	return c.agentOK[o] || sameOrigin(o, r)
}

func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

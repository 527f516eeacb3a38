// Package tracking is the email tracking connector (kind "tracking"). It
// prepares tracked messages (POST /api/v1/messages: a complete RFC 5322
// message whose links point at signed click URLs, with an open pixel),
// serves the pixel (GET /t/o/{token}) and the click redirect (GET
// /t/c/{token}), scores every hit as human or machine-made, and turns hits
// into email.opened and email.clicked events for the message's item. It
// also serves a small site script (GET /t/v.js, POST /t/v) that reports
// page views of known visitors as site.visit and site.return.
//
// Tokens carry the message and link, signed with HMAC-SHA256; destinations
// live in the store (and a bounded in-memory cache), never in the URL, and
// nothing taken from a request ever becomes a redirect target.
//
// The /t/… routes and the API routes are fixed paths: a gateway can serve
// one tracking connector only (a second would register the same routes).
package tracking

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/connectors/tracking/botscore"
	"github.com/stagegate/stagegate/connectors/tracking/internal/gencache"
	"github.com/stagegate/stagegate/store"
)

// Kind is the connector kind "tracking".
// Its routes are fixed paths: the config check refuses a second one.
var Kind = connectors.NewKind("tracking", NewConfig, New).WithRoutes(routePatterns()...)

// Tracker is a connector of kind tracking.
type Tracker struct {
	*connectors.Push
	cfg     *Config
	records store.Records
	hits    *hitWriter            // the hit lists' writes, in groups
	later   *pendingHits          // hits answered before they are stored
	items   connectors.ItemGetter // nil: item ids are not checked
	signer  *tokenSigner
	scorer  *botscore.Scorer
	public  string // the gateway's public URL, without a trailing slash
	prefix  string // "tracking/<name>/"
	msgs    *gencache.Cache[MsgID, *msgState]
	stats   stats
	limit   connectors.WarnLimiter
	origins map[string]bool // site origins allowed to report visits; "*" any
}

var (
	_ connectors.RouteConnector = (*Tracker)(nil)
	_ connectors.APIConnector   = (*Tracker)(nil)
)

// New builds a tracking connector from its validated config. It needs the
// store's Records (deps.Records) and the gateway's public URL.
func New(base connectors.Base, cfg *Config, deps connectors.Deps) (*Tracker, error) {
	p, err := connectors.NewPush("tracking", base, deps, cfg.MaxBody)
	if err != nil {
		return nil, err
	}
	if deps.Records == nil {
		return nil, fmt.Errorf("tracking %s: the store does not keep connector records", base.Name)
	}
	if !strings.HasPrefix(deps.PublicURL, "http://") && !strings.HasPrefix(deps.PublicURL, "https://") {
		return nil, fmt.Errorf("tracking %s: public_url %q is not an absolute http(s) URL", base.Name, deps.PublicURL)
	}
	signer, err := newSigner(cfg.Keys)
	if err != nil {
		return nil, fmt.Errorf("tracking %s: %w", base.Name, err)
	}
	scorer, err := botscore.New(cfg.Scoring.Threshold, cfg.Scoring.Quick, cfg.Scoring.BurstWindow, cfg.Scoring.Agents)
	if err != nil {
		return nil, fmt.Errorf("tracking %s: %w", base.Name, err)
	}
	t := &Tracker{
		Push: p, cfg: cfg, records: deps.Records, items: deps.Items, signer: signer,
		hits:    newHitWriter(deps.Records, cfg.StoreTimeout),
		later:   newPendingHits(cfg.PendingHits, cfg.StoreTimeout),
		scorer:  scorer,
		public:  strings.TrimRight(deps.PublicURL, "/"),
		prefix:  "tracking/" + base.Name + "/",
		msgs:    gencache.New[MsgID, *msgState](cfg.CacheSize),
		origins: map[string]bool{},
	}
	for _, o := range cfg.Site.AllowedOrigins {
		t.origins[strings.TrimSuffix(o, "/")] = true
	}
	return t, nil
}

// route is one fixed route of the connector.
type route struct {
	pattern string
	handler http.HandlerFunc
}

// publicRoutes are the pixel, the click redirect and the site script.
// "GET" patterns answer HEAD too. The pixel and click patterns take the
// whole rest of the path ({token...}): an empty token, a trailing slash or
// a "/" inside the token still reaches the connector, so the pixel is
// always the GIF and a bad click always the connector's own 404 page,
// never the router's plain-text 404. t may be nil (for the patterns only).
func (t *Tracker) publicRoutes() []route {
	return []route{
		{"GET /t/o", t.servePixel},
		{"GET /t/o/{token...}", t.servePixel},
		{"GET /t/c", t.serveClick},
		{"GET /t/c/{token...}", t.serveClick},
		{"GET /t/v.js", t.serveScript},
		{"POST /t/v", t.serveVisit},
		{"OPTIONS /t/v", t.serveVisit},
	}
}

// apiRoutes are the tracked-message API (behind the gateway's bearer auth).
// t may be nil (for the patterns only).
func (t *Tracker) apiRoutes() []route {
	return []route{
		{"POST /api/v1/messages", t.servePrepare},
		{"GET /api/v1/messages/{id}", t.serveMessage},
		{"POST /api/v1/messages/{id}/sent", t.serveSent},
		{"POST /api/v1/messages/{id}/replied", t.serveReplied},
		{"POST /api/v1/visitors/{id}/link", t.serveLinkVisitor},
		{"GET /api/v1/tracking/stats", t.serveStats},
	}
}

// routePatterns lists the patterns of every fixed route, for Kind.Routes:
// they are fixed paths, so a gateway serves one tracking connector.
func routePatterns() []string {
	var t *Tracker
	var out []string
	for _, r := range append(t.publicRoutes(), t.apiRoutes()...) {
		out = append(out, r.pattern)
	}
	return out
}

// PublicRoutes mounts the pixel, the click redirect and the site script.
func (t *Tracker) PublicRoutes(mux *http.ServeMux) {
	for _, r := range t.publicRoutes() {
		mux.HandleFunc(r.pattern, r.handler)
	}
}

// APIRoutes mounts the tracked-message API (behind the gateway's bearer auth).
func (t *Tracker) APIRoutes(mux *http.ServeMux) {
	for _, r := range t.apiRoutes() {
		mux.HandleFunc(r.pattern, r.handler)
	}
}

// pixelURL returns the open pixel URL of message m.
func (t *Tracker) pixelURL(m MsgID) string { return t.public + "/t/o/" + t.signer.Token(m, 0) }

// clickURL returns the click URL of link idx (from 1) of message m.
func (t *Tracker) clickURL(m MsgID, idx int) string {
	return t.public + "/t/c/" + t.signer.Token(m, idx)
}

// state returns the cached state of message id, loading it from the store
// on a miss. A message unknown to the store is store.ErrNotFound.
// A cached message past its retention is gone, as it is from the store.
func (t *Tracker) state(ctx context.Context, id MsgID) (*msgState, error) {
	st, cached := t.msgs.Get(id)
	if cached {
		st.mu.Lock()
		expired := t.Now().After(st.sentAt.Add(t.cfg.Retention))
		st.mu.Unlock()
		if !expired {
			return st, nil
		}
	}
	m, err := t.loadMessage(ctx, id.String())
	if err != nil {
		return nil, err
	}
	st = newMsgState(t.Name(), t.hitsKey(m.ID), m)
	if cached { // reloaded after its retention: the store kept it longer
		t.msgs.Set(id, st)
		return st, nil
	}
	return t.msgs.Add(id, st), nil
}

// storeCtx bounds a store call of the hit paths. It is not cancelled when
// the client goes away: a hit already scored is recorded.
func (t *Tracker) storeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), t.cfg.StoreTimeout)
}

// isNotFound reports whether err means "no such record".
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

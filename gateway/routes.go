package gateway

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stagegate/stagegate/actions"
	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/connectors/imap"
	"github.com/stagegate/stagegate/connectors/livechat"
	"github.com/stagegate/stagegate/connectors/telephony"
	"github.com/stagegate/stagegate/connectors/tracking"
	"github.com/stagegate/stagegate/connectors/webhook"
	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/httpx"
)

// Kinds maps each connector kind named in the config to its constructor.
// Wiring is explicit: a new kind is one line here.
var Kinds = map[string]connectors.Kind{
	"webhook":   webhook.WebhookKind,
	"forms":     webhook.FormsKind,
	"telephony": telephony.Kind,
	"tracking":  tracking.Kind,
	"livechat":  livechat.Kind,
	"imap":      imap.Kind,
}

// send_email's save_to takes the imap connectors, found by the assertion
// in mountConnectors.
var _ actions.SentSaver = (*imap.Connector)(nil)

// ActionTypes lists the action types the gateway can run, for the config
// loader.
func ActionTypes() map[string]engine.ActionKind { return actions.Kinds() }

func (g *Gateway) routes(mux, api *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", g.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.m.reg, promhttp.HandlerOpts{}))
	g.routesAPI(mux, api)
	mux.Handle("/", fallback(mux, "/")) // unknown paths: JSON 404, or 405 with Allow
}

// readyz answers 200 when the store answers a ping within two seconds,
// with each connector's health in checks; a connector that is not ok makes
// the status "degraded" (still 200: the instance can take input).
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]any{"store": "ok"}
	status, code := "ready", http.StatusOK
	if err := g.st.Ping(ctx); err != nil {
		g.log.Warn("readyz: store unreachable", "err", err)
		checks["store"] = "unreachable"
		status, code = "unavailable", http.StatusServiceUnavailable
	}
	for _, h := range g.health {
		ok, detail := h.Health()
		checks["connector:"+h.Name()] = detail
		if !ok && code == http.StatusOK {
			status = "degraded"
		}
	}
	httpx.WriteJSON(w, code, map[string]any{"status": status, "checks": checks})
}

// mountConnectors builds every configured connector and mounts the HTTP
// ones under /in/{name}/, their public routes on mux and their API routes
// on api (which routesAPI puts behind auth).
func (g *Gateway) mountConnectors(mux, api *http.ServeMux) error {
	for _, c := range g.cfg.Connectors {
		kind, ok := Kinds[c.Type]
		if !ok {
			return fmt.Errorf("gateway: connector %s: unknown type %q", c.Name, c.Type)
		}
		deps := connectors.Deps{
			Logger: g.log.With("connector", c.Name), Intake: g.intake, Now: g.now, PublicURL: g.cfg.PublicURL,
			Records: g.st, Broadcast: g.st, Region: g.cfg.Engine.DefaultRegion, Items: g.st, Finder: g.eng,
		}
		conn, err := kind.New(c.Base, c.Settings, deps)
		if err != nil {
			return fmt.Errorf("gateway: connector %s: %w", c.Name, err)
		}
		if h, ok := conn.(connectors.HTTPConnector); ok {
			prefix := "/in/" + c.Name
			strip := stripPrefix(prefix, h)
			mux.Handle(prefix, strip)
			mux.Handle(prefix+"/", strip)
		}
		if rc, ok := conn.(connectors.RouteConnector); ok {
			if err := register(c.Name, func() { rc.PublicRoutes(mux) }); err != nil {
				return err
			}
		}
		if ac, ok := conn.(connectors.APIConnector); ok {
			if err := register(c.Name, func() { ac.APIRoutes(api) }); err != nil {
				return err
			}
		}
		if t, ok := conn.(*tracking.Tracker); ok {
			g.tracker = t // send_email builds its messages with it
		}
		if s, ok := conn.(actions.SentSaver); ok {
			if g.sentBox == nil {
				g.sentBox = map[string]actions.SentSaver{}
			}
			g.sentBox[c.Name] = s // send_email's save_to
		}
		if h, ok := conn.(connectors.HealthConnector); ok {
			g.health = append(g.health, h)
		}
		if m, ok := conn.(connectors.MetricsConnector); ok {
			if err := g.m.reg.Register(m.Collector()); err != nil {
				return fmt.Errorf("gateway: connector %s: metrics: %w", c.Name, err)
			}
		}
		if s, ok := conn.(connectors.Service); ok {
			g.services = append(g.services, s)
		}
	}
	return nil
}

// stripPrefix removes prefix from the path; the connector sees "/" for the
// bare prefix. Like http.StripPrefix it copies the request and its URL
// only: the headers are shared, not cloned (a deep Request.Clone was 2% of
// the gateway's CPU under webhook load).
func stripPrefix(prefix string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path[len(prefix):]
		if p == "" {
			p = "/"
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path, u.RawPath = p, ""
		r2.URL = &u
		h.ServeHTTP(w, r2)
	})
}

// register runs a connector's route registration and turns the panic of
// http.ServeMux on a conflicting pattern into a start-up error that names
// the connector. The config check already refuses conflicts between kinds
// that declare their routes (connectors.Kind.Routes); this is the backstop.
func register(name string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gateway: connector %s: its routes conflict with another connector's: %s", name, muxPanicMessage(r))
		}
	}()
	f()
	return nil
}

// registeredAt is the Go source position http.ServeMux puts in its panic.
var registeredAt = regexp.MustCompile(` \(registered at [^)]*\)`)

// muxPanicMessage is the panic of http.ServeMux without Go source paths,
// on one line.
func muxPanicMessage(r any) string {
	msg := registeredAt.ReplaceAllString(fmt.Sprint(r), "")
	return strings.Join(strings.Fields(msg), " ")
}

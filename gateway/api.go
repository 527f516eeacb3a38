package gateway

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// routesAPI mounts the REST API under /api/v1/, behind bearer-token auth.
// api may already hold connectors' API routes.
func (g *Gateway) routesAPI(mux, api *http.ServeMux) {
	api.HandleFunc("POST /api/v1/items", g.apiCreateItem)
	api.HandleFunc("GET /api/v1/items", g.apiListItems)
	api.HandleFunc("GET /api/v1/items/{id}", g.apiGetItem)
	api.HandleFunc("PATCH /api/v1/items/{id}", g.apiPatchItem)
	api.HandleFunc("POST /api/v1/items/{id}/move", g.apiMoveItem)
	api.HandleFunc("GET /api/v1/items/{id}/timeline", g.apiTimeline)
	api.HandleFunc("GET /api/v1/contacts", g.apiFindContacts)
	api.HandleFunc("GET /api/v1/contacts/{id}", g.apiGetContact)
	api.HandleFunc("POST /api/v1/events", g.apiPostEvent)
	api.HandleFunc("GET /api/v1/events/{id}", g.apiGetEvent)
	api.HandleFunc("GET /api/v1/events", g.apiListEvents)
	api.HandleFunc("POST /api/v1/events/{id}/retry", g.apiRetryEvent)
	api.HandleFunc("POST /api/v1/explain", g.apiExplain)
	api.HandleFunc("GET /api/v1/unmatched", g.apiUnmatched)
	api.HandleFunc("GET /api/v1/pipelines", g.apiPipelines)
	api.HandleFunc("GET /api/v1/actions", g.apiListActions)
	api.HandleFunc("GET /api/v1/actions/{id}", g.apiGetAction)
	api.HandleFunc("POST /api/v1/actions/{id}/retry", g.apiRetryAction)
	api.Handle("/api/v1/", fallback(api, "/api/v1/"))
	mux.HandleFunc("GET /api/v1/openapi.json", serveOpenAPI) // public: the contract, no data
	mux.Handle("/api/v1/", g.auth(api))
}

// probeMethods are the methods fallback tries on a path to fill Allow.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// fallback answers what no route of mux took (mux sends it to the
// catch-all pattern self): 405 with Allow when the path has routes for
// other methods, else 404 — both as JSON errors, never the router's plain
// text.
func fallback(mux *http.ServeMux, self string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range probeMethods {
			probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
			if _, pattern := mux.Handler(probe); pattern != "" && pattern != self {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			httpx.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				r.Method+" is not allowed on "+r.URL.Path+"; use "+strings.Join(allow, ", "))
			return
		}
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such route: "+r.Method+" "+r.URL.Path)
	})
}

// auth checks "Authorization: Bearer <token>" against the configured tokens
// in constant time. A refusal is counted by route
// (stagegate_http_unauthorized_total) and logged at debug, without the
// token.
func (g *Gateway) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		tok, ok := bearerToken(h)
		valid := 0
		if ok {
			for _, t := range g.cfg.API.Tokens {
				valid |= subtle.ConstantTimeCompare([]byte(tok), []byte(t))
			}
		}
		if valid != 1 {
			route := routeOf(next, r)
			reason := "unknown token"
			switch {
			case strings.TrimSpace(h) == "":
				reason = "no Authorization header"
			case !ok:
				reason = "not a Bearer token"
			}
			g.m.unauthorized.WithLabelValues(route).Inc()
			g.log.Debug("api: unauthorized", "route", route, "method", r.Method, "path", r.URL.Path,
				"remote", r.RemoteAddr, "reason", reason)
			w.Header().Set("WWW-Authenticate", `Bearer realm="stagegate"`)
			httpx.WriteError(w, http.StatusUnauthorized, "unauthorized", "missing or invalid bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// routeOf is the pattern of the API route r would reach ("GET
// /api/v1/items/{id}"), a label of bounded cardinality; "other" for a path
// no route takes.
func routeOf(h http.Handler, r *http.Request) string {
	mux, ok := h.(*http.ServeMux)
	if !ok {
		return "other"
	}
	if _, pattern := mux.Handler(r); pattern != "" && pattern != "/api/v1/" {
		return pattern
	}
	return "other"
}

// bearerToken returns the token of an Authorization header of the Bearer
// scheme; the scheme is case-insensitive (RFC 7235), and spaces around the
// token are ignored.
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// resources names the thing an API path's {id} is, by the path's first
// segment after /api/v1/.
var resources = map[string]string{"items": "item", "contacts": "contact", "events": "event", "actions": "action"}

// notFoundMessage names what was not found: `no item "i_x"`.
func notFoundMessage(r *http.Request) string {
	id := r.PathValue("id")
	seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/api/v1/"), "/")
	if what, ok := resources[seg]; ok && id != "" {
		return "no " + what + " " + strconv.Quote(id)
	}
	return "not found: " + r.URL.Path
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// storeError answers for an error from the store or the engine.
func (g *Gateway) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		httpx.WriteError(w, http.StatusNotFound, "not_found", notFoundMessage(r))
	case errors.Is(err, engine.ErrUnknownStage):
		httpx.WriteError(w, http.StatusUnprocessableEntity, "unknown_stage", "unknown pipeline or stage")
	case errors.Is(err, engine.ErrSameStage):
		httpx.WriteError(w, http.StatusConflict, "same_stage", "the item is already at that stage")
	case unavailable(err):
		httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "store unavailable, try again")
	default:
		g.log.Error("api: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

type contactInput struct {
	Email string `json:"email"`
	Phone string `json:"phone"`
	Name  string `json:"name"`
}

type createItemInput struct {
	Pipeline    string            `json:"pipeline"`
	Stage       string            `json:"stage"`
	Responsible string            `json:"responsible"`
	Contact     *contactInput     `json:"contact"`
	Fields      map[string]string `json:"fields"`
}

func (g *Gateway) apiCreateItem(w http.ResponseWriter, r *http.Request) {
	var in createItemInput
	if !httpx.DecodeJSON(w, r, g.maxBody, &in) {
		return
	}
	if in.Pipeline == "" {
		httpx.WriteError(w, http.StatusUnprocessableEntity, "missing_pipeline", "pipeline is required (one of: "+g.pipelineList()+")")
		return
	}
	p, ok := g.pipelineStage(w, in.Pipeline, in.Stage)
	if !ok {
		return
	}
	it := store.Item{ID: "i_" + randomID(), Pipeline: p.ID, Stage: in.Stage, Responsible: in.Responsible, Fields: in.Fields}
	if in.Contact != nil {
		ids, msg := g.contactIdentities(*in.Contact)
		if msg != "" {
			httpx.WriteError(w, http.StatusUnprocessableEntity, "bad_contact", msg)
			return
		}
		c := store.Contact{ID: "c_" + randomID(), Name: in.Contact.Name, CreatedAt: g.now()}
		if len(ids) > 0 {
			c.ID = "c_" + normalize.Hash(ids[0].Kind, ids[0].Value)
		}
		c, _, err := g.st.EnsureContact(r.Context(), c, ids)
		if err != nil {
			g.storeError(w, r, err)
			return
		}
		it.ContactID = c.ID
	}
	created, err := g.eng.CreateItem(r.Context(), it, in.Responsible)
	if err != nil {
		g.storeError(w, r, err)
		return
	}
	g.board.Changed() // the engine does not report creations
	httpx.WriteJSON(w, http.StatusCreated, created)
}

func (g *Gateway) contactIdentities(c contactInput) ([]store.Identity, string) {
	var ids []store.Identity
	if c.Email != "" {
		em := normalize.NormalizeEmail(c.Email)
		if em == "" {
			return nil, "contact.email is not an email address"
		}
		ids = append(ids, store.Identity{Kind: store.IdentityEmail, Value: em})
	}
	if c.Phone != "" {
		ph, err := normalize.NormalizePhone(c.Phone, g.cfg.Engine.DefaultRegion)
		if err != nil {
			return nil, "contact.phone is not a valid phone number"
		}
		ids = append(ids, store.Identity{Kind: store.IdentityPhone, Value: ph})
	}
	return ids, ""
}

// pipelineList is the configured pipelines' ids, comma-separated.
func (g *Gateway) pipelineList() string {
	var ids []string
	for _, p := range g.eng.Pipelines() {
		ids = append(ids, p.ID)
	}
	return strings.Join(ids, ", ")
}

// unknownPipeline answers 422 naming the pipeline and the known ones.
func (g *Gateway) unknownPipeline(w http.ResponseWriter, id string) {
	httpx.WriteError(w, http.StatusUnprocessableEntity, "unknown_pipeline",
		"unknown pipeline "+strconv.Quote(id)+" (pipelines: "+g.pipelineList()+")")
}

// pipelineStage returns the pipeline id names, checking that stage (when
// not empty) is one of its stages; otherwise it has answered 422 naming
// what is unknown and what is known.
func (g *Gateway) pipelineStage(w http.ResponseWriter, id, stage string) (engine.Pipeline, bool) {
	p, ok := g.eng.Pipeline(id)
	if !ok {
		g.unknownPipeline(w, id)
		return p, false
	}
	if stage != "" && !hasStage(p, stage) {
		unknownStage(w, p, stage)
		return p, false
	}
	return p, true
}

// unknownStage answers 422 naming the stage and the stages of p.
func unknownStage(w http.ResponseWriter, p engine.Pipeline, stage string) {
	ids := make([]string, len(p.Stages))
	for i, s := range p.Stages {
		ids[i] = s.ID
	}
	httpx.WriteError(w, http.StatusUnprocessableEntity, "unknown_stage",
		"unknown stage "+strconv.Quote(stage)+" in pipeline "+p.ID+" (stages: "+strings.Join(ids, ", ")+")")
}

func hasStage(p engine.Pipeline, id string) bool {
	for _, s := range p.Stages {
		if s.ID == id {
			return true
		}
	}
	return false
}

func (g *Gateway) apiGetItem(w http.ResponseWriter, r *http.Request) {
	it, err := g.st.GetItem(r.Context(), r.PathValue("id"))
	if err == nil {
		w.Header().Set("ETag", etag(it.Version))
	}
	g.reply(w, r, it, err)
}

func (g *Gateway) apiGetContact(w http.ResponseWriter, r *http.Request) {
	c, err := g.st.GetContact(r.Context(), r.PathValue("id"))
	g.reply(w, r, c, err)
}

// reply answers 200 with v, or the error of the store or engine call that
// produced it.
func (g *Gateway) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		g.storeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, v)
}

// queryLimit reads ?limit= (1 to 1000), def when absent. On a bad value it
// has answered 400 and returns false.
func queryLimit(w http.ResponseWriter, r *http.Request, def int) (int, bool) {
	l := r.URL.Query().Get("limit")
	if l == "" {
		return def, true
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > 1000 {
		httpx.WriteError(w, http.StatusBadRequest, "bad_limit", "limit must be 1..1000")
		return 0, false
	}
	return n, true
}

type moveInput struct {
	Stage  string `json:"stage"`
	AsUser string `json:"as_user"`
}

func (g *Gateway) apiMoveItem(w http.ResponseWriter, r *http.Request) {
	var in moveInput
	if !httpx.DecodeJSON(w, r, g.maxBody, &in) {
		return
	}
	if in.Stage == "" {
		httpx.WriteError(w, http.StatusUnprocessableEntity, "missing_stage", "stage is required")
		return
	}
	id := r.PathValue("id")
	it, err := g.eng.MoveManual(r.Context(), id, in.Stage, in.AsUser)
	if errors.Is(err, engine.ErrUnknownStage) {
		if cur, gerr := g.st.GetItem(r.Context(), id); gerr == nil {
			if p, ok := g.eng.Pipeline(cur.Pipeline); ok {
				unknownStage(w, p, in.Stage)
				return
			}
		}
	}
	g.reply(w, r, it, err)
}

func (g *Gateway) apiTimeline(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := g.st.GetItem(r.Context(), id); err != nil {
		g.storeError(w, r, err)
		return
	}
	tl, err := g.st.Timeline(r.Context(), id)
	if err != nil {
		g.storeError(w, r, err)
		return
	}
	if tl == nil {
		tl = []store.TimelineEntry{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"entries": tl})
}

func (g *Gateway) apiPipelines(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"pipelines": g.eng.Pipelines()})
}

func randomID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

package gateway

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/store"
)

// actionOptions hands the actions section's dispatch policy to the engine
// (which lengthens the lease for long action timeouts).
func (g *Gateway) actionOptions() engine.ActionOptions {
	return engine.ActionOptions{ActionPolicy: g.cfg.Actions.ActionPolicy, Grace: g.shutdown / 3, Observer: g.m}
}

// apiListActions answers GET /api/v1/actions?status=&item=&limit=: action
// runs, most recently updated first.
func (g *Gateway) apiListActions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.OutboxFilter{Status: q.Get("status"), ItemID: q.Get("item"), Limit: 100}
	if f.Status != "" && !slices.Contains(store.OutboxStatuses, f.Status) {
		httpx.WriteError(w, http.StatusBadRequest, "bad_status", "status must be one of "+strings.Join(store.OutboxStatuses, ", "))
		return
	}
	var ok bool
	if f.Limit, ok = queryLimit(w, r, f.Limit); !ok {
		return
	}
	es, err := g.st.ListOutbox(r.Context(), f)
	if err != nil {
		g.storeError(w, r, err)
		return
	}
	if es == nil {
		es = []store.OutboxEntry{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"actions": es})
}

// apiGetAction answers GET /api/v1/actions/{id}.
func (g *Gateway) apiGetAction(w http.ResponseWriter, r *http.Request) {
	e, err := g.st.GetOutbox(r.Context(), r.PathValue("id"))
	g.reply(w, r, e, err)
}

// apiRetryAction answers POST /api/v1/actions/{id}/retry: a failed action
// runs again now, with a fresh set of attempts and the same idempotency key.
func (g *Gateway) apiRetryAction(w http.ResponseWriter, r *http.Request) {
	e, err := g.st.RetryOutbox(r.Context(), r.PathValue("id"), g.now())
	if errors.Is(err, store.ErrConflict) {
		httpx.WriteError(w, http.StatusConflict, "not_failed", "only a failed action can be retried")
		return
	}
	if err != nil {
		g.storeError(w, r, err)
		return
	}
	g.eng.Wake()
	httpx.WriteJSON(w, http.StatusOK, e)
}

package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// maxWait bounds POST /api/v1/events?wait=.
const maxWait = 30 * time.Second

// causeHeader names, on POST /api/v1/events, the action run (the
// Stagegate-Action-Id a webhook carried) that caused the event; it becomes
// the event's engine.CauseAttr.
const causeHeader = "Stagegate-Cause"

type postEventReply struct {
	EventID   string                `json:"event_id"`
	Duplicate bool                  `json:"duplicate"`
	Applied   *bool                 `json:"applied,omitempty"`
	Unmatched bool                  `json:"unmatched,omitempty"`
	Note      string                `json:"note,omitempty"`
	Decisions []store.ItemDecisions `json:"decisions,omitempty"`
}

func (g *Gateway) apiPostEvent(w http.ResponseWriter, r *http.Request) {
	wait, ok := queryWait(w, r)
	if !ok {
		return
	}
	in, raw, ok := g.readAPIEvent(w, r)
	if !ok {
		return
	}
	ev, err := normalize.FromAPI(in, raw, g.now(), g.cfg.Engine.DefaultRegion)
	if err != nil {
		g.intake.Reject(normalize.APIConnector, "invalid")
		httpx.WriteError(w, http.StatusUnprocessableEntity, "invalid_event", err.Error())
		return
	}
	if strings.HasPrefix(string(ev.Type), normalize.ItemPrefix) {
		g.intake.Reject(normalize.APIConnector, "invalid")
		httpx.WriteError(w, http.StatusUnprocessableEntity, "invalid_event",
			"type "+string(ev.Type)+": item.* events are emitted by the gateway when an item changes (PATCH /api/v1/items/{id}); post crm.<name> events, or try this one with POST /api/v1/explain")
		return
	}
	if c := r.Header.Get(causeHeader); c != "" && ev.Attrs[engine.CauseAttr] == "" {
		if ev.Attrs == nil {
			ev.Attrs = map[string]string{}
		}
		ev.Attrs[engine.CauseAttr] = c // the action run that caused this event (loop protection)
	}
	var watch *engine.Watcher
	if wait > 0 {
		// Watched before the append, so a new event needs no look at the
		// store to learn whether it was applied before the wait began.
		watch = g.eng.Watch(ev.ID)
		defer watch.Close()
	}
	res, err := g.intake.Submit(r.Context(), ev)
	if err != nil {
		g.storeError(w, r, err)
		return
	}
	reply := postEventReply{EventID: ev.ID, Duplicate: res.Duplicate}
	if wait == 0 {
		httpx.WriteJSON(w, http.StatusAccepted, reply)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	applied := watch.Wait(ctx, !res.Duplicate) == nil
	reply.Applied = &applied
	if !applied {
		httpx.WriteJSON(w, http.StatusAccepted, reply)
		return
	}
	if a := watch.Applied(); a != nil {
		// What this process's engine just stored, known exactly: no read.
		reply.Unmatched, reply.Note, reply.Decisions = a.Unmatched, a.Note, a.Decisions
	} else {
		rec, ds, err := g.st.GetEvent(r.Context(), ev.ID)
		if err != nil {
			g.storeError(w, r, err)
			return
		}
		reply.Unmatched, reply.Note, reply.Decisions = rec.Unmatched, rec.Note, ds
	}
	if reply.Decisions == nil {
		reply.Decisions = []store.ItemDecisions{}
	}
	httpx.WriteJSON(w, http.StatusOK, reply)
}

type eventReply struct {
	store.EventRecord
	Items []store.ItemDecisions `json:"items"`
}

func (g *Gateway) apiGetEvent(w http.ResponseWriter, r *http.Request) {
	rec, ds, err := g.st.GetEvent(r.Context(), r.PathValue("id"))
	if err != nil {
		g.storeError(w, r, err)
		return
	}
	if ds == nil {
		ds = []store.ItemDecisions{}
	}
	httpx.WriteJSON(w, http.StatusOK, eventReply{EventRecord: rec, Items: ds})
}

func (g *Gateway) apiUnmatched(w http.ResponseWriter, r *http.Request) {
	g.listEvents(w, r, g.st.ListUnmatched)
}

// listEvents answers a list of event records read by list, with ?limit=.
func (g *Gateway) listEvents(w http.ResponseWriter, r *http.Request, list func(context.Context, int) ([]store.EventRecord, error)) {
	limit, ok := queryLimit(w, r, 100)
	if !ok {
		return
	}
	evs, err := list(r.Context(), limit)
	if err != nil {
		g.storeError(w, r, err)
		return
	}
	if evs == nil {
		evs = []store.EventRecord{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"events": evs})
}

// apiListEvents lists events by status; status=failed (the only one for
// now) lists the parked events: those whose apply kept failing.
func (g *Gateway) apiListEvents(w http.ResponseWriter, r *http.Request) {
	if st := r.URL.Query().Get("status"); st != "failed" {
		httpx.WriteError(w, http.StatusBadRequest, "bad_status", "status must be failed")
		return
	}
	g.listEvents(w, r, g.st.ListFailed)
}

// apiRetryEvent puts a parked event back into the log; 404 for an unknown
// event, 409 for one that is not parked.
func (g *Gateway) apiRetryEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := g.st.RetryEvent(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrConflict):
		httpx.WriteError(w, http.StatusConflict, "not_failed", "event "+id+" is not parked as failed")
		return
	case err != nil:
		g.storeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, map[string]any{"event_id": id, "retried": true})
}

// readAPIEvent reads the body of POST /api/v1/events (and of the dry run,
// which takes the same body): the event input and the raw bytes, which
// become the event's raw input. On failure it has answered.
func (g *Gateway) readAPIEvent(w http.ResponseWriter, r *http.Request) (normalize.APIInput, []byte, bool) {
	var in normalize.APIInput
	r.Body = http.MaxBytesReader(w, r.Body, g.maxBody)
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		httpx.WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large", "request body is over the limit")
		return in, nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	if !httpx.DecodeJSON(w, r, g.maxBody, &in) {
		return in, nil, false
	}
	return in, raw, true
}

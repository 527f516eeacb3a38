package gateway

import (
	"errors"
	"net/http"

	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// explainID is the event id of a dry run whose body has none.
const explainID = "explain"

// explainReply is the answer of POST /api/v1/explain: the event as it
// would be accepted, and per item what applying it would do.
type explainReply struct {
	Event normalize.Event `json:"event"`
	// Duplicate: an event with this id was accepted already, so posting it
	// would change nothing.
	Duplicate bool                  `json:"duplicate"`
	Unmatched bool                  `json:"unmatched"`
	Note      string                `json:"note,omitempty"`
	Items     []store.ItemDecisions `json:"items"`
}

// apiExplain is the dry run: the body of POST /api/v1/events (id
// optional), decided by the engine as if it were applied now, with nothing
// written. item.* events are accepted too, to try field.changed and
// responsible.changed triggers.
func (g *Gateway) apiExplain(w http.ResponseWriter, r *http.Request) {
	in, raw, ok := g.readAPIEvent(w, r)
	if !ok {
		return
	}
	if in.ID == "" {
		in.ID = explainID
	}
	ev, err := normalize.FromAPI(in, raw, g.now(), g.cfg.Engine.DefaultRegion)
	if err != nil {
		httpx.WriteError(w, http.StatusUnprocessableEntity, "invalid_event", err.Error())
		return
	}
	ev.Raw = nil
	reply := explainReply{Event: *ev, Items: []store.ItemDecisions{}}
	if _, _, err := g.st.GetEvent(r.Context(), ev.ID); err == nil {
		reply.Duplicate = true
	} else if !errors.Is(err, store.ErrNotFound) {
		g.storeError(w, r, err)
		return
	}
	res, err := g.eng.Explain(r.Context(), ev)
	if err != nil {
		g.storeError(w, r, err)
		return
	}
	reply.Unmatched, reply.Note = res.Unmatched, res.Note
	if reply.Duplicate {
		reply.Note = joinNote("an event with this id was accepted already: posting it again would change nothing", reply.Note)
	}
	if res.Items != nil {
		reply.Items = res.Items
	}
	httpx.WriteJSON(w, http.StatusOK, reply)
}

func joinNote(a, b string) string {
	if b == "" {
		return a
	}
	return a + "; " + b
}

package telephony

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"sync"

	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/store"
)

// CallsPattern is the API route of a call.
const CallsPattern = "GET /api/v1/calls/{id}"

// MaxCallbacksShown bounds the callbacks listed for one call.
const MaxCallbacksShown = 1000

// CallView is the body of GET /api/v1/calls/{id}: the call state and every
// callback received for it, in arrival order.
type CallView struct {
	Call
	Callbacks []CallbackView `json:"callbacks"`
	// CallbacksTruncated: more than MaxCallbacksShown callbacks were received.
	CallbacksTruncated bool `json:"callbacks_truncated,omitempty"`
}

// CallbackView is one received callback; N is its arrival number.
type CallbackView struct {
	N int64 `json:"n"`
	storedCallback
}

// CallsAPI returns the handler of GET /api/v1/calls/{id}: the call with
// that id (the root call id: Twilio's parent CallSid) among the named
// telephony connectors' calls, or, with ?connector=name, that one's. Mount
// it behind the API's authentication. Answers 200 CallView, 404 not_found,
// 503 unavailable.
func CallsAPI(records store.Records, connectors []string) http.Handler {
	return &callsAPI{records: records, names: slices.Clone(connectors), log: slog.New(slog.DiscardHandler)}
}

type callsAPI struct {
	records store.Records
	log     *slog.Logger
	mu      sync.RWMutex
	names   []string
}

// add lets one more connector's calls be found.
func (a *callsAPI) add(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !slices.Contains(a.names, name) {
		a.names = append(a.names, name)
	}
}

// APIRoutes mounts GET /api/v1/calls/{id} on the API mux. With several
// telephony connectors the first mounts the route and the others add
// themselves to it.
func (c *Connector) APIRoutes(mux *http.ServeMux) {
	probe := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/api/v1/calls/x"}}
	if h, pattern := mux.Handler(probe); pattern == CallsPattern {
		if a, ok := h.(*callsAPI); ok {
			a.add(c.Name())
			return
		}
	}
	a := CallsAPI(c.records, []string{c.Name()}).(*callsAPI)
	a.log = c.Logger()
	mux.Handle(CallsPattern, a)
}

func (a *callsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", http.MethodGet)
		httpx.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	id := r.PathValue("id")
	if id == "" {
		id = path.Base(r.URL.Path)
	}
	a.mu.RLock()
	names := slices.Clone(a.names)
	a.mu.RUnlock()
	if want := r.URL.Query().Get("connector"); want != "" {
		names = slices.DeleteFunc(names, func(n string) bool { return n != want })
	}
	if a.records == nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the store keeps no call records")
		return
	}
	if !validCallID(id) {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no call "+strconv.Quote(id))
		return
	}
	for _, name := range names {
		rec, err := a.records.GetRecord(r.Context(), callKey(name, id))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		var v CallView
		if err := json.Unmarshal(rec.Value, &v.Call); err != nil {
			a.fail(w, r, err)
			return
		}
		if v.Callbacks, v.CallbacksTruncated, err = a.callbacks(r, callbacksKey(name, id)); err != nil {
			a.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, v)
		return
	}
	httpx.WriteError(w, http.StatusNotFound, "not_found", "no call "+strconv.Quote(id))
}

// callbacks reads a call's callback list.
func (a *callsAPI) callbacks(r *http.Request, key string) ([]CallbackView, bool, error) {
	out := []CallbackView{}
	var after int64
	for len(out) < MaxCallbacksShown {
		limit := min(200, MaxCallbacksShown-len(out))
		elems, err := a.records.ReadList(r.Context(), key, after, limit)
		if err != nil {
			return nil, false, err
		}
		for _, e := range elems {
			v := CallbackView{N: e.Seq}
			if err := json.Unmarshal(e.Value, &v.storedCallback); err != nil {
				v.Warnings = []string{"stored callback unreadable"}
				v.ID = e.ID
			}
			out = append(out, v)
			after = e.Seq
		}
		if len(elems) < limit {
			return out, false, nil
		}
	}
	more, err := a.records.ReadList(r.Context(), key, after, 1)
	return out, len(more) > 0, err
}

func (a *callsAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	if retryable(err) {
		httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "store unavailable, try again")
		return
	}
	a.log.Error("calls api: internal error", "path", r.URL.Path, "err", err)
	httpx.WriteError(w, http.StatusInternalServerError, "internal", "internal error")
}

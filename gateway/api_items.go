package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/store"
)

// Limits of an item PATCH.
const (
	maxPatchFields = 100
	maxFieldValue  = 4096
)

// fieldName is what an item field may be called: it is part of event ids
// and of trigger configs.
var fieldName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)

// patchItemInput is the body of PATCH /api/v1/items/{id}. A field whose
// value is null is removed.
type patchItemInput struct {
	Fields      map[string]*string `json:"fields"`
	Responsible *string            `json:"responsible"`
	AsUser      string             `json:"as_user"`
}

// patchItemReply is the item after the PATCH, with the ids of the events
// it emitted and, with ?wait=, the engine's decisions for them.
type patchItemReply struct {
	store.Item
	Events    []string              `json:"events"`
	Applied   *bool                 `json:"applied,omitempty"`
	Decisions []store.ItemDecisions `json:"decisions,omitempty"`
}

// apiPatchItem changes an item's fields and responsible user (see
// engine.ChangeItem): 200 with the item and the events emitted, 404 for an
// unknown item, 412 when If-Match names another version, 422 naming a bad
// field.
func (g *Gateway) apiPatchItem(w http.ResponseWriter, r *http.Request) {
	wait, ok := queryWait(w, r)
	if !ok {
		return
	}
	expect, ok := ifMatch(w, r)
	if !ok {
		return
	}
	var in patchItemInput
	if !httpx.DecodeJSON(w, r, g.maxBody, &in) {
		return
	}
	c, msg := patchChange(in)
	if msg != "" {
		httpx.WriteError(w, http.StatusUnprocessableEntity, "bad_patch", msg)
		return
	}
	c.ItemID, c.ExpectVersion, c.Cause = r.PathValue("id"), expect, r.Header.Get(causeHeader)
	res, err := engine.ChangeItem(r.Context(), g.st, c, g.now())
	switch {
	case errors.Is(err, store.ErrConflict) && expect != 0:
		w.Header().Set("ETag", etag(res.Item.Version))
		httpx.WriteError(w, http.StatusPreconditionFailed, "version_mismatch",
			fmt.Sprintf("item %s is at version %d, not %d", c.ItemID, res.Item.Version, expect))
		return
	case errors.Is(err, store.ErrConflict):
		httpx.WriteError(w, http.StatusServiceUnavailable, "busy", "the item kept changing concurrently, try again")
		return
	case err != nil:
		g.storeError(w, r, err)
		return
	}
	reply := patchItemReply{Item: res.Item, Events: []string{}}
	for _, ev := range res.Events {
		reply.Events = append(reply.Events, ev.ID)
	}
	if wait > 0 && len(reply.Events) > 0 {
		applied, ds, err := g.waitApplied(r.Context(), wait, reply.Events)
		if err != nil {
			g.storeError(w, r, err)
			return
		}
		reply.Applied, reply.Decisions = &applied, ds
	}
	w.Header().Set("ETag", etag(res.Item.Version))
	httpx.WriteJSON(w, http.StatusOK, reply)
}

// patchChange checks a PATCH body and turns it into a change; the message
// says what is wrong, naming the key.
func patchChange(in patchItemInput) (engine.ItemChange, string) {
	var c engine.ItemChange
	if len(in.Fields) == 0 && in.Responsible == nil {
		return c, "nothing to change: give fields and/or responsible"
	}
	if len(in.Fields) > maxPatchFields {
		return c, fmt.Sprintf("at most %d fields in one PATCH", maxPatchFields)
	}
	for k, v := range in.Fields {
		if !fieldName.MatchString(k) {
			return c, fmt.Sprintf("fields.%s: a field name is 1-64 letters, digits, '_', '.' or '-', starting with a letter, digit or '_'", k)
		}
		if v == nil {
			c.Remove = append(c.Remove, k)
			continue
		}
		if len(*v) > maxFieldValue {
			return c, fmt.Sprintf("fields.%s: a value is at most %d bytes", k, maxFieldValue)
		}
		if c.Set == nil {
			c.Set = map[string]string{}
		}
		c.Set[k] = *v
	}
	if in.Responsible != nil {
		if strings.TrimSpace(*in.Responsible) == "" {
			return c, "responsible: must not be empty (an item always has a responsible user once it got one)"
		}
		c.Responsible = strings.TrimSpace(*in.Responsible)
	}
	c.Actor = in.AsUser
	return c, ""
}

// etag is the ETag of an item version; If-Match takes it back.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// ifMatch reads If-Match: an item version, bare or quoted as in the ETag
// ("3", 3, W/"3"); 0 when absent or "*". On a bad value it has answered
// 400 and returns false.
func ifMatch(w http.ResponseWriter, r *http.Request) (int64, bool) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" || h == "*" {
		return 0, true
	}
	v := strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		httpx.WriteError(w, http.StatusBadRequest, "bad_if_match", "If-Match must be an item version, like \"3\" (the item's ETag)")
		return 0, false
	}
	return n, true
}

// queryWait reads ?wait= (0s to 30s). On a bad value it has answered 400
// and returns false.
func queryWait(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	ws := r.URL.Query().Get("wait")
	if ws == "" {
		return 0, true
	}
	d, err := time.ParseDuration(ws)
	if err != nil || d < 0 || d > maxWait {
		httpx.WriteError(w, http.StatusBadRequest, "bad_wait", "wait must be a duration from 0s to 30s, like 5s")
		return 0, false
	}
	return d, true
}

// waitApplied waits up to wait for the engine to apply the events, and
// returns whether it did and the decisions recorded for them.
func (g *Gateway) waitApplied(ctx context.Context, wait time.Duration, ids []string) (bool, []store.ItemDecisions, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ds := []store.ItemDecisions{}
	for _, id := range ids {
		if g.eng.Wait(wctx, id) != nil {
			return false, ds, nil
		}
	}
	for _, id := range ids {
		_, d, err := g.st.GetEvent(ctx, id)
		if err != nil {
			return false, nil, err
		}
		ds = append(ds, d...)
	}
	return true, ds, nil
}

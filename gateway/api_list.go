package gateway

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/store"
)

// listItemsReply is a page of GET /api/v1/items; Next, when set, is the
// cursor of the next page.
type listItemsReply struct {
	Items []store.Item `json:"items"`
	Next  string       `json:"next,omitempty"`
}

// apiListItems lists items oldest first, a page at a time: ?limit= items
// (default 100) matching the filters, and "next", the ?cursor= of the
// page after, while there is one.
func (g *Gateway) apiListItems(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.ItemFilter{Pipeline: q.Get("pipeline"), Stage: q.Get("stage"), ContactID: q.Get("contact_id"), Responsible: q.Get("responsible")}
	if c := q.Get("contact"); c != "" {
		f.ContactID = c
	}
	if f.Pipeline != "" {
		if _, ok := g.pipelineStage(w, f.Pipeline, f.Stage); !ok {
			return
		}
	} else if f.Stage != "" {
		httpx.WriteError(w, http.StatusBadRequest, "bad_filter", "stage filter needs a pipeline")
		return
	}
	if us := q.Get("updated_since"); us != "" {
		t, err := time.Parse(time.RFC3339Nano, us)
		if err != nil {
			httpx.WriteError(w, http.StatusBadRequest, "bad_filter", "updated_since must be an RFC 3339 time, like 2026-03-01T10:00:00Z")
			return
		}
		f.UpdatedSince = t
	}
	if c := q.Get("cursor"); c != "" {
		after, ok := parseCursor(c)
		if !ok {
			httpx.WriteError(w, http.StatusBadRequest, "bad_cursor", "cursor is not one this API gave out (use the \"next\" of the page before)")
			return
		}
		f.After = after
	}
	limit, ok := queryLimit(w, r, 100)
	if !ok {
		return
	}
	f.Limit = limit + 1 // one more tells whether a next page exists
	items, err := g.st.ListItems(r.Context(), f)
	if err != nil {
		g.storeError(w, r, err)
		return
	}
	reply := listItemsReply{Items: items}
	if len(items) > limit {
		reply.Items = items[:limit]
		reply.Next = formatCursor(store.CursorOf(items[limit-1]))
	}
	if reply.Items == nil {
		reply.Items = []store.Item{}
	}
	httpx.WriteJSON(w, http.StatusOK, reply)
}

// formatCursor encodes a list position as an opaque, URL-safe string.
func formatCursor(c store.ItemCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixNano(), 10) + ":" + c.ID))
}

// parseCursor decodes what formatCursor made.
func parseCursor(s string) (store.ItemCursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return store.ItemCursor{}, false
	}
	ns, id, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return store.ItemCursor{}, false
	}
	return store.ItemCursor{CreatedAt: time.Unix(0, n).UTC(), ID: id}, true
}

// apiFindContacts looks contacts up by ?email= and/or ?phone= (normalized
// like the engine does: lower-cased, E.164) and lists those found, each
// once.
func (g *Gateway) apiFindContacts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("email") == "" && q.Get("phone") == "" {
		httpx.WriteError(w, http.StatusBadRequest, "bad_filter", "give email and/or phone")
		return
	}
	ids, msg := g.contactIdentities(contactInput{Email: q.Get("email"), Phone: q.Get("phone")})
	if msg != "" {
		httpx.WriteError(w, http.StatusUnprocessableEntity, "bad_contact", strings.TrimPrefix(msg, "contact."))
		return
	}
	found := []store.Contact{}
	seen := map[string]bool{}
	for _, id := range ids {
		c, err := g.st.FindContact(r.Context(), id)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			g.storeError(w, r, err)
			return
		}
		if !seen[c.ID] {
			seen[c.ID] = true
			found = append(found, c)
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"contacts": found})
}

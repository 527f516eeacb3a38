package tracking

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// siteScript is served at GET /t/v.js.
//
//go:embed data/v.js
var siteScript []byte

// Ways a visitor becomes known (visitorRecord.LinkedBy).
const (
	linkedByClick = "email_click"
	linkedByForm  = "form"
	linkedByAPI   = "api"
)

// Limits of a page view report.
const (
	maxVisitBody = 4096
	maxPageURL   = 2048
)

// visitorIDPattern takes both visitor id schemes: the site script's own
// (sg_vid: letters, digits and -) and the live chat's ("v_" and base32).
var visitorIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)

// visitorRecord is a known site visitor as stored: the item or email it is tied to.
type visitorRecord struct {
	ID        string    `json:"id"`
	ItemID    string    `json:"item_id,omitempty"`
	Email     string    `json:"email,omitempty"`
	LinkedBy  string    `json:"linked_by"`
	LinkedAt  time.Time `json:"linked_at"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	Views     int64     `json:"views"`
}

// pageView is what the site script posts to /t/v.
type pageView struct {
	Visitor  string `json:"v"`
	URL      string `json:"u"`
	Referrer string `json:"r,omitempty"`
	Token    string `json:"t,omitempty"` // sg_t of a tracked email click's landing URL
	Email    string `json:"e,omitempty"` // from a form the visitor submitted
}

// link is what ties a visitor to a customer.
type link struct {
	itemID, email, by string
}

// serveScript answers GET /t/v.js.
func (t *Tracker) serveScript(w http.ResponseWriter, r *http.Request) {
	if !t.cfg.Site.Enabled {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(siteScript)
}

// serveVisit answers POST /t/v (and its CORS preflight): 204 once the page
// view is counted and, for a known visitor, its events are durable; 400
// for a malformed report; 403 for an origin not allowed; 405 for another
// method; 413 for a report over 4 KiB; 503 with Retry-After when the store
// or the intake fails.
func (t *Tracker) serveVisit(w http.ResponseWriter, r *http.Request) {
	if !t.cfg.Site.Enabled {
		http.NotFound(w, r)
		return
	}
	origin := r.Header.Get("Origin")
	if origin != "" {
		if !t.origins["*"] && !t.origins[origin] {
			t.Refuse(w, r, http.StatusForbidden, "forbidden_origin", "this origin may not report visits")
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Vary", "Origin")
	}
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "POST")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
		w.Header().Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var pv pageView
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxVisitBody))
	if connectors.IsTooLarge(err) {
		t.Refuse(w, r, http.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("page view report larger than %d bytes", maxVisitBody))
		return
	}
	if err == nil {
		err = json.Unmarshal(body, &pv)
	}
	if err == nil {
		err = pv.validate()
	}
	if err != nil {
		t.Refuse(w, r, http.StatusBadRequest, "bad_visit", "malformed page view report")
		return
	}
	ctx, cancel := t.storeCtx(r)
	defer cancel()
	if err := t.recordVisit(ctx, pv); err != nil {
		t.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (pv *pageView) validate() error {
	if !visitorIDPattern.MatchString(pv.Visitor) {
		return errors.New("visitor id")
	}
	u, err := url.Parse(pv.URL)
	if err != nil || len(pv.URL) > maxPageURL || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("page url")
	}
	if len(pv.Referrer) > maxPageURL {
		pv.Referrer = pv.Referrer[:maxPageURL]
	}
	return nil
}

// recordVisit counts a page view. A visitor tied to a customer (now, by the
// view's click token or form email, or before) is known: its view makes
// site.visit (one per visitor and day) and, after return_gap without
// views, site.return. Anonymous views are only counted.
//
// The events go first, derived from the visitor as this view will leave
// it, and the view is counted (the visitor record written) only once they
// are accepted: a refused submit (503, the beacon retries) leaves the view
// uncounted and the last view as it was, so the retry counts it once and
// still sees the gap of a return. Event ids are per visitor and day, so a
// view whose write fails after its events were accepted submits
// duplicates on retry, not new events.
func (t *Tracker) recordVisit(ctx context.Context, pv pageView) error {
	now := t.Now()
	l := t.viewLink(ctx, pv)
	var cur visitorRecord
	ver, err := store.GetJSON(ctx, t.records, t.visitorKey(pv.Visitor), &cur)
	if err != nil {
		return fmt.Errorf("tracking %s: visitor %s: %w", t.Name(), pv.Visitor, err)
	}
	if ver == 0 && l == nil {
		t.stats.viewsAnon.Add(1)
		return nil
	}
	prev := applyVisit(&cur, pv.Visitor, l, now, true)
	if _, err := t.Intake().Submit(ctx, normalizeVisit(t.Name(), &cur, normalize.SiteVisit, pv, now)); err != nil {
		return fmt.Errorf("tracking %s: site visit: %w", t.Name(), err)
	}
	if !prev.IsZero() && now.Sub(prev) >= t.cfg.Site.ReturnGap {
		if _, err := t.Intake().Submit(ctx, normalizeVisit(t.Name(), &cur, normalize.SiteReturn, pv, now)); err != nil {
			return fmt.Errorf("tracking %s: site return: %w", t.Name(), err)
		}
	}
	v, _, err := t.updateVisitor(ctx, pv.Visitor, l, now, true)
	if err != nil || v == nil {
		return err
	}
	t.stats.viewsKnown.Add(1)
	return nil
}

// viewLink returns what a page view says about who the visitor is: a
// valid click token names the email's item, a form email the contact.
func (t *Tracker) viewLink(ctx context.Context, pv pageView) *link {
	if pv.Token != "" {
		if p, err := t.signer.Decode(pv.Token); err == nil && p.Link > 0 {
			if st, err := t.state(ctx, p.Msg); err == nil {
				return &link{itemID: st.msg.ItemID, by: linkedByClick}
			}
		}
	}
	if pv.Email != "" && t.cfg.Site.Identify {
		if em := normalize.NormalizeEmail(pv.Email); em != "" {
			return &link{email: em, by: linkedByForm}
		}
	}
	return nil
}

// updateVisitor applies l (may be nil) and, for a view, the view to the
// visitor's record (store.UpdateJSON). It returns nil for an anonymous
// visitor (no record, no link), and the previous last view.
func (t *Tracker) updateVisitor(ctx context.Context, id string, l *link, now time.Time, view bool) (*visitorRecord, time.Time, error) {
	var prev time.Time
	anonymous := false
	v, _, err := store.UpdateJSON(ctx, t.records, t.visitorKey(id), t.cfg.Retention, func(v *visitorRecord, version int64) (bool, error) {
		anonymous = version == 0 && l == nil
		if anonymous {
			return false, nil
		}
		prev = applyVisit(v, id, l, now, view)
		return true, nil
	})
	switch {
	case err != nil:
		return nil, time.Time{}, fmt.Errorf("tracking %s: visitor %s: %w", t.Name(), id, err)
	case anonymous:
		t.stats.viewsAnon.Add(1)
		return nil, time.Time{}, nil
	}
	return &v, prev, nil
}

// applyVisit applies l (may be nil) and, for a view, the view at now to
// the visitor record v of visitor id; it returns the previous last view.
func applyVisit(v *visitorRecord, id string, l *link, now time.Time, view bool) time.Time {
	if v.ID == "" {
		v.ID = id
	}
	prev := v.LastSeen
	if l != nil {
		if l.itemID != "" {
			v.ItemID = l.itemID
		}
		if l.email != "" {
			v.Email = l.email
		}
		v.LinkedBy, v.LinkedAt = l.by, now
	}
	if view {
		if v.FirstSeen.IsZero() {
			v.FirstSeen = now
		}
		v.LastSeen = now
		v.Views++
	}
	return prev
}

// linkBody is the body of POST /api/v1/visitors/{id}/link.
type linkBody struct {
	ItemID string `json:"item_id"`
	Email  string `json:"email"`
}

// serveLinkVisitor answers POST /api/v1/visitors/{id}/link: it ties a site
// visitor id (from a chat, your own forms…) to an item or an email address.
func (t *Tracker) serveLinkVisitor(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var b linkBody
	if !httpx.DecodeJSON(w, r, 4096, &b) {
		return
	}
	em := normalize.NormalizeEmail(b.Email)
	switch {
	case !visitorIDPattern.MatchString(id):
		t.Refuse(w, r, http.StatusBadRequest, "bad_request", "visitor id: 16 to 64 letters, digits, _ or - (a site visitor id or a live-chat v_… id)")
		return
	case b.ItemID == "" && em == "", b.Email != "" && em == "", b.ItemID != "" && !normalize.ValidSourceID(b.ItemID):
		t.Refuse(w, r, http.StatusBadRequest, "bad_request", "give an item_id and/or a valid email")
		return
	}
	ctx, cancel := t.storeCtx(r)
	defer cancel()
	v, _, err := t.updateVisitor(ctx, id, &link{itemID: b.ItemID, email: em, by: linkedByAPI}, t.Now(), false)
	if err != nil {
		t.writeErr(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, v)
}

// siteLink adds sg_t=<token> to a destination on one of the site's
// link_domains, so the site script can tie the visitor to the email.
func (t *Tracker) siteLink(dest, token string) string {
	if !t.cfg.Site.Enabled || len(t.cfg.Site.LinkDomains) == 0 {
		return dest
	}
	u, err := url.Parse(dest)
	if err != nil {
		return dest
	}
	host := strings.ToLower(u.Hostname())
	for _, d := range t.cfg.Site.LinkDomains {
		d = strings.ToLower(d)
		if host == d || strings.HasSuffix(host, "."+d) {
			base, frag, hasFrag := strings.Cut(dest, "#")
			sep := "?"
			if strings.Contains(base, "?") {
				sep = "&"
			}
			out := base + sep + "sg_t=" + url.QueryEscape(token)
			if hasFrag {
				out += "#" + frag
			}
			return out
		}
	}
	return dest
}

// normalizeVisit builds the site.visit or site.return event of a known
// visitor's page view: one per visitor, type and day.
func normalizeVisit(connector string, v *visitorRecord, typ normalize.Type, pv pageView, now time.Time) *normalize.Event {
	kind := strings.TrimPrefix(string(typ), "site.")
	raw, _ := json.Marshal(pv)
	return &normalize.Event{
		ID:         normalize.MakeID(connector, kind, v.ID, now.UTC().Format("2006-01-02")),
		Type:       typ,
		Connector:  connector,
		OccurredAt: now,
		ReceivedAt: now,
		Subject:    normalize.Subject{VisitorID: v.ID, ItemID: v.ItemID, Email: v.Email},
		Attrs:      map[string]string{"url": pv.URL, "visitor_id": v.ID, "referrer": pv.Referrer, "linked_by": v.LinkedBy},
		Raw:        normalize.Excerpt(raw),
	}
}

package webhook

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/normalize"
)

// FormsKind is the connector kind "forms": web forms and callback forms.
var FormsKind = connectors.NewKind("forms", NewFormsConfig, NewForms)

// preflightMaxAge is how long a browser may cache a CORS preflight answer.
const preflightMaxAge = 600

// Forms is a connector of kind forms. It answers POST /{form_id} (and the
// CORS preflight OPTIONS /{form_id}); each accepted submission becomes one
// form.submitted event.
type Forms struct {
	*connectors.Push
	region    string
	forms     map[string]FormConfig
	formIDs   []string        // in config order, for the unknown form answer
	origins   map[string]bool // lower-cased, without a trailing slash
	anyOrigin bool
	honeypot  string
	maxFields int
}

var _ connectors.HTTPConnector = (*Forms)(nil)

// NewForms builds a forms connector from its validated config.
func NewForms(base connectors.Base, cfg *FormsConfig, deps connectors.Deps) (*Forms, error) {
	s, err := connectors.NewPush("forms", base, deps, cfg.MaxBody)
	if err != nil {
		return nil, err
	}
	c := &Forms{
		Push:      s,
		region:    normalize.Region(cfg.DefaultRegion, deps.Region),
		forms:     make(map[string]FormConfig, len(cfg.Forms)),
		origins:   make(map[string]bool, len(cfg.AllowedOrigins)),
		honeypot:  cfg.Honeypot,
		maxFields: cfg.MaxFields,
	}
	for _, f := range cfg.Forms {
		c.forms[f.ID] = f
		c.formIDs = append(c.formIDs, f.ID)
	}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			c.anyOrigin = true
		}
		c.origins[canonicalOrigin(o)] = true
	}
	return c, nil
}

// unknownForm is the message of the 404 for the form id: it names the
// connector's forms by the paths to post them to.
func (c *Forms) unknownForm(id string) string {
	paths := make([]string, len(c.formIDs))
	for i, f := range c.formIDs {
		paths[i] = "/in/" + c.Name() + "/" + url.PathEscape(f)
	}
	what := fmt.Sprintf("no form %q", id)
	if id == "" {
		what = "no form id in the path"
	}
	return fmt.Sprintf("%s; the forms of connector %q are %s", what, c.Name(), strings.Join(paths, ", "))
}

func canonicalOrigin(o string) string {
	return strings.ToLower(strings.TrimSuffix(o, "/"))
}

// ServeHTTP routes /{form_id}: 404 for an unknown form, 403 for a browser
// origin not allowed, 204 for an allowed CORS preflight, and the
// submission itself for POST.
func (c *Forms) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/")
	form, found := c.forms[id]
	if !found {
		c.Refuse(w, r, http.StatusNotFound, "unknown_form", c.unknownForm(id))
		return
	}
	// No Origin header: a server-to-server post, which CORS does not concern.
	if origin := r.Header.Get("Origin"); origin != "" {
		w.Header().Add("Vary", "Origin")
		if !c.anyOrigin && !c.origins[canonicalOrigin(origin)] {
			c.Refuse(w, r, http.StatusForbidden, "forbidden_origin", "origin not allowed for this form")
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
	}
	switch r.Method {
	case http.MethodPost:
		c.post(w, r, form)
	case http.MethodOptions:
		h := w.Header()
		h.Set("Allow", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Accept")
		h.Set("Access-Control-Max-Age", strconv.Itoa(preflightMaxAge))
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		c.Refuse(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
	}
}

// post reads, checks, normalizes and submits one submission.
func (c *Forms) post(w http.ResponseWriter, r *http.Request, form FormConfig) {
	sub, perr := c.parse(w, r)
	if perr != nil {
		c.Refuse(w, r, perr.status, perr.code, perr.msg)
		return
	}
	received := c.Now()
	if c.honeypot != "" && strings.TrimSpace(sub.fields.Get(c.honeypot)) != "" {
		// A bot filled the hidden field: look like a success, record nothing.
		c.Intake().Reject(c.Name(), "honeypot")
		c.LogRefusal(r, true, "honeypot", "honeypot field filled")
		c.succeed(w, r, form, sub, connectors.Accepted{EventID: FormEventID(c.Name(), form.ID, sub.fields, received)})
		return
	}
	if c.honeypot != "" {
		sub.fields.Del(c.honeypot)
	}
	ev, err := NormalizeForm(c.Name(), form, sub.fields, sub.raw, received, c.region)
	if err != nil {
		c.Refuse(w, r, http.StatusBadRequest, "bad_field", err.Error())
		return
	}
	res, ok := c.Submit(w, r, ev)
	if !ok {
		return
	}
	c.succeed(w, r, form, sub, connectors.Accepted(res))
}

// succeed answers an accepted (or silently dropped) submission: a 303 to the
// form's configured thank-you page for a browser's plain form post, else 200
// JSON. The target is never taken from the request.
func (c *Forms) succeed(w http.ResponseWriter, r *http.Request, form FormConfig, sub *submission, a connectors.Accepted) {
	wantsJSON := sub.json || strings.Contains(r.Header.Get("Accept"), "application/json")
	if form.Redirect != "" && !wantsJSON {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, form.Redirect, http.StatusSeeOther)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a)
}

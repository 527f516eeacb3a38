// Package telephony is the push connector kind "telephony": phone calls
// reported by a provider's webhooks become call.inbound, call.outbound and
// call.missed events.
//
// Providers send several callbacks per call (ringing, answered, completed),
// one set per leg (Twilio <Dial> creates a child leg per dialled number),
// retry them and deliver them out of order; PBXes send two hangups. Each
// callback is parsed (twilio.go: Twilio Voice status callbacks signed with
// X-Twilio-Signature; generic.go: JSON signed with Standard Webhooks) and
// folded into one call state kept in store.Records (fold.go, derive.go: a
// pure state machine with table and golden tests). The events a call
// produces have ids derived from the call, so a retry, a duplicate or a
// re-derivation after a crash is a duplicate, never a second event.
//
// A callback is handled in this order (process.go): append it to the
// call's callback list (deduplicated by its id), read the call, fold,
// submit the new events to Intake, write the call back with
// compare-and-set (on a conflict, fold again). Only then is the provider
// answered 2xx. (A callback that emits nothing may skip the read: it folds
// into this process's cached copy, and the compare-and-set proves the
// copy current; cache.go.) The missed decision waits Settle after the call ended for
// late callbacks of its legs; settle.go's sweeper takes the decisions that
// fall due when no callback comes.
package telephony

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/internal/stdwebhooks"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// Kind is the connector kind "telephony".
var Kind = connectors.NewKind("telephony", NewConfig, New)

// Connector is a connector of kind telephony. It answers POST on "/" and on
// any sub-path, serves GET /api/v1/calls/{id}, and runs the sweeper that
// takes settled missed decisions.
type Connector struct {
	*connectors.Push
	provider  string
	records   store.Records
	nums      *numbers
	opts      FoldOptions
	retention time.Duration
	calls     *callCache
	turns     *turns // callbacks of one call, one at a time
	// refolds counts the callbacks whose cached state lost its
	// compare-and-set (read and folded again), for tests and benchmarks.
	refolds atomic.Int64

	twilio   *twilioVerifier
	sigBases []string // spellings of the URL Twilio signs, without sub-path and query
	generic  *stdwebhooks.Verifier
}

var (
	_ connectors.HTTPConnector = (*Connector)(nil)
	_ connectors.APIConnector  = (*Connector)(nil)
	_ connectors.Service       = (*Connector)(nil)
)

// New builds a telephony connector from its validated config. It needs a
// store that keeps Records.
func New(base connectors.Base, cfg *Config, deps connectors.Deps) (*Connector, error) {
	s, err := connectors.NewPush("telephony", base, deps, cfg.MaxBody)
	if err != nil {
		return nil, err
	}
	if deps.Records == nil {
		return nil, fmt.Errorf("telephony %s: the store keeps no records (store.Records); call state cannot be kept", base.Name)
	}
	region := normalize.Region(cfg.DefaultRegion, deps.Region)
	c := &Connector{
		Push:      s,
		provider:  cfg.Provider,
		records:   deps.Records,
		nums:      newNumbers(region),
		retention: cfg.Retention,
		calls:     newCallCache(),
		turns:     newTurns(),
		opts: FoldOptions{
			Connector: base.Name, Provider: cfg.Provider,
			VoicemailIsMissed: cfg.VoicemailIsMissed, Settle: cfg.Settle,
			Own: map[string]bool{}, Agents: map[string]bool{},
		},
	}
	for _, l := range []struct {
		nums []string
		set  map[string]bool
	}{{cfg.OwnNumbers, c.opts.Own}, {cfg.AgentNumbers, c.opts.Agents}} {
		for _, n := range l.nums {
			e, err := c.nums.line("number", n)
			if err != nil {
				return nil, fmt.Errorf("telephony %s: %w", base.Name, err)
			}
			l.set[e] = true
		}
	}
	switch cfg.Provider {
	case ProviderTwilio:
		sigBase := cfg.SignatureURL
		if sigBase == "" {
			if deps.PublicURL == "" {
				return nil, fmt.Errorf("telephony %s: provider twilio needs public_url or signature_url", base.Name)
			}
			sigBase = strings.TrimRight(deps.PublicURL, "/") + "/in/" + base.Name
		}
		c.sigBases = urlVariants(strings.TrimRight(sigBase, "/"))
		c.twilio = &twilioVerifier{}
		for _, t := range cfg.tokens() {
			c.twilio.keys = append(c.twilio.keys, []byte(t))
		}
	case ProviderGeneric:
		if c.generic, err = stdwebhooks.NewVerifier(cfg.secrets(), cfg.Tolerance, s.Now); err != nil {
			return nil, fmt.Errorf("telephony %s: %w", base.Name, err)
		}
	default:
		return nil, fmt.Errorf("telephony %s: unknown provider %q", base.Name, cfg.Provider)
	}
	return c, nil
}

// ServeHTTP verifies, parses and records one callback. Answers: Twilio 204
// and generic 200 {"call_id","callback_id","duplicate","outcome","events"}
// once the callback, the call state and its events are durable; 400 for a
// callback that cannot be understood; 401 (generic) or 403 (Twilio) for a
// bad signature; 405 for a method other than POST; 413 for a body over
// max_body; 415 (Twilio) for a body not declared
// application/x-www-form-urlencoded (a missing Content-Type included); 503 with
// Retry-After when the store is unavailable. Nothing is recorded unless
// the callback is authentic and valid.
func (c *Connector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		c.Refuse(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	body, ok := c.ReadBody(w, r)
	if !ok {
		return
	}
	var cb *Callback
	if c.provider == ProviderTwilio {
		cb, ok = c.twilioCallback(w, r, body)
	} else {
		cb, ok = c.genericCallback(w, r, body)
	}
	if !ok {
		return
	}
	if cb.ParentID == "" && !c.knowsDirection(cb) {
		c.Refuse(w, r, http.StatusBadRequest, "missing_field",
			"direction: required, unless from or to is one of own_numbers")
		return
	}
	res, err := c.record(r.Context(), cb)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if c.provider == ProviderTwilio {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

// twilioCallback authenticates and parses a Twilio status callback.
func (c *Connector) twilioCallback(w http.ResponseWriter, r *http.Request, body []byte) (*Callback, bool) {
	// Twilio always declares its form; a body without a Content-Type is
	// not one we take as a form (the README: anything else gets 415).
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		c.Refuse(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Twilio status callbacks are application/x-www-form-urlencoded")
		return nil, false
	}
	params, err := url.ParseQuery(string(body))
	if err != nil {
		c.Refuse(w, r, http.StatusBadRequest, "bad_body", "the body is not form-encoded")
		return nil, false
	}
	sig := r.Header.Get(TwilioSignatureHeader)
	if sig == "" || !c.twilio.verify(sig, c.signatureURLs(r), params) {
		c.Refuse(w, r, http.StatusForbidden, "bad_signature", "missing or invalid "+TwilioSignatureHeader)
		return nil, false
	}
	cb, err := ParseTwilio(params, body, c.Now(), c.nums)
	if err != nil {
		c.refuseParse(w, r, err)
		return nil, false
	}
	return cb, true
}

// signatureURLs returns the URLs Twilio may have signed for r: the
// configured base (public_url + "/in/<name>", or signature_url) with the
// request's sub-path and query — never the Host header, which a
// TLS-terminating proxy rewrites.
func (c *Connector) signatureURLs(r *http.Request) []string {
	sub := r.URL.EscapedPath()
	query := ""
	if r.URL.RawQuery != "" {
		query = "?" + r.URL.RawQuery
	}
	urls := make([]string, 0, 2*len(c.sigBases))
	for _, b := range c.sigBases {
		if sub == "/" || sub == "" {
			// The gateway hands "/in/<name>" and "/in/<name>/" over alike.
			urls = append(urls, b+query, b+"/"+query)
		} else {
			urls = append(urls, b+sub+query)
		}
	}
	return urls
}

// genericCallback authenticates and parses a generic JSON callback.
func (c *Connector) genericCallback(w http.ResponseWriter, r *http.Request, body []byte) (*Callback, bool) {
	id, err := c.generic.Verify(r.Header, body)
	switch {
	case errors.Is(err, stdwebhooks.ErrMissingHeaders):
		c.Refuse(w, r, http.StatusBadRequest, "missing_headers", err.Error())
		return nil, false
	case errors.Is(err, stdwebhooks.ErrBadTimestamp):
		c.Refuse(w, r, http.StatusBadRequest, "bad_timestamp", err.Error())
		return nil, false
	case err != nil:
		c.Refuse(w, r, http.StatusUnauthorized, "bad_signature", "no valid signature")
		return nil, false
	}
	if !validCallID(id) {
		c.Refuse(w, r, http.StatusBadRequest, "bad_field", "webhook-id: must be 1 to 128 letters, digits or ._:@+/=-")
		return nil, false
	}
	cb, err := ParseGeneric(id, body, c.Now(), c.nums)
	if err != nil {
		c.refuseParse(w, r, err)
		return nil, false
	}
	return cb, true
}

// refuseParse answers 400 for a callback the parser refused.
func (c *Connector) refuseParse(w http.ResponseWriter, r *http.Request, err error) {
	code := "bad_field"
	switch {
	case errors.Is(err, ErrMissingField):
		code = "missing_field"
	case errors.Is(err, ErrBadStatus):
		code = "bad_status"
	case errors.Is(err, ErrBadNumber):
		code = "bad_number"
	}
	c.Refuse(w, r, http.StatusBadRequest, code, err.Error())
}

// knowsDirection reports whether the direction of a root callback can be
// told: from the provider, or because one end is one of our lines.
func (c *Connector) knowsDirection(cb *Callback) bool {
	return cb.Direction != "" || c.opts.Own[cb.From.Number] && cb.From.Number != "" ||
		c.opts.Own[cb.To.Number] && cb.To.Number != ""
}

// fail answers for an error from the store or the intake: 503 when it may
// succeed on a retry (the provider retries), 500 otherwise.
func (c *Connector) fail(w http.ResponseWriter, r *http.Request, err error) {
	if retryable(err) {
		c.LogRefusal(r, false, "unavailable", err.Error())
		w.Header().Set("Retry-After", fmt.Sprint(int(connectors.RetryAfter/time.Second)))
		httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the callback could not be recorded; retry later")
		return
	}
	c.Logger().Error("callback failed", "err", err)
	httpx.WriteError(w, http.StatusInternalServerError, "internal", "the callback could not be recorded")
}

// retryable reports whether err means "try again": the store or the intake
// is unavailable, a deadline passed, or the call kept changing under us.
func retryable(err error) bool {
	return errors.Is(err, connectors.ErrUnavailable) || errors.Is(err, store.ErrUnavailable) ||
		errors.Is(err, errBusy) || errors.Is(err, context.DeadlineExceeded)
}

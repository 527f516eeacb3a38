package tracking

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
)

// pixelGIF is a transparent 1×1 GIF, 43 bytes (the same as nginx's empty_gif).
var pixelGIF = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

// Shared header values: net/http only reads them, so one slice serves
// every request without allocating.
var (
	hdrGIF      = []string{"image/gif"}
	hdrNoStore  = []string{"no-store"}
	hdrGIFLen   = []string{"43"}
	hdrHTML     = []string{"text/html; charset=utf-8"}
	hdrNoSniff  = []string{"nosniff"}
	hdrNoReferr = []string{"no-referrer"}
)

// maxUserAgent bounds the user agent kept with a hit.
const maxUserAgent = 512

// servePixel answers GET and HEAD /t/o/{token}: always the 43-byte GIF with
// Cache-Control: no-store, whatever the token and whether or not the store
// answers. A valid token's hit is scored and recorded after the answer
// while fewer than pending_hits are waiting, else before it (bounded by
// store_timeout); a failure is counted and logged, never shown.
func (t *Tracker) servePixel(w http.ResponseWriter, r *http.Request) {
	t.recordOpen(r)
	h := w.Header()
	h["Content-Type"] = hdrGIF
	h["Content-Length"] = hdrGIFLen
	h["Cache-Control"] = hdrNoStore
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(pixelGIF)
	}
}

func (t *Tracker) recordOpen(r *http.Request) {
	p, err := t.signer.Decode(r.PathValue("token"))
	if err != nil || p.Link != 0 {
		t.badToken(r, "open pixel token does not verify")
		return
	}
	f := t.factsOf(r)
	if t.later.later(func(ctx context.Context) { t.open(ctx, p.Msg, &f) }) {
		t.stats.answeredFirst.Add(1)
		return
	}
	ctx, cancel := t.storeCtx(r)
	defer cancel()
	t.open(ctx, p.Msg, &f)
}

// open records a pixel hit of message id.
func (t *Tracker) open(ctx context.Context, id MsgID, f *hitFacts) {
	st, err := t.state(ctx, id)
	switch {
	case isNotFound(err):
		t.stats.unknownLinks.Add(1)
		t.Intake().Reject(t.Name(), "unknown_link")
		t.LogRefusalOf(f.remote, f.path, true, "unknown_message", "signed token of a message not in the store (expired?)")
		return
	case err != nil:
		t.lost(err, id.String())
		return
	}
	t.stats.opens.Add(1)
	t.observe(ctx, f, st, kindOpen, 0)
}

// serveClick answers GET and HEAD /t/c/{token} with a 302 to the link's
// stored destination. A token whose signature fails but whose link is
// known redirects there without recording anything (mail scanners rewrite
// links); a token naming no stored link gets a small 404 page; when the
// store is down and the link is not cached, a 503 page. The destination
// only ever comes from the store or the cache of it.
func (t *Tracker) serveClick(w http.ResponseWriter, r *http.Request) {
	p, err := t.signer.Decode(r.PathValue("token"))
	if errors.Is(err, errMalformedToken) {
		t.badToken(r, "click token is malformed")
		t.page(w, http.StatusNotFound, notFoundPage)
		return
	}
	signed := err == nil
	ctx, cancel := t.storeCtx(r)
	defer cancel()
	st, err := t.state(ctx, p.Msg)
	if err != nil && !isNotFound(err) {
		t.stats.storeDown.Add(1)
		t.lost(err, p.Msg.String())
		w.Header().Set("Retry-After", "5")
		t.page(w, http.StatusServiceUnavailable, unavailablePage)
		return
	}
	var l msgLink
	ok := err == nil && p.Link > 0
	if ok {
		l, ok = st.msg.link(p.Link)
	}
	if !ok {
		t.stats.unknownLinks.Add(1)
		t.Intake().Reject(t.Name(), "unknown_link")
		t.LogRefusal(r, true, "unknown_link", "token of no stored link")
		t.page(w, http.StatusNotFound, notFoundPage)
		return
	}
	if !signed {
		t.stats.unsigned.Add(1)
		t.Intake().Reject(t.Name(), "unsigned_click")
		t.LogRefusal(r, true, "bad_signature", "click token signature fails; redirected, not recorded")
		if l.Honeypot {
			t.page(w, http.StatusOK, blankPage)
		} else {
			t.redirect(w, l.URL)
		}
		return
	}
	t.stats.clicks.Add(1)
	f := t.factsOf(r)
	if t.later.later(func(ctx context.Context) { t.observe(ctx, &f, st, kindClick, p.Link) }) {
		t.stats.answeredFirst.Add(1)
	} else {
		t.observe(ctx, &f, st, kindClick, p.Link)
	}
	if l.Honeypot { // no destination: a blank page
		t.page(w, http.StatusOK, blankPage)
		return
	}
	t.redirect(w, t.siteLink(l.URL, r.PathValue("token")))
}

// redirect answers 302 to dest, a stored destination.
func (t *Tracker) redirect(w http.ResponseWriter, dest string) {
	h := w.Header()
	h["Location"] = []string{dest}
	h["Cache-Control"] = hdrNoStore
	h["Referrer-Policy"] = hdrNoReferr
	w.WriteHeader(http.StatusFound)
}

// Small pages of the click path.
const (
	notFoundPage    = "<!doctype html><meta charset=utf-8><title>Link not found</title><p>This link is not valid or has expired.\n"
	unavailablePage = "<!doctype html><meta charset=utf-8><title>Try again</title><p>This link cannot be opened right now. Please try again in a moment.\n"
	blankPage       = "<!doctype html><meta charset=utf-8><title></title>\n"
)

func (t *Tracker) page(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h["Content-Type"] = hdrHTML
	h["Cache-Control"] = hdrNoStore
	h["X-Content-Type-Options"] = hdrNoSniff
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// badToken counts and logs (at debug: scanners mangle tokens all day) a
// token that names nothing.
func (t *Tracker) badToken(r *http.Request, msg string) {
	t.stats.badTokens.Add(1)
	t.Intake().Reject(t.Name(), "bad_token")
	t.LogRefusal(r, true, "bad_token", msg)
}

// lost counts a hit that could not be recorded because the store failed.
func (t *Tracker) lost(err error, msg string) {
	t.stats.hitsLost.Add(1)
	t.Intake().Reject(t.Name(), "hit_lost")
	t.warn("tracking hit lost: store unavailable", "message", msg, "err", err)
}

// clientIP is the hit's client address: the first entry of the configured
// proxy header, else the TCP peer.
func (t *Tracker) clientIP(r *http.Request) string {
	if t.cfg.ClientIPHeader != "" {
		if v := r.Header.Get(t.cfg.ClientIPHeader); v != "" {
			if i := strings.IndexByte(v, ','); i >= 0 {
				v = v[:i]
			}
			return strings.TrimSpace(v)
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// userAgent returns the request's user agent, bounded.
func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > maxUserAgent {
		ua = strings.ToValidUTF8(ua[:maxUserAgent], "")
	}
	return ua
}

package tracking

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/normalize"
)

// Prepared is the answer of POST /api/v1/messages.
type Prepared struct {
	ID        string         `json:"id"`
	MessageID string         `json:"message_id"` // with angle brackets, as in the header
	ItemID    string         `json:"item_id"`
	PixelURL  string         `json:"pixel_url"`
	Links     []PreparedLink `json:"links"`
	Raw       string         `json:"raw"` // the RFC 5322 message, CRLF line ends, 7-bit
}

// PreparedLink is one tracked link of a prepared message.
type PreparedLink struct {
	ID       string `json:"id"`
	Index    int    `json:"index"`
	URL      string `json:"url,omitempty"`
	ClickURL string `json:"click_url"`
	Honeypot bool   `json:"honeypot,omitempty"`
}

// ErrUnknownItem is returned by PrepareKeyed (and POST /api/v1/messages) for an item_id that names no item:
// nothing is stored.
var ErrUnknownItem = errors.New("no item")

// prepareMsg builds a tracked message for req, stores it with its links and
// its Message-ID → item reference, and returns it. Errors wrap
// ErrBadRequest (the request), ErrUnknownItem (no such item; nothing is
// stored) or come from the store.
func (t *Tracker) prepareMsg(ctx context.Context, req *MessageRequest) (*Prepared, error) {
	return t.prepare(ctx, req, newMsgID(), t.Now())
}

// PrepareKeyed is prepareMsg under the message id MsgIDFor(key), dated at:
// the same key gives the same tracking id, Message-ID, pixel and click
// URLs, so a sender that retries (the send_email action, keyed by its
// outbox entry) sends the same message each time. A message already
// stored under that id is kept as it is.
func (t *Tracker) PrepareKeyed(ctx context.Context, req *MessageRequest, key string, at time.Time) (*Prepared, error) {
	return t.prepare(ctx, req, MsgIDFor(key), at)
}

func (t *Tracker) prepare(ctx context.Context, req *MessageRequest, id MsgID, now time.Time) (*Prepared, error) {
	b, err := build(req, buildInput{
		id: id, now: now, domain: t.cfg.MessageIDDomain, maxLinks: t.cfg.MaxLinks,
		click: func(idx int) string { return t.clickURL(id, idx) }, pixel: t.pixelURL(id),
	})
	if err != nil {
		return nil, err
	}
	if t.items != nil {
		if _, err := t.items.GetItem(ctx, req.ItemID); isNotFound(err) {
			return nil, fmt.Errorf("%w %q", ErrUnknownItem, req.ItemID)
		} else if err != nil {
			return nil, fmt.Errorf("tracking %s: item %s: %w", t.Name(), req.ItemID, err)
		}
	}
	if err := t.saveMessage(ctx, &b.msg); err != nil {
		return nil, err
	}
	t.msgs.Add(id, newMsgState(t.Name(), t.hitsKey(b.msg.ID), &b.msg))
	p := &Prepared{ID: b.msg.ID, MessageID: "<" + b.messageID + ">", ItemID: req.ItemID, PixelURL: t.pixelURL(id), Raw: string(b.raw)}
	for i, l := range b.msg.Links {
		p.Links = append(p.Links, PreparedLink{ID: linkID(b.msg.ID, i+1), Index: i + 1, URL: l.URL, ClickURL: t.clickURL(id, i+1), Honeypot: l.Honeypot})
	}
	return p, nil
}

// servePrepare answers POST /api/v1/messages: 201 with Prepared as JSON,
// or the raw message (Content-Type message/rfc822, X-Stagegate-Message-Id
// and X-Stagegate-Tracking-Id headers) when the request accepts
// message/rfc822 and not JSON.
func (t *Tracker) servePrepare(w http.ResponseWriter, r *http.Request) {
	var req MessageRequest
	if !httpx.DecodeJSON(w, r, t.MaxBody(), &req) {
		return
	}
	ctx, cancel := t.storeCtx(r)
	defer cancel()
	p, err := t.prepareMsg(ctx, &req)
	if err != nil {
		t.writeErr(w, r, err)
		return
	}
	if wantsRaw(r) {
		w.Header().Set("Content-Type", "message/rfc822")
		w.Header().Set("X-Stagegate-Message-Id", p.MessageID)
		w.Header().Set("X-Stagegate-Tracking-Id", p.ID)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(p.Raw))
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, p)
}

func wantsRaw(r *http.Request) bool {
	for _, a := range r.Header.Values("Accept") {
		if mt, _, err := mime.ParseMediaType(a); err == nil && mt == "message/rfc822" {
			return true
		}
	}
	return false
}

// writeErr answers an error of the API: 400 for a bad request, 404 for an
// unknown item or message, 503 when the store fails.
func (t *Tracker) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrBadRequest):
		t.Refuse(w, r, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, ErrUnknownItem):
		httpx.WriteError(w, http.StatusNotFound, "not_found", err.Error())
	case isNotFound(err):
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no tracked message "+strconv.Quote(r.PathValue("id")))
	default:
		t.warn("tracking api: store failed", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(int(connectors.RetryAfter/time.Second)))
		httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the store is unavailable; retry later")
	}
}

// pathMessage returns the message id of the {id} path value (our id, or
// a Message-ID we generated), or answers 404.
func (t *Tracker) pathMessage(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, ok := msgIDFromRef(r.PathValue("id"))
	if !ok {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no tracked message "+strconv.Quote(r.PathValue("id")))
	}
	return id, ok
}

// atBody is the optional body of /sent and /replied: when it happened.
type atBody struct {
	At time.Time `json:"at"`
}

// readAt reads an optional {"at": RFC 3339} body; default now.
func (t *Tracker) readAt(w http.ResponseWriter, r *http.Request) (time.Time, bool) {
	var b atBody
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		if !httpx.DecodeJSON(w, r, 4096, &b) {
			return time.Time{}, false
		}
	}
	if b.At.IsZero() {
		b.At = t.Now()
	}
	return b.At, true
}

// serveSent answers POST /api/v1/messages/{id}/sent: it records the send
// time (hits are then timed from it) and submits email.sent.
func (t *Tracker) serveSent(w http.ResponseWriter, r *http.Request) {
	id, ok := t.pathMessage(w, r)
	if !ok {
		return
	}
	at, ok := t.readAt(w, r)
	if !ok {
		return
	}
	ctx, cancel := t.storeCtx(r)
	defer cancel()
	ev, err := t.Sent(ctx, id, at)
	if err != nil {
		t.writeErr(w, r, err)
		return
	}
	res, ok := t.Submit(w, r, ev)
	if ok {
		connectors.WriteAccepted(w, res)
	}
}

// Sent records that tracked message id was sent at (the first send
// counts: hits are timed from it) and returns its email.sent event, which
// the caller submits. An unknown message is store.ErrNotFound.
func (t *Tracker) Sent(ctx context.Context, id string, at time.Time) (*normalize.Event, error) {
	m, err := t.markSent(ctx, id, at)
	if err != nil {
		return nil, err
	}
	if mid, ok := parseMsgID(id); ok {
		if st, ok := t.msgs.Get(mid); ok {
			st.mu.Lock()
			st.sentAt = m.SentAt
			st.mu.Unlock()
		}
	}
	return normalizeSent(t.Name(), m, m.SentAt, t.Now()), nil
}

// serveReplied answers POST /api/v1/messages/{id}/replied: a reply to the
// message was received, so it was read; see recordReply.
func (t *Tracker) serveReplied(w http.ResponseWriter, r *http.Request) {
	id, ok := t.pathMessage(w, r)
	if !ok {
		return
	}
	at, ok := t.readAt(w, r)
	if !ok {
		return
	}
	ctx, cancel := t.storeCtx(r)
	defer cancel()
	m, err := t.loadMessage(ctx, id)
	if err != nil {
		t.writeErr(w, r, err)
		return
	}
	res, ok := t.Submit(w, r, normalizeOpen(t.Name(), m, nil, inferredReply, at, t.Now()))
	if ok {
		connectors.WriteAccepted(w, res)
	}
}

// recordReply infers the human open of a tracked message from a reply to it
// (ref: the tracked message id or its Message-ID, as found in the reply's
// In-Reply-To or References). The event shares its id with a real human
// open, so it changes nothing when one was seen. It returns
// store.ErrNotFound for a message that is not ours.
func (t *Tracker) recordReply(ctx context.Context, ref string, at time.Time) (connectors.Result, error) {
	id, ok := msgIDFromRef(ref)
	if !ok {
		return connectors.Result{}, fmt.Errorf("tracking %s: %q: %w", t.Name(), ref, errNotOurs)
	}
	m, err := t.loadMessage(ctx, id)
	if err != nil {
		return connectors.Result{}, err
	}
	return t.Intake().Submit(ctx, normalizeOpen(t.Name(), m, nil, inferredReply, at, t.Now()))
}

// serveStats answers GET /api/v1/tracking/stats with the counters.
func (t *Tracker) serveStats(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, t.statsNow())
}

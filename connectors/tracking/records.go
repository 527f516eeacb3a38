package tracking

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stagegate/stagegate/connectors/tracking/compose"
	"github.com/stagegate/stagegate/store"
)

// Records layout, under "tracking/<connector>/":
//
//	msg/<id>      Message (JSON), TTL retention
//	hits/<id>     list of scoredHit (JSON), one element per hit, TTL retention
//	visitor/<id>  visitorRecord (JSON), TTL retention
//
// and, shared with the engine, store.MessageKey(Message-ID) → the item.
func (t *Tracker) msgKey(id string) string     { return t.prefix + "msg/" + id }
func (t *Tracker) hitsKey(id string) string    { return t.prefix + "hits/" + id }
func (t *Tracker) visitorKey(id string) string { return t.prefix + "visitor/" + id }

// msgLink is one tracked link of a message; link i of a token is Links[i-1].
// A honeypot link has no destination: a click on it answers a blank page.
type msgLink = compose.Link

// msgRecord is a tracked message as stored.
type msgRecord struct {
	ID        string    `json:"id"`
	MessageID string    `json:"message_id"` // without angle brackets
	ItemID    string    `json:"item_id"`
	From      string    `json:"from"`
	To        []string  `json:"to"`
	Subject   string    `json:"subject"`
	CreatedAt time.Time `json:"created_at"`
	SentAt    time.Time `json:"sent_at,omitzero"`
	Links     []msgLink `json:"links"`
}

// link returns link idx (from 1), if the message has it.
func (m *msgRecord) link(idx int) (msgLink, bool) {
	if idx < 1 || idx > len(m.Links) {
		return msgLink{}, false
	}
	return m.Links[idx-1], true
}

// trackedLinks counts the links a human can see (not the honeypot).
func (m *msgRecord) trackedLinks() int {
	n := 0
	for _, l := range m.Links {
		if !l.Honeypot {
			n++
		}
	}
	return n
}

// scoredHit kinds.
const (
	kindOpen  = "open"
	kindClick = "click"
)

// scoredHit is one request to the pixel or a click URL, with its score. Hits are
// statistics: all are kept (up to max_hits per message), machine ones too.
type scoredHit struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Link    int       `json:"link,omitempty"`
	Method  string    `json:"method"`
	UA      string    `json:"user_agent,omitempty"`
	IP      string    `json:"ip,omitempty"`
	SinceS  float64   `json:"since_s"` // seconds since the message was sent (or prepared)
	Machine bool      `json:"machine"`
	Score   int       `json:"score"`
	Reasons []string  `json:"reasons,omitempty"`
}

// loadMessage reads a message from the store, or store.ErrNotFound.
func (t *Tracker) loadMessage(ctx context.Context, id string) (*msgRecord, error) {
	var m msgRecord
	ver, err := store.GetJSON(ctx, t.records, t.msgKey(id), &m)
	if err == nil && ver == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("tracking %s: message %s: %w", t.Name(), id, err)
	}
	return &m, nil
}

// saveMessage stores a new message and its Message-ID reference. A
// message already stored under its id (PrepareKeyed again) is kept.
func (t *Tracker) saveMessage(ctx context.Context, m *msgRecord) error {
	if _, err := store.PutJSON(ctx, t.records, t.msgKey(m.ID), m, 0, t.cfg.Retention); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("tracking %s: store message %s: %w", t.Name(), m.ID, err)
	}
	ref := store.MessageRef{ItemID: m.ItemID, Source: "tracking", CreatedAt: m.CreatedAt}
	return store.PutMessageRef(ctx, t.records, m.MessageID, ref, t.cfg.Retention)
}

// markSent records the first send time of a message (store.UpdateJSON),
// so that "quick" is measured from the send.
func (t *Tracker) markSent(ctx context.Context, id string, at time.Time) (*msgRecord, error) {
	m, _, err := store.UpdateJSON(ctx, t.records, t.msgKey(id), t.cfg.Retention, func(m *msgRecord, version int64) (bool, error) {
		switch {
		case version == 0:
			return false, store.ErrNotFound
		case !m.SentAt.IsZero():
			return false, nil
		}
		m.SentAt = at
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("tracking %s: message %s: %w", t.Name(), id, err)
	}
	return &m, nil
}

// msgIDFromRef returns the tracked message id named by s: the id itself,
// or a Message-ID we generated ("<sg.<id>@domain>").
func msgIDFromRef(s string) (string, bool) {
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "<"), ">")
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		s = strings.TrimPrefix(s[:at], "sg.")
	}
	if _, ok := parseMsgID(s); !ok {
		return "", false
	}
	return s, true
}

// errNotOurs: a reference that names no tracked message of ours.
var errNotOurs = fmt.Errorf("not a tracked message: %w", store.ErrNotFound)

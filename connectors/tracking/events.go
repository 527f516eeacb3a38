package tracking

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/stagegate/stagegate/normalize"
)

// Inferred-open sources (attrs.inferred).
const (
	InferredClick = "click"
	InferredReply = "reply"
)

// class is the part of an event id that keeps human and machine hits apart.
func class(machine bool) string {
	if machine {
		return "machine"
	}
	return "human"
}

// OpenEventID is the id of the email.opened event of a message: one per
// (message, human|machine). A real open and an open inferred from a click
// or a reply share it, so the first of them wins and the rest are
// duplicates.
func OpenEventID(connector, msg string, machine bool) string {
	return normalize.MakeID(connector, msg, "open", class(machine))
}

// ClickEventID is the id of the email.clicked event of one link: one per
// (message, link, human|machine).
func ClickEventID(connector, msg string, link int, machine bool) string {
	return normalize.MakeID(connector, msg, "click", strconv.Itoa(link), class(machine))
}

// SentEventID is the id of the email.sent event of a message.
func SentEventID(connector, msg string) string { return normalize.MakeID(connector, msg, "sent") }

// LinkID names link idx of message msg in attrs and in the API.
func LinkID(msg string, idx int) string { return msg + "." + strconv.Itoa(idx) }

// subject names the message's item (from the signed token's message) and
// its first recipient.
func subject(m *Message) normalize.Subject {
	s := normalize.Subject{ItemID: m.ItemID}
	if len(m.To) > 0 {
		s.Email = normalize.NormalizeEmail(m.To[0])
	}
	return s
}

// hitAttrs are the attrs every hit event carries.
func hitAttrs(m *Message, h *Hit) map[string]string {
	return map[string]string{
		"message_id":  "<" + m.MessageID + ">",
		"tracking_id": m.ID,
		"user_agent":  h.UA,
		"machine":     strconv.FormatBool(h.Machine),
		"score":       strconv.Itoa(h.Score),
		"reasons":     strings.Join(h.Reasons, ","),
	}
}

func rawHit(h *Hit) []byte {
	b, _ := json.Marshal(h)
	return normalize.Excerpt(b)
}

// NormalizeOpen builds the email.opened event of message m from hit h: a
// pixel hit (inferred ""), or the human click or reply an open is inferred
// from (inferred "click" or "reply"; h is then that click, or nil for a
// reply at time at). It is pure: now is the time received.
func NormalizeOpen(connector string, m *Message, h *Hit, inferred string, at, now time.Time) *normalize.Event {
	if h == nil {
		h = &Hit{At: at, Kind: inferred}
	}
	attrs := hitAttrs(m, h)
	if inferred != "" {
		attrs["inferred"] = inferred
	}
	return &normalize.Event{
		ID:         OpenEventID(connector, m.ID, h.Machine),
		Type:       normalize.EmailOpened,
		Connector:  connector,
		OccurredAt: h.At,
		ReceivedAt: now,
		Subject:    subject(m),
		Attrs:      attrs,
		Raw:        rawHit(h),
	}
}

// NormalizeClick builds the email.clicked event of hit h on link
// h.Link of message m.
func NormalizeClick(connector string, m *Message, h *Hit, now time.Time) *normalize.Event {
	l, _ := m.link(h.Link)
	attrs := hitAttrs(m, h)
	attrs["url"] = l.URL
	attrs["link_id"] = LinkID(m.ID, h.Link)
	return &normalize.Event{
		ID:         ClickEventID(connector, m.ID, h.Link, h.Machine),
		Type:       normalize.EmailClicked,
		Connector:  connector,
		OccurredAt: h.At,
		ReceivedAt: now,
		Subject:    subject(m),
		Attrs:      attrs,
		Raw:        rawHit(h),
	}
}

// NormalizeSent builds the email.sent event of message m, sent at at.
func NormalizeSent(connector string, m *Message, at, now time.Time) *normalize.Event {
	raw, _ := json.Marshal(map[string]any{"message_id": m.MessageID, "to": m.To, "sent_at": at})
	return &normalize.Event{
		ID:         SentEventID(connector, m.ID),
		Type:       normalize.EmailSent,
		Connector:  connector,
		OccurredAt: at,
		ReceivedAt: now,
		Subject:    subject(m),
		Attrs: map[string]string{
			"message_id":  "<" + m.MessageID + ">",
			"tracking_id": m.ID,
			"to":          strings.Join(m.To, ", "),
			"subject":     m.Subject,
		},
		Raw: raw,
	}
}

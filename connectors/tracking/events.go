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
	inferredClick = "click"
	inferredReply = "reply"
)

// class is the part of an event id that keeps human and machine hits apart.
func class(machine bool) string {
	if machine {
		return "machine"
	}
	return "human"
}

// openEventID is the id of the email.opened event of a message: one per
// (message, human|machine). A real open and an open inferred from a click
// or a reply share it, so the first of them wins and the rest are
// duplicates.
func openEventID(connector, msg string, machine bool) string {
	return normalize.MakeID(connector, msg, "open", class(machine))
}

// clickEventID is the id of the email.clicked event of one link: one per
// (message, link, human|machine).
func clickEventID(connector, msg string, link int, machine bool) string {
	return normalize.MakeID(connector, msg, "click", strconv.Itoa(link), class(machine))
}

// sentEventID is the id of the email.sent event of a message.
func sentEventID(connector, msg string) string { return normalize.MakeID(connector, msg, "sent") }

// linkID names link idx of message msg in attrs and in the API.
func linkID(msg string, idx int) string { return msg + "." + strconv.Itoa(idx) }

// subject names the message's item (from the signed token's message) and
// its first recipient.
func subject(m *msgRecord) normalize.Subject {
	s := normalize.Subject{ItemID: m.ItemID}
	if len(m.To) > 0 {
		s.Email = normalize.NormalizeEmail(m.To[0])
	}
	return s
}

// hitAttrs are the attrs every hit event carries.
func hitAttrs(m *msgRecord, h *scoredHit) map[string]string {
	return map[string]string{
		"message_id":  "<" + m.MessageID + ">",
		"tracking_id": m.ID,
		"user_agent":  h.UA,
		"machine":     strconv.FormatBool(h.Machine),
		"score":       strconv.Itoa(h.Score),
		"reasons":     strings.Join(h.Reasons, ","),
	}
}

func rawHit(h *scoredHit) []byte {
	b, _ := json.Marshal(h)
	return normalize.Excerpt(b)
}

// normalizeOpen builds the email.opened event of message m from hit h: a
// pixel hit (inferred ""), or the human click or reply an open is inferred
// from (inferred "click" or "reply"; h is then that click, or nil for a
// reply at time at). It is pure: now is the time received.
func normalizeOpen(connector string, m *msgRecord, h *scoredHit, inferred string, at, now time.Time) *normalize.Event {
	if h == nil {
		h = &scoredHit{At: at, Kind: inferred}
	}
	attrs := hitAttrs(m, h)
	if inferred != "" {
		attrs["inferred"] = inferred
	}
	return &normalize.Event{
		ID:         openEventID(connector, m.ID, h.Machine),
		Type:       normalize.EmailOpened,
		Connector:  connector,
		OccurredAt: h.At,
		ReceivedAt: now,
		Subject:    subject(m),
		Attrs:      attrs,
		Raw:        rawHit(h),
	}
}

// normalizeClick builds the email.clicked event of hit h on link
// h.Link of message m.
func normalizeClick(connector string, m *msgRecord, h *scoredHit, now time.Time) *normalize.Event {
	l, _ := m.link(h.Link)
	attrs := hitAttrs(m, h)
	attrs["url"] = l.URL
	attrs["link_id"] = linkID(m.ID, h.Link)
	return &normalize.Event{
		ID:         clickEventID(connector, m.ID, h.Link, h.Machine),
		Type:       normalize.EmailClicked,
		Connector:  connector,
		OccurredAt: h.At,
		ReceivedAt: now,
		Subject:    subject(m),
		Attrs:      attrs,
		Raw:        rawHit(h),
	}
}

// normalizeSent builds the email.sent event of message m, sent at at.
func normalizeSent(connector string, m *msgRecord, at, now time.Time) *normalize.Event {
	raw, _ := json.Marshal(map[string]any{"message_id": m.MessageID, "to": m.To, "sent_at": at})
	return &normalize.Event{
		ID:         sentEventID(connector, m.ID),
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

// Package normalize defines the one event type that every connector produces,
// and the pure functions that turn raw inputs into events. Normalizers do no
// I/O and read no clock: everything they need is passed in, so they are
// golden-tested on files under testdata/.
package normalize

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Type names what happened: the constants below (docs/architecture.md §2).
type Type string

// The event types. crm.* types are open-ended: any "crm." prefix is valid.
const (
	EmailIncoming  Type = "email.incoming"
	EmailSent      Type = "email.sent"
	EmailOpened    Type = "email.opened"
	EmailClicked   Type = "email.clicked"
	CallInbound    Type = "call.inbound"
	CallOutbound   Type = "call.outbound"
	CallMissed     Type = "call.missed"
	ChatStarted    Type = "chat.started"
	ChatMessage    Type = "chat.message"
	ChatAccepted   Type = "chat.accepted"
	FormSubmitted  Type = "form.submitted"
	WebhookReceive Type = "webhook.received"
	SiteVisit      Type = "site.visit"
	SiteReturn     Type = "site.return"
	// ItemFieldChanged and ItemResponsibleChanged are emitted by the gateway
	// itself when an item's field or responsible user changes (the API's
	// PATCH, the set_field and set_responsible actions).
	ItemFieldChanged       Type = "item.field_changed"
	ItemResponsibleChanged Type = "item.responsible_changed"
	CRMPrefix                   = "crm."
	// ItemPrefix starts the types of item changes.
	ItemPrefix = "item."
)

// ItemConnector is the connector name of item change events.
const ItemConnector = "item"

var knownTypes = map[Type]bool{
	EmailIncoming: true, EmailSent: true, EmailOpened: true, EmailClicked: true,
	CallInbound: true, CallOutbound: true, CallMissed: true,
	ChatStarted: true, ChatMessage: true, ChatAccepted: true,
	FormSubmitted: true, WebhookReceive: true, SiteVisit: true, SiteReturn: true,
	ItemFieldChanged: true, ItemResponsibleChanged: true,
}

var crmName = regexp.MustCompile(`^crm\.[a-z0-9][a-z0-9_.-]{0,63}$`)

// Valid reports whether t is a known event type or a well-formed crm.<name>.
func (t Type) Valid() bool {
	if knownTypes[t] {
		return true
	}
	return crmName.MatchString(string(t))
}

// Subject says who acted. Any subset of the fields may be set; the engine
// looks them up in the order ItemID, Email, Phone, VisitorID.
type Subject struct {
	Email     string `json:"email,omitempty"`
	Phone     string `json:"phone,omitempty"` // E.164
	VisitorID string `json:"visitor_id,omitempty"`
	ItemID    string `json:"item_id,omitempty"` // from a signed token or the API
	Name      string `json:"name,omitempty"`    // display name, used when a contact is created
}

// Empty reports whether no identity is set.
func (s Subject) Empty() bool {
	return s.Email == "" && s.Phone == "" && s.VisitorID == "" && s.ItemID == ""
}

// Event is one normalized customer action.
type Event struct {
	// ID is the stable idempotency key derived from the source, never random.
	// It is also the deduplication key: two events with one ID are one event.
	ID         string            `json:"id"`
	Type       Type              `json:"type"`
	Connector  string            `json:"connector"`
	OccurredAt time.Time         `json:"occurred_at"`
	ReceivedAt time.Time         `json:"received_at"`
	Subject    Subject           `json:"subject"`
	Channel    string            `json:"channel,omitempty"`
	Attrs      map[string]string `json:"attrs,omitempty"`
	// Warnings lists problems met while normalizing that did not stop the event.
	Warnings []string `json:"warnings,omitempty"`
	// Raw is the original input, or a bounded excerpt of it, for audit and replay.
	Raw []byte `json:"raw,omitempty"`
}

// AttrNotCustomerMail is the attribute a connector sets, with the reason as
// its value, on an event that is recorded but must fire no trigger (an
// auto-reply, a bounce, a mailing list). The engine honours it for every type.
const AttrNotCustomerMail = "not_customer"

// MaxRaw bounds how much of an input is kept in Event.Raw.
const MaxRaw = 16 << 10

// Excerpt returns at most MaxRaw bytes of b, copied.
func Excerpt(b []byte) []byte {
	if len(b) > MaxRaw {
		b = b[:MaxRaw]
	}
	return append([]byte(nil), b...)
}

// ValidSourceID reports whether s can be used as a caller-supplied id: 1 to
// 200 characters of letters, digits and ._:@+/=-. It runs on every event,
// so it is a byte loop rather than a regular expression.
func ValidSourceID(s string) bool {
	if len(s) == 0 || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idByte(s[i]) {
			return false
		}
	}
	return true
}

// idByte reports whether c is one of the characters ValidSourceID allows.
func idByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("._:@+/=-", c) >= 0
}

// MakeID builds an event id "connector:part:part…". Parts that are not safe
// id characters are replaced by their SHA-256 hex digest, so the id stays
// printable and stable whatever the source sent.
func MakeID(connector string, parts ...string) string {
	var b strings.Builder
	b.WriteString(connector)
	for _, p := range parts {
		b.WriteByte(':')
		if ValidSourceID(p) {
			b.WriteString(p)
		} else {
			b.WriteString(Hash(p))
		}
	}
	return b.String()
}

// Hash returns a short stable digest of the parts (hex of SHA-256, 32 chars).
func Hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// NormalizeEmail lower-cases and trims an address; it returns "" when the
// input does not look like one address.
func NormalizeEmail(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if i := strings.LastIndexByte(s, '<'); i >= 0 && strings.HasSuffix(s, ">") {
		s = s[i+1 : len(s)-1]
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n,;<>") {
		return ""
	}
	return s
}

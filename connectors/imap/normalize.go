package imap

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/stagegate/stagegate/normalize"
)

// Fetched is one mail as fetched from a folder: what the normalizer needs,
// nothing it would have to look up.
type Fetched struct {
	Connector   string
	Account     string // the username; Attrs["mailbox"]
	Folder      string
	Sent        bool // from the sent folder: email.sent, else email.incoming
	UIDValidity uint32
	UID         uint32
	// InternalDate is when the server received the mail (zero if unknown).
	InternalDate time.Time
	// Size is the mail's full size as the server reports it (RFC822.SIZE).
	Size int64
	// Raw is what was fetched: the whole mail, or its first bytes when
	// the mail is larger than the connector reads.
	Raw      []byte
	Received time.Time
}

// Rules are the connector settings the normalizer applies.
type Rules struct {
	Own          Own
	AcceptLists  bool
	ExcerptChars int
}

// Result is what Normalize made of a mail.
type Result struct {
	// Events: one email.incoming, or one email.sent per customer recipient.
	Events []*normalize.Event
	// MessageID is the mail's Message-ID without brackets ("" if none).
	MessageID string
	// Refs are In-Reply-To then References, newest first.
	Refs []string
	// Date is the Date header (zero when missing or unreadable).
	Date time.Time
	// Ignored says why a mail gave no event (a sent mail to our own
	// addresses only).
	Ignored string
}

// Normalize turns one fetched mail into events. It is pure (no I/O, no
// clock) and never fails: whatever it cannot read becomes a warning on the
// event, so that no mail is dropped.
func Normalize(f Fetched, r Rules) Result {
	var w warnings
	hb, rawBody := splitMessage(f.Raw, &w)
	h := parseHeader(hb, &w)
	if f.Size > int64(len(f.Raw)) {
		w.add("mail of %d bytes: only the first %d were read", f.Size, len(f.Raw))
	}
	m := readMail(&h, rawBody, &w)
	if m.messageID == "" {
		w.add("no Message-ID: the event id is a hash of the sender, recipients, subject, date and body")
	}
	attrs := m.attrs(f, r)
	key := mailKey(&h, m.messageID, rawBody)
	var res Result
	res.MessageID, res.Date = m.messageID, m.date
	res.Refs = append(append([]string(nil), reverse(m.inReplyTo)...), reverse(m.references)...)

	base := normalize.Event{
		Connector: f.Connector, ReceivedAt: f.Received, OccurredAt: occurred(f, m.date),
		Channel: f.Folder, Raw: normalize.Excerpt(f.Raw),
	}
	if !f.Sent {
		ev := base
		ev.Type = normalize.EmailIncoming
		ev.ID = normalize.MakeID(f.Connector, key...)
		subj, own := incomingSubject(m, r.Own)
		ev.Subject = normalize.Subject{Email: subj.Addr, Name: subj.Name}
		ev.Attrs = attrs
		why := notCustomer(&h, subj.Addr, r.AcceptLists)
		if why == "" {
			why = own
		}
		if why != "" {
			ev.Attrs[normalize.AttrNotCustomerMail] = why
		}
		if ev.Subject.Email == "" {
			w.add("no sender address: the event has no subject")
		}
		ev.Warnings = w
		res.Events = []*normalize.Event{&ev}
		return res
	}
	why := notCustomer(&h, "", r.AcceptLists)
	for _, rcpt := range customerRecipients(m, r.Own) {
		ev := base
		ev.Type = normalize.EmailSent
		ev.ID = normalize.MakeID(f.Connector, append(append([]string{"sent"}, key...), rcpt.Addr)...)
		ev.Subject = normalize.Subject{Email: rcpt.Addr, Name: rcpt.Name}
		ev.Attrs = cloneAttrs(attrs)
		ev.Attrs["recipient"] = rcpt.Addr
		if why != "" {
			ev.Attrs[normalize.AttrNotCustomerMail] = why
		}
		ev.Warnings = append([]string(nil), w...)
		res.Events = append(res.Events, &ev)
	}
	if len(res.Events) == 0 {
		res.Ignored = "no customer recipient (only our own addresses, or none)"
	}
	return res
}

// parsed is what Normalize reads of a mail.
type parsed struct {
	from, replyTo, to, cc, bcc []address
	subject                    string
	messageID                  string
	inReplyTo, references      []string
	date                       time.Time
	body                       body
}

func readMail(h *mail.Header, rawBody []byte, w *warnings) parsed {
	var m parsed
	m.from = addresses(h, "From", w)
	m.replyTo = addresses(h, "Reply-To", w)
	m.to = addresses(h, "To", w)
	m.cc = addresses(h, "Cc", w)
	m.bcc = addresses(h, "Bcc", w)
	m.subject = text(h, "Subject", w)
	if ids := msgIDs(h, "Message-Id"); len(ids) > 0 {
		m.messageID = ids[0]
	} else if h.Has("Message-Id") {
		w.add("Message-ID %q is not a message id", clip(h.Get("Message-Id"), 100))
	}
	m.inReplyTo = msgIDs(h, "In-Reply-To")
	m.references = msgIDs(h, "References")
	if len(m.references) > maxRefs {
		m.references = m.references[len(m.references)-maxRefs:]
	}
	if h.Has("Date") {
		d, err := parseDate(h)
		if err != nil {
			w.add("Date: %v", err)
		} else {
			m.date = d.UTC()
		}
	}
	m.body = readBody(*h, rawBody, w)
	return m
}

// parseDate reads the Date header; the usual form is tried first, as the
// general parser is slow.
func parseDate(h *mail.Header) (time.Time, error) {
	v := strings.TrimSpace(h.Get("Date"))
	for _, layout := range []string{time.RFC1123Z, "Mon, _2 Jan 2006 15:04:05 -0700", "_2 Jan 2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return h.Date()
}

// attrs are the event attributes common to every event of the mail.
func (m parsed) attrs(f Fetched, r Rules) map[string]string {
	a := map[string]string{
		"mailbox": f.Account, "account": f.Account, "folder": f.Folder,
		"uidvalidity": strconv.FormatUint(uint64(f.UIDValidity), 10),
		"uid":         strconv.FormatUint(uint64(f.UID), 10),
		"subject":     m.subject,
	}
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	if len(m.from) > 0 {
		set("from", m.from[0].Addr)
		set("from_name", m.from[0].Name)
	}
	set("reply_to", joinAddrs(m.replyTo))
	set("to", joinAddrs(m.to))
	set("cc", joinAddrs(m.cc))
	set("bcc", joinAddrs(m.bcc))
	set("message_id", m.messageID)
	set("in_reply_to", clip(strings.Join(m.inReplyTo, " "), maxAttrBytes*2))
	set("references", clip(strings.Join(m.references, " "), maxAttrBytes*4))
	if !f.InternalDate.IsZero() {
		a["internal_date"] = f.InternalDate.UTC().Format(time.RFC3339)
	}
	if !m.date.IsZero() {
		a["date"] = m.date.Format(time.RFC3339)
	}
	if f.Size > 0 {
		a["size"] = strconv.FormatInt(f.Size, 10)
	}
	if f.Size > int64(len(f.Raw)) {
		a["truncated"] = "true"
	}
	set("text", m.body.excerpt(r.ExcerptChars))
	if n := len(m.body.attachments); n > 0 {
		a["attachments"] = strconv.Itoa(n)
		list := m.body.attachments[:min(n, maxAttachLog)]
		if b, err := json.Marshal(list); err == nil {
			a["attachment_list"] = clip(string(b), maxAttrBytes*2)
		}
	}
	return a
}

// incomingSubject picks who wrote an incoming mail: the From address, or
// Reply-To when From is one of ours (a web form relaying a customer). A
// mail from our own address with no customer Reply-To is not customer mail.
func incomingSubject(m parsed, own Own) (address, string) {
	var from address
	if len(m.from) > 0 {
		from = m.from[0]
	}
	if from.Addr != "" && !own.Is(from.Addr) {
		return from, ""
	}
	for _, a := range m.replyTo {
		if !own.Is(a.Addr) {
			return a, ""
		}
	}
	if from.Addr != "" {
		return from, "sent from our own address"
	}
	return address{}, ""
}

// customerRecipients lists the To, Cc and Bcc addresses that are not ours,
// each once.
func customerRecipients(m parsed, own Own) []address {
	var out []address
	seen := map[string]bool{}
	for _, list := range [][]address{m.to, m.cc, m.bcc} {
		for _, a := range list {
			if !seen[a.Addr] && !own.Is(a.Addr) {
				seen[a.Addr] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// mailKey is the part of the event id that names the mail: its Message-ID,
// or for mail without one "nomid" and a hash of the headers that survive
// a redelivery (originator fields and Date) and of the body and its size.
func mailKey(h *mail.Header, messageID string, rawBody []byte) []string {
	if messageID != "" {
		return []string{messageID}
	}
	sum := sha256.Sum256(rawBody)
	parts := []string{hex.EncodeToString(sum[:]), strconv.Itoa(len(rawBody))}
	for _, k := range []string{"From", "Sender", "To", "Cc", "Subject", "Date", "In-Reply-To", "References"} {
		parts = append(parts, k, strings.Join(h.Values(k), "\n"))
	}
	return []string{"nomid", normalize.Hash(parts...)}
}

// occurred is when the mail happened: the server's arrival time, else its
// Date header, else when we read it.
func occurred(f Fetched, date time.Time) time.Time {
	switch {
	case !f.InternalDate.IsZero():
		return f.InternalDate.UTC()
	case !date.IsZero():
		return date
	default:
		return f.Received
	}
}

func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func cloneAttrs(a map[string]string) map[string]string {
	out := make(map[string]string, len(a)+1)
	for k, v := range a {
		out[k] = v
	}
	return out
}

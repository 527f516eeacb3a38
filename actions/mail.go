package actions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// MailRequest is a message send_email asks a MailBuilder to build.
type MailRequest struct {
	// Key is the action run's idempotency key: the message's ids derive
	// from it, so every attempt (and a retry after a crash) builds the
	// message under the same Message-ID.
	Key      string
	ItemID   string
	From     *mail.Address
	To, Cc   []*mail.Address
	ReplyTo  []*mail.Address
	Subject  string
	HTML     string
	Text     string
	Honeypot bool
	Date     time.Time
}

// BuiltMail is a message ready to submit.
type BuiltMail struct {
	MessageID  string // with angle brackets, as in the header
	TrackingID string // the tracking connector's message id; "" untracked
	Raw        []byte // RFC 5322, CRLF line ends
}

// MailBuilder builds tracked messages: the tracking connector's builder
// (the one behind POST /api/v1/messages), wired by the gateway. Building
// stores the message, its links and its Message-ID → item reference (for
// reply routing).
type MailBuilder interface {
	// BuildMail builds and stores the tracked message of req. A request
	// the builder refuses is a permanent error (engine.Permanent).
	BuildMail(ctx context.Context, req MailRequest) (BuiltMail, error)
	// MailSent records that the server accepted the message (hits are
	// timed from then on) and returns its email.sent event, the one
	// POST /api/v1/messages/{id}/sent submits.
	MailSent(ctx context.Context, trackingID string, at time.Time) (*normalize.Event, error)
}

// SentSaver keeps a copy of a sent message in a mailbox's Sent folder: an
// imap connector, for send_email's save_to.
type SentSaver interface {
	SaveSent(ctx context.Context, raw []byte, at time.Time) error
}

// mailRetention is how long send_email keeps its records (sent marks,
// Message-ID references of untracked messages).
const mailRetention = 180 * 24 * time.Hour

// MessageIDFor is the Message-ID (without angle brackets) of the untracked
// message of the action run with idempotency key key.
func MessageIDFor(key string, from *mail.Address) string {
	return "sg." + normalize.Hash("send_email", key)[:24] + "@" + domainOf(from.Address)
}

func domainOf(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}

// buildPlain writes an untracked message with go-message: text, HTML or
// both as multipart/alternative, quoted-printable UTF-8 parts. It records
// the Message-ID for the item, so replies still find it.
func (r *Runner) buildPlain(ctx context.Context, req MailRequest) (BuiltMail, error) {
	mid := MessageIDFor(req.Key, req.From)
	var h gomail.Header
	h.SetDate(req.Date)
	h.SetAddressList("From", []*gomail.Address{req.From})
	h.SetAddressList("To", req.To)
	if len(req.Cc) > 0 {
		h.SetAddressList("Cc", req.Cc)
	}
	if len(req.ReplyTo) > 0 {
		h.SetAddressList("Reply-To", req.ReplyTo)
	}
	h.SetSubject(req.Subject)
	h.SetMessageID(mid)
	var out bytes.Buffer
	w, err := gomail.CreateInlineWriter(&out, h)
	if err != nil {
		return BuiltMail{}, engine.Permanent(fmt.Errorf("build message: %w", err))
	}
	for _, p := range []struct{ ct, body string }{{"text/plain", req.Text}, {"text/html", req.HTML}} {
		if strings.TrimSpace(p.body) == "" {
			continue
		}
		var ph gomail.InlineHeader
		ph.Set("Content-Transfer-Encoding", "quoted-printable")
		ph.SetContentType(p.ct, map[string]string{"charset": "utf-8"})
		pw, err := w.CreatePart(ph)
		if err == nil {
			_, err = pw.Write([]byte(p.body))
		}
		if err == nil {
			err = pw.Close()
		}
		if err != nil {
			return BuiltMail{}, engine.Permanent(fmt.Errorf("build message: %w", err))
		}
	}
	if err := w.Close(); err != nil {
		return BuiltMail{}, engine.Permanent(fmt.Errorf("build message: %w", err))
	}
	if r.st != nil {
		ref := store.MessageRef{ItemID: req.ItemID, Source: "send_email", CreatedAt: req.Date}
		if err := store.PutMessageRef(ctx, r.st, mid, ref, mailRetention); err != nil {
			return BuiltMail{}, fmt.Errorf("record message id: %w", err)
		}
	}
	return BuiltMail{MessageID: "<" + mid + ">", Raw: out.Bytes()}, nil
}

// sentMark is the record of a message the server accepted, kept under the
// action run: an attempt after it (its event could not be recorded, the
// process died) does not send again.
type sentMark struct {
	MessageID  string    `json:"message_id"`
	TrackingID string    `json:"tracking_id,omitempty"`
	To         []string  `json:"to"`
	Subject    string    `json:"subject"`
	At         time.Time `json:"at"`
	// Raw is the message, kept for save_to until the copy is saved.
	Raw   []byte `json:"raw,omitempty"`
	Saved bool   `json:"saved,omitempty"`
}

func sentKey(actionID string) string { return "send_email/sent/" + actionID }

// sentBefore returns the mark of an earlier accepted attempt, if any.
func (r *Runner) sentBefore(ctx context.Context, actionID string) (*sentMark, error) {
	if r.st == nil {
		return nil, nil
	}
	var m sentMark
	ver, err := store.GetJSON(ctx, r.st, sentKey(actionID), &m)
	if err != nil || ver == 0 {
		return nil, err
	}
	return &m, nil
}

// markSent records an accepted message; a failure is only logged (the
// worst case is what a crash at the same point does: a resend under the
// same Message-ID).
func (r *Runner) markSent(ctx context.Context, actionID string, m *sentMark) {
	if r.st == nil {
		return
	}
	if _, err := store.PutJSON(ctx, r.st, sentKey(actionID), m, 0, mailRetention); err != nil && !errors.Is(err, store.ErrConflict) {
		r.log.Warn("send_email: record the accepted message", "action", actionID, "message_id", m.MessageID, "err", err)
	}
}

// saveCopy appends the accepted message to the Sent folder of the imap
// connector save_to names, once: the mark remembers it.
func (r *Runner) saveCopy(ctx context.Context, in engine.ActionInput, saveTo string, m *sentMark) error {
	saver, ok := r.mailboxes[saveTo]
	if !ok {
		return engine.Permanent(fmt.Errorf("send_email: accepted as %s, but save_to %q is not an imap connector of this gateway", m.MessageID, saveTo))
	}
	if err := saver.SaveSent(ctx, m.Raw, m.At); err != nil {
		return fmt.Errorf("send_email: accepted as %s, but the copy to %s's Sent folder failed: %w", m.MessageID, saveTo, err)
	}
	if r.st == nil {
		return nil
	}
	_, _, err := store.UpdateJSON(ctx, r.st, sentKey(in.ID), mailRetention, func(v *sentMark, ver int64) (bool, error) {
		if ver == 0 || v.Saved {
			return false, nil
		}
		v.Saved, v.Raw = true, nil
		return true, nil
	})
	if err != nil {
		r.log.Warn("send_email: record the saved copy", "action", in.ID, "err", err)
	}
	return nil
}

// takeSlot counts a message against the account's max_per_minute in the
// store (a record per account and calendar minute, changed with
// compare-and-set, so every gateway sharing the store counts together).
// A full minute is a retryable error due at the next minute.
func (r *Runner) takeSlot(ctx context.Context, a *SMTPAccount) error {
	if a.MaxPerMinute == 0 || r.st == nil {
		return nil
	}
	now := r.now()
	minute := now.Truncate(time.Minute)
	key := "smtp/" + a.Name + "/minute/" + strconv.FormatInt(minute.Unix(), 10)
	full := false
	_, _, err := store.UpdateJSON(ctx, r.st, key, 2*time.Minute, func(n *int, _ int64) (bool, error) {
		if full = *n >= a.MaxPerMinute; full {
			return false, nil
		}
		*n++
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("smtp %s: count max_per_minute: %w", a.Name, err)
	}
	if full {
		return &engine.ActionError{
			Err:        fmt.Errorf("smtp %s: max_per_minute %d reached, waiting for the next minute", a.Name, a.MaxPerMinute),
			RetryAfter: minute.Add(time.Minute).Sub(now) + time.Second,
		}
	}
	return nil
}

// plainSentEvent is the email.sent event of an untracked message.
func plainSentEvent(itemID string, m *sentMark, now time.Time) *normalize.Event {
	mid := strings.Trim(m.MessageID, "<>")
	s := normalize.Subject{ItemID: itemID}
	if len(m.To) > 0 {
		s.Email = normalize.NormalizeEmail(m.To[0])
	}
	return &normalize.Event{
		ID:         normalize.MakeID("send_email", mid, "sent"),
		Type:       normalize.EmailSent,
		Connector:  "send_email",
		OccurredAt: m.At,
		ReceivedAt: now,
		Subject:    s,
		Attrs: map[string]string{
			"message_id": m.MessageID,
			"to":         strings.Join(m.To, ", "),
			"subject":    m.Subject,
		},
	}
}

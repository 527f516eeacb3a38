// Package compose writes the RFC 5322 message of a tracked-message
// request: addresses and headers checked, links rewritten to the click URLs
// it is given, an open pixel in the HTML, a text part derived from the HTML
// when none is given. It is pure (no store, no clock: the caller gives the
// time and the URLs), so it is tested on its output alone (read back by
// go-message and by Python's email package).
package compose

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"

	"github.com/stagegate/stagegate/normalize"
)

// ErrBadRequest wraps every problem of a message request; its message is
// safe to show the caller.
var ErrBadRequest = errors.New("bad message request")

// Limits on a message request.
const (
	maxHeaders     = 50
	maxHeaderValue = 998
	maxRecipients  = 100
)

// reservedHeaders are written by the builder and cannot be given in headers.
var reservedHeaders = map[string]bool{
	"From": true, "To": true, "Cc": true, "Bcc": true, "Subject": true, "Date": true,
	"Message-Id": true, "Mime-Version": true, "Content-Type": true,
	"Content-Transfer-Encoding": true, "Content-Disposition": true,
}

// Request is the body of POST /api/v1/messages.
type Request struct {
	ItemID  string            `json:"item_id"`
	From    string            `json:"from"`
	To      AddressList       `json:"to"`
	Cc      AddressList       `json:"cc,omitempty"`
	ReplyTo string            `json:"reply_to,omitempty"`
	Subject string            `json:"subject"`
	HTML    string            `json:"html,omitempty"`
	Text    string            `json:"text,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// Honeypot adds a link hidden from humans at the top of the HTML: a
	// click on it is machine-made, and so are later hits of that client.
	Honeypot bool `json:"honeypot,omitempty"`
	// TrackText rewrites the links of the text part too. Default true.
	TrackText *bool `json:"track_text,omitempty"`
}

// Message is a composed message: its bytes and what the tracker stores.
type Message struct {
	Raw       []byte
	MessageID string   // sg.<id>@<domain>, without angle brackets
	From      string   // the From address
	To        []string // the To addresses
	Links     []Link   // the tracked links; link i of a click URL is Links[i-1]
}

// Link is one tracked link of a message, as the tracker stores it.
type Link struct {
	URL      string `json:"url"` // "" for the honeypot link
	Honeypot bool   `json:"honeypot,omitempty"`
}

// honeypotDest is the destination of a honeypot link: none.
const honeypotDest = ""

// Input is everything Build needs besides the request.
type Input struct {
	ID       string // the tracking id, the local part of the Message-ID after "sg."
	Now      time.Time
	Domain   string // Message-ID domain; "" = the From domain
	MaxLinks int
	Click    func(idx int) string // the click URL of link idx (from 1)
	Pixel    string               // the open pixel URL
}

// Build validates req and writes the RFC 5322 message: multipart/
// alternative (text, then HTML) with quoted-printable UTF-8 parts, links
// rewritten to click URLs and an open pixel in the HTML. A text-only
// request gives a single text/plain part. Errors wrap ErrBadRequest.
func Build(req *Request, in Input) (*Message, error) {
	from, to, cc, err := req.addresses()
	if err != nil {
		return nil, err
	}
	if req.ItemID == "" || !normalize.ValidSourceID(req.ItemID) {
		return nil, fmt.Errorf("%w: item_id: required, 1 to 200 letters, digits or ._:@+/=-", ErrBadRequest)
	}
	if strings.TrimSpace(req.HTML) == "" && strings.TrimSpace(req.Text) == "" {
		return nil, fmt.Errorf("%w: html or text is required", ErrBadRequest)
	}
	if strings.ContainsAny(req.Subject, "\r\n") {
		return nil, fmt.Errorf("%w: subject: must be one line", ErrBadRequest)
	}
	domain := in.Domain
	if domain == "" {
		domain = strings.ToLower(from.Address[strings.LastIndexByte(from.Address, '@')+1:])
	}
	b := &Message{MessageID: "sg." + in.ID + "@" + domain}

	l := &linker{click: in.Click, max: in.MaxLinks, byURL: map[string]int{}, skip: map[string]bool{}}
	htmlBody, textBody := req.HTML, req.Text
	if strings.TrimSpace(htmlBody) != "" {
		if textBody == "" {
			textBody = htmlToText(htmlBody)
		}
		if htmlBody, err = rewriteHTML(htmlBody, l, in.Pixel, req.Honeypot); err != nil {
			return nil, fmt.Errorf("%w: html: %w", ErrBadRequest, err)
		}
	} else {
		htmlBody = ""
	}
	if req.TrackText == nil || *req.TrackText {
		if textBody, err = rewriteText(textBody, l); err != nil {
			return nil, fmt.Errorf("%w: text: %w", ErrBadRequest, err)
		}
	}

	var replyTo []*gomail.Address
	if req.ReplyTo != "" {
		if replyTo, err = gomail.ParseAddressList(req.ReplyTo); err != nil || len(replyTo) == 0 {
			return nil, fmt.Errorf("%w: reply_to: not an address list", ErrBadRequest)
		}
	}
	// go-message writes the newest field first: set them bottom-up so the
	// message reads Date, From, To, Cc, Reply-To, Subject, Message-Id, the
	// extra headers, MIME-Version, Content-Type.
	var h gomail.Header
	if htmlBody == "" {
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	} else {
		h.SetContentType("multipart/alternative", map[string]string{"boundary": newBoundary()})
	}
	h.Set("MIME-Version", "1.0")
	if err := setCustomHeaders(&h, req.Headers); err != nil {
		return nil, err
	}
	h.SetMessageID(b.MessageID)
	h.SetSubject(req.Subject)
	h.SetAddressList("Reply-To", replyTo)
	h.SetAddressList("Cc", cc)
	h.SetAddressList("To", to)
	h.SetAddressList("From", []*gomail.Address{from})
	h.SetDate(in.Now)
	var out bytes.Buffer
	if err := writeBody(&out, h.Header, textBody, htmlBody); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	b.Raw, b.From, b.To, b.Links = out.Bytes(), from.Address, addrs(to), l.links
	return b, nil
}

// writeBody writes the header h and the body: the text alone, or the text
// and HTML parts of a multipart/alternative h.
func writeBody(out *bytes.Buffer, h message.Header, text, htmlBody string) error {
	w, err := message.CreateWriter(out, h)
	if err != nil {
		return err
	}
	if htmlBody == "" {
		if _, err := w.Write([]byte(text)); err != nil {
			return err
		}
		return w.Close()
	}
	for _, p := range []struct{ ct, body string }{{"text/plain", text}, {"text/html", htmlBody}} {
		var ph message.Header
		ph.Set("Content-Transfer-Encoding", "quoted-printable")
		ph.SetContentType(p.ct, map[string]string{"charset": "utf-8"})
		pw, err := w.CreatePart(ph)
		if err != nil {
			return err
		}
		if _, err := pw.Write([]byte(p.body)); err != nil {
			return err
		}
		if err := pw.Close(); err != nil {
			return err
		}
	}
	return w.Close()
}

// newBoundary returns a random multipart boundary.
func newBoundary() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return "sg-" + hex.EncodeToString(b[:])
}

// setCustomHeaders adds the request's extra headers in name order; values
// that are not ASCII are RFC 2047-encoded.
func setCustomHeaders(h *gomail.Header, hs map[string]string) error {
	if len(hs) > maxHeaders {
		return fmt.Errorf("%w: headers: at most %d", ErrBadRequest, maxHeaders)
	}
	names := slices.Sorted(maps.Keys(hs))
	slices.Reverse(names) // set bottom-up: they read in name order
	for _, k := range names {
		v := hs[k]
		switch {
		case k == "" || strings.IndexFunc(k, func(r rune) bool { return r < '!' || r > '~' || r == ':' }) >= 0:
			return fmt.Errorf("%w: headers: %q is not a header name", ErrBadRequest, k)
		case reservedHeaders[canonicalKey(k)]:
			return fmt.Errorf("%w: headers: %s is set by the builder", ErrBadRequest, canonicalKey(k))
		case strings.ContainsAny(v, "\r\n") || len(v) > maxHeaderValue:
			return fmt.Errorf("%w: headers: %s: one line of at most %d bytes", ErrBadRequest, k, maxHeaderValue)
		}
		h.SetText(k, v)
	}
	return nil
}

func canonicalKey(k string) string { return textproto.CanonicalMIMEHeaderKey(k) }

// addresses parses from, to and cc.
func (req *Request) addresses() (*gomail.Address, []*gomail.Address, []*gomail.Address, error) {
	from, err := gomail.ParseAddress(req.From)
	if err != nil || strings.LastIndexByte(from.Address, '@') < 0 {
		return nil, nil, nil, fmt.Errorf("%w: from: one address is required", ErrBadRequest)
	}
	to, err := req.To.parse("to")
	if err == nil && len(to) == 0 {
		err = fmt.Errorf("%w: to: at least one address is required", ErrBadRequest)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	cc, err := req.Cc.parse("cc")
	if err != nil {
		return nil, nil, nil, err
	}
	if len(to)+len(cc) > maxRecipients {
		return nil, nil, nil, fmt.Errorf("%w: at most %d recipients", ErrBadRequest, maxRecipients)
	}
	return from, to, cc, nil
}

func addrs(l []*mail.Address) []string {
	out := make([]string, len(l))
	for i, a := range l {
		out[i] = a.Address
	}
	return out
}

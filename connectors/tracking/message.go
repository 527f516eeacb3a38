package tracking

import (
	"time"

	"github.com/stagegate/stagegate/connectors/tracking/compose"
)

// MessageRequest is the body of POST /api/v1/messages; see compose.Request.
type MessageRequest = compose.Request

// AddressList is a list of RFC 5322 addresses given in JSON either as one
// string or as an array of strings; see compose.AddressList.
type AddressList = compose.AddressList

// ErrBadRequest wraps every problem of a message request; its message is
// safe to show the caller.
var ErrBadRequest = compose.ErrBadRequest

// built is a composed message with the record the tracker stores of it.
type built struct {
	raw       []byte
	messageID string // without angle brackets
	msg       msgRecord
}

// buildInput is everything build needs besides the request.
type buildInput struct {
	id       MsgID
	now      time.Time
	domain   string // Message-ID domain; "" = the From domain
	maxLinks int
	click    func(idx int) string
	pixel    string
}

// build composes the message of req (compose.Build) and its record.
// Errors wrap ErrBadRequest.
func build(req *MessageRequest, in buildInput) (*built, error) {
	m, err := compose.Build(req, compose.Input{
		ID: in.id.String(), Now: in.now, Domain: in.domain, MaxLinks: in.maxLinks, Click: in.click, Pixel: in.pixel,
	})
	if err != nil {
		return nil, err
	}
	return &built{raw: m.Raw, messageID: m.MessageID, msg: msgRecord{
		ID: in.id.String(), MessageID: m.MessageID, ItemID: req.ItemID, From: m.From,
		To: m.To, Subject: req.Subject, CreatedAt: in.now, Links: m.Links,
	}}, nil
}

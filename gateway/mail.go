package gateway

import (
	"context"
	"errors"
	"net/mail"
	"strings"
	"time"

	"github.com/stagegate/stagegate/actions"
	"github.com/stagegate/stagegate/connectors/tracking"
	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/normalize"
)

// trackingMail lets the send_email action build its messages with the
// tracking connector's builder, the one behind POST /api/v1/messages.
type trackingMail struct{ t *tracking.Tracker }

var _ actions.MailBuilder = trackingMail{}

// BuildMail implements actions.MailBuilder; the message id derives from
// the action run's key (tracking.Tracker.PrepareKeyed).
func (m trackingMail) BuildMail(ctx context.Context, req actions.MailRequest) (actions.BuiltMail, error) {
	mr := &tracking.MessageRequest{
		ItemID: req.ItemID, From: req.From.String(), To: addrList(req.To), Cc: addrList(req.Cc),
		ReplyTo: strings.Join(addrList(req.ReplyTo), ", "), Subject: req.Subject, HTML: req.HTML, Text: req.Text,
		Honeypot: req.Honeypot,
	}
	p, err := m.t.PrepareKeyed(ctx, mr, req.Key, req.Date)
	if errors.Is(err, tracking.ErrBadRequest) || errors.Is(err, tracking.ErrUnknownItem) {
		return actions.BuiltMail{}, engine.Permanent(err)
	}
	if err != nil {
		return actions.BuiltMail{}, err
	}
	return actions.BuiltMail{MessageID: p.MessageID, TrackingID: p.ID, Raw: []byte(p.Raw)}, nil
}

// MailSent implements actions.MailBuilder.
func (m trackingMail) MailSent(ctx context.Context, id string, at time.Time) (*normalize.Event, error) {
	return m.t.Sent(ctx, id, at)
}

func addrList(l []*mail.Address) []string {
	out := make([]string, len(l))
	for i, a := range l {
		out[i] = a.String()
	}
	return out
}

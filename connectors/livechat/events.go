package livechat

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/stagegate/stagegate/normalize"
)

// Conversation is the stored state of one conversation.
type Conversation struct {
	ID        string `json:"id"`
	VisitorID string `json:"visitor_id"`
	Channel   string `json:"channel"`
	Status    string `json:"status"` // waiting, open, closed
	Agent     string `json:"agent,omitempty"`
	// Identity the visitor gave (email lower-cased, phone in E.164).
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
	Page  string `json:"page,omitempty"` // where the widget was when the conversation started
	// FirstSeq and FirstAt are the visitor's first message: the one that
	// started the conversation, and the origin of the agent's reaction time.
	FirstSeq   int64     `json:"first_seq,omitempty"`
	FirstAt    time.Time `json:"first_at,omitzero"`
	Preview    string    `json:"preview,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
	// AcceptRecorded is set once chat.accepted is durable and the accepted
	// message stored; until then a reply by the agent accepts again.
	AcceptRecorded bool      `json:"accept_recorded,omitempty"`
	ClosedAt       time.Time `json:"closed_at,omitzero"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Summary returns what agents see of the conversation.
func (c Conversation) Summary() Summary {
	return Summary{ID: c.ID, Channel: c.Channel, Status: c.Status, Agent: c.Agent, VisitorID: c.VisitorID,
		Name: c.Name, Email: c.Email, Phone: c.Phone, Preview: c.Preview, FirstAt: c.FirstAt, UpdatedAt: c.UpdatedAt}
}

func (c Conversation) subject() normalize.Subject {
	return normalize.Subject{VisitorID: c.VisitorID, Email: c.Email, Phone: c.Phone, Name: c.Name}
}

// StartedEvent is the chat.started event of a conversation whose first
// visitor message is m; its id is "<connector>:<conversation>:started".
func StartedEvent(connector string, c Conversation, m Message) *normalize.Event {
	ev := chatEvent(connector, c, normalize.ChatStarted, m.At, "started")
	ev.Attrs["text"] = m.Text
	ev.Attrs["message_id"] = m.ID
	if c.Page != "" {
		ev.Attrs["page"] = c.Page
	}
	ev.Raw = rawOf(m)
	return ev
}

// MessageEvent is the chat.message event of the visitor message m; its id
// is "<connector>:<conversation>:msg:<client message id>", so a message
// re-sent after a reconnect is one event.
func MessageEvent(connector string, c Conversation, m Message) *normalize.Event {
	ev := chatEvent(connector, c, normalize.ChatMessage, m.At, "msg", m.ID)
	ev.Attrs["text"] = m.Text
	ev.Attrs["message_id"] = m.ID
	ev.Attrs["seq"] = strconv.FormatInt(m.Seq, 10)
	ev.Raw = rawOf(m)
	return ev
}

// AcceptedEvent is the chat.accepted event of a conversation an agent
// took; reaction_s is the seconds from the visitor's first message to the
// acceptance (0 when the clocks of two gateways disagree).
func AcceptedEvent(connector string, c Conversation) *normalize.Event {
	ev := chatEvent(connector, c, normalize.ChatAccepted, c.AcceptedAt, "accepted")
	ev.Attrs["agent"] = c.Agent
	ev.Attrs["reaction_s"] = ReactionSeconds(c.FirstAt, c.AcceptedAt)
	ev.Raw = rawOf(struct {
		ConversationID string    `json:"conversation_id"`
		Agent          string    `json:"agent"`
		FirstAt        time.Time `json:"first_at"`
		AcceptedAt     time.Time `json:"accepted_at"`
	}{c.ID, c.Agent, c.FirstAt, c.AcceptedAt})
	return ev
}

// ReactionSeconds formats accepted-first in seconds, to the millisecond.
func ReactionSeconds(first, accepted time.Time) string {
	s := 0.0
	if !first.IsZero() && accepted.After(first) {
		s = math.Round(accepted.Sub(first).Seconds()*1000) / 1000
	}
	return strconv.FormatFloat(s, 'f', -1, 64)
}

func chatEvent(connector string, c Conversation, t normalize.Type, at time.Time, parts ...string) *normalize.Event {
	return &normalize.Event{
		ID:         normalize.MakeID(connector, append([]string{c.ID}, parts...)...),
		Type:       t,
		Connector:  connector,
		OccurredAt: at,
		ReceivedAt: at,
		Subject:    c.subject(),
		Channel:    c.Channel,
		Attrs:      map[string]string{"channel": c.Channel, "conversation_id": c.ID},
	}
}

func rawOf(v any) []byte {
	b, _ := json.Marshal(v)
	return normalize.Excerpt(b)
}

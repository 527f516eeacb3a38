package livechat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Frame types a client sends. Visitors send hello, message, typing,
// identify and close; agents send hello, open, accept, message, typing and
// close.
const (
	TypeHello    = "hello"
	TypeMessage  = "message"
	TypeTyping   = "typing"
	TypeIdentify = "identify"
	TypeOpen     = "open"
	TypeAccept   = "accept"
	TypeClose    = "close"
)

// Frame types the server sends (besides message and typing).
const (
	TypeWelcome      = "welcome"
	TypeAck          = "ack"
	TypeError        = "error"
	TypeHistory      = "history"
	TypeConversation = "conversation"
	TypeItems        = "items" // the conversation's CRM items, after its history
)

// Error codes of error frames. Retryable ones say so in the frame.
const (
	CodeBadFrame       = "bad_frame"
	CodeNotHello       = "hello_required"
	CodeUnauthorized   = "unauthorized"
	CodeRateLimited    = "rate_limited"
	CodeUnavailable    = "unavailable"
	CodeInternal       = "internal"
	CodeBadField       = "bad_field"
	CodeUnknownChannel = "unknown_channel"
	CodeNotFound       = "not_found"
	CodeTaken          = "already_accepted"
	CodeClosed         = "conversation_closed"
	CodeNoConversation = "no_conversation"
)

// Message senders.
const (
	FromVisitor = "visitor"
	FromAgent   = "agent"
	FromSystem  = "system"
)

// Events of system messages.
const (
	EventAccepted = "accepted"
	EventClosed   = "closed"
)

// Conversation statuses.
const (
	StatusWaiting = "waiting"
	StatusOpen    = "open"
	StatusClosed  = "closed"
)

// Cursor says how far a client has read a conversation.
type Cursor struct {
	ConversationID string `json:"conversation_id"`
	LastSeq        int64  `json:"last_seq"`
}

// Frame is a decoded client frame. Which fields count depends on Type.
type Frame struct {
	Type string `json:"type"`
	// hello (visitor)
	VisitorToken string  `json:"visitor_token,omitempty"`
	Cursor       *Cursor `json:"cursor,omitempty"`
	Channel      string  `json:"channel,omitempty"`
	Page         string  `json:"page,omitempty"`
	// hello (visitor) and identify
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
	// hello (agent)
	Token   string   `json:"token,omitempty"`
	Cursors []Cursor `json:"cursors,omitempty"`
	// message: ID is the client-generated message id.
	ID   string `json:"id,omitempty"`
	Text string `json:"text,omitempty"`
	// open, accept, message, typing, close (agent)
	ConversationID string `json:"conversation_id,omitempty"`
	LastSeq        int64  `json:"last_seq,omitempty"`
}

// Bounds of frame fields that no config changes.
const (
	maxCursors    = 100
	maxFieldBytes = 512  // name, email, phone, token, channel
	maxPageBytes  = 2048 // page URL
)

var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// ErrBadFrame wraps every decoding error.
var ErrBadFrame = errors.New("bad frame")

var frameFields = map[string]bool{
	TypeHello: true, TypeMessage: true, TypeTyping: true, TypeIdentify: true,
	TypeOpen: true, TypeAccept: true, TypeClose: true,
}

// DecodeFrame parses one client frame: a JSON object with a known type,
// valid UTF-8 text of at most maxText bytes, and well-formed ids. Unknown
// keys are ignored so that newer clients keep working.
func DecodeFrame(data []byte, maxText int) (Frame, error) {
	var f Frame
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil {
		return Frame{}, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Frame{}, fmt.Errorf("%w: data after the JSON object", ErrBadFrame)
	}
	if !frameFields[f.Type] {
		return Frame{}, fmt.Errorf("%w: unknown type %q", ErrBadFrame, f.Type)
	}
	if err := f.check(maxText); err != nil {
		return Frame{}, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	return f, nil
}

func (f *Frame) check(maxText int) error {
	for name, v := range map[string]string{"visitor_token": f.VisitorToken, "channel": f.Channel,
		"name": f.Name, "email": f.Email, "phone": f.Phone, "token": f.Token} {
		if len(v) > maxFieldBytes || !utf8.ValidString(v) {
			return fmt.Errorf("%s: longer than %d bytes or not UTF-8", name, maxFieldBytes)
		}
	}
	if len(f.Page) > maxPageBytes || !utf8.ValidString(f.Page) {
		return fmt.Errorf("page: longer than %d bytes or not UTF-8", maxPageBytes)
	}
	if len(f.Cursors) > maxCursors {
		return fmt.Errorf("cursors: more than %d", maxCursors)
	}
	for _, c := range append(f.Cursors, f.cursorOrZero()) {
		if c.LastSeq < 0 || (c.ConversationID != "" && !idPattern.MatchString(c.ConversationID)) {
			return errors.New("cursor: bad conversation_id or negative last_seq")
		}
	}
	if f.ConversationID != "" && !idPattern.MatchString(f.ConversationID) {
		return errors.New("conversation_id: malformed")
	}
	if f.LastSeq < 0 {
		return errors.New("last_seq: negative")
	}
	if f.Type == TypeMessage {
		if !clientIDPattern.MatchString(f.ID) {
			return errors.New("id: required, 1 to 64 letters, digits, _ . : or -")
		}
		if strings.TrimSpace(f.Text) == "" {
			return errors.New("text: required")
		}
		if len(f.Text) > maxText {
			return fmt.Errorf("text: longer than %d bytes", maxText)
		}
		if !utf8.ValidString(f.Text) {
			return errors.New("text: not UTF-8")
		}
	}
	return nil
}

func (f *Frame) cursorOrZero() Cursor {
	if f.Cursor == nil {
		return Cursor{}
	}
	return *f.Cursor
}

// Message is one message of a conversation as stored and as sent to
// clients in message, welcome and history frames.
type Message struct {
	ConversationID string    `json:"conversation_id"`
	Seq            int64     `json:"seq"`
	ID             string    `json:"id"` // the sender's message id; system: the event
	From           string    `json:"from"`
	Agent          string    `json:"agent,omitempty"`
	Text           string    `json:"text,omitempty"`
	Event          string    `json:"event,omitempty"` // system messages: accepted, closed
	By             string    `json:"by,omitempty"`    // closed: visitor, system or the agent's name
	At             time.Time `json:"at"`
}

// Summary describes a conversation to agents (queue entries).
type Summary struct {
	ID        string    `json:"id"`
	Channel   string    `json:"channel"`
	Status    string    `json:"status"`
	Agent     string    `json:"agent,omitempty"`
	VisitorID string    `json:"visitor_id"`
	Name      string    `json:"name,omitempty"`
	Email     string    `json:"email,omitempty"`
	Phone     string    `json:"phone,omitempty"`
	Preview   string    `json:"preview,omitempty"` // the first message, cut
	FirstAt   time.Time `json:"first_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Out is a frame the server sends. Which fields are set depends on Type.
type Out struct {
	Type string `json:"type"`
	// welcome (visitor)
	VisitorID    string   `json:"visitor_id,omitempty"`
	VisitorToken string   `json:"visitor_token,omitempty"`
	Ask          []string `json:"ask,omitempty"`
	Title        string   `json:"title,omitempty"`
	// welcome (agent)
	Agent string    `json:"agent,omitempty"`
	Queue []Summary `json:"queue,omitempty"`
	// welcome, history, conversation
	Conversation *Summary  `json:"conversation,omitempty"`
	Messages     []Message `json:"messages,omitempty"`
	// ack
	ID             string `json:"id,omitempty"`
	ConversationID string `json:"conversation_id,omitempty"`
	Seq            int64  `json:"seq,omitempty"`
	Duplicate      bool   `json:"duplicate,omitempty"`
	// typing
	From string `json:"from,omitempty"`
	// error
	Code      string `json:"code,omitempty"`
	Message   string `json:"message,omitempty"`
	Retryable bool   `json:"retryable,omitempty"`
	Ref       string `json:"ref,omitempty"`
	// items (agent): the CRM items of the conversation's contact
	Items []ItemRef `json:"items,omitempty"`
}

// ItemRef is one CRM item as the agent console shows it beside a
// conversation, with a link to the operator's board.
type ItemRef struct {
	ID       string `json:"id"`
	Pipeline string `json:"pipeline"`
	Stage    string `json:"stage"`
	Closed   bool   `json:"closed,omitempty"`
}

// messageFrame is the message frame of m: the message's fields with type.
type messageFrame struct {
	Type string `json:"type"`
	Message
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // only plain structs are encoded
		panic(fmt.Sprintf("livechat: encode %T: %v", v, err))
	}
	return b
}

func encodeMessage(m Message) []byte { return encode(messageFrame{Type: TypeMessage, Message: m}) }

func errorFrame(code, msg, ref string, retryable bool) []byte {
	return encode(Out{Type: TypeError, Code: code, Message: msg, Ref: ref, Retryable: retryable})
}

package livechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stagegate/stagegate/store"
)

// What the connector keeps in store.Records, all under "livechat/<name>/":
//
//	conv/<id>          Conversation (versioned, CAS), expires retention after its last change
//	msgs/<id>          the conversation's messages: an append-only list whose
//	                   element ids are "v:<client id>", "a:<agent>:<client id>" or
//	                   "s:<event>", so a re-sent message is stored once
//	visitor/<id>       visitorRecord: identity and current conversation
//	queue/<yyyymmdd>   one list a day of conversation status changes
//	                   (element id "<conversation>:<status>"); the agents'
//	                   queue is folded from the lists of the queue window

// readPage is how many list elements one ReadList call asks for.
const readPage = 500

// visitorRecord is what the connector remembers of a visitor.
type visitorRecord struct {
	Conversation string    `json:"conversation,omitempty"`
	Name         string    `json:"name,omitempty"`
	Email        string    `json:"email,omitempty"`
	Phone        string    `json:"phone,omitempty"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// state reads and writes the connector's records.
type state struct {
	rec       store.Records
	prefix    string // "livechat/<name>/"
	retention time.Duration
}

func (s *state) convKey(id string) string    { return s.prefix + "conv/" + id }
func (s *state) msgsKey(id string) string    { return s.prefix + "msgs/" + id }
func (s *state) visitorKey(id string) string { return s.prefix + "visitor/" + id }
func (s *state) queueKey(day time.Time) string {
	return s.prefix + "queue/" + day.UTC().Format("20060102")
}

// getConversation returns the conversation with id, or ok false.
func (s *state) getConversation(ctx context.Context, id string) (Conversation, bool, error) {
	var c Conversation
	ver, err := store.GetJSON(ctx, s.rec, s.convKey(id), &c)
	return c, ver > 0, err
}

// createConversation stores a new conversation (its id must be fresh).
func (s *state) createConversation(ctx context.Context, c Conversation) error {
	_, err := store.PutJSON(ctx, s.rec, s.convKey(c.ID), c, 0, s.retention)
	return err
}

// errGone is returned by updateConversation when the conversation expired.
var errGone = errors.New("conversation not found")

// updateConversation applies change to an existing conversation.
func (s *state) updateConversation(ctx context.Context, id string, change func(c *Conversation) (bool, error)) (Conversation, error) {
	c, _, err := store.UpdateJSON(ctx, s.rec, s.convKey(id), s.retention, func(c *Conversation, version int64) (bool, error) {
		if version == 0 {
			return false, errGone
		}
		return change(c)
	})
	return c, err
}

// appendMessage stores m under elemID and returns it with its sequence
// number; for an element stored before it returns the stored message and
// duplicate true.
func (s *state) appendMessage(ctx context.Context, elemID string, m Message) (Message, bool, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return m, false, err
	}
	seq, dup, err := s.rec.AppendList(ctx, s.msgsKey(m.ConversationID), elemID, b, s.retention)
	if err != nil {
		return m, false, err
	}
	m.Seq = seq
	if !dup {
		return m, false, nil
	}
	els, err := s.rec.ReadList(ctx, s.msgsKey(m.ConversationID), seq-1, 1)
	if err != nil {
		return m, true, err
	}
	if len(els) == 1 && els[0].Seq == seq {
		if stored, err := decodeMessage(els[0]); err == nil {
			return stored, true, nil
		}
	}
	return m, true, nil
}

// readMessages returns the messages of a conversation after seq, at most max.
func (s *state) readMessages(ctx context.Context, conv string, after int64, max int) ([]Message, error) {
	var out []Message
	for len(out) < max {
		els, err := s.rec.ReadList(ctx, s.msgsKey(conv), after, min(readPage, max-len(out)))
		if err != nil {
			return out, err
		}
		for _, e := range els {
			m, err := decodeMessage(e)
			if err != nil {
				return out, fmt.Errorf("conversation %s message %d: %w", conv, e.Seq, err)
			}
			out = append(out, m)
			after = e.Seq
		}
		if len(els) < readPage {
			break
		}
	}
	return out, nil
}

func decodeMessage(e store.ListElem) (Message, error) {
	var m Message
	err := json.Unmarshal(e.Value, &m)
	m.Seq = e.Seq
	return m, err
}

// getVisitor returns the visitor's record (zero when new).
func (s *state) getVisitor(ctx context.Context, id string) (visitorRecord, error) {
	var v visitorRecord
	_, err := store.GetJSON(ctx, s.rec, s.visitorKey(id), &v)
	return v, err
}

// updateVisitor applies change to the visitor's record, creating it.
func (s *state) updateVisitor(ctx context.Context, id string, change func(v *visitorRecord) bool) (visitorRecord, error) {
	v, _, err := store.UpdateJSON(ctx, s.rec, s.visitorKey(id), s.retention, func(v *visitorRecord, _ int64) (bool, error) {
		return change(v), nil
	})
	return v, err
}

// queueChange records a conversation's new status in today's queue list.
func (s *state) queueChange(ctx context.Context, c Conversation, now time.Time) error {
	b, err := json.Marshal(c.Summary())
	if err != nil {
		return err
	}
	_, _, err = s.rec.AppendList(ctx, s.queueKey(now), c.ID+":"+c.Status, b, s.retention)
	return err
}

// queue folds the queue lists of the window ending at now into the
// conversations that are not closed, oldest first.
func (s *state) queue(ctx context.Context, now time.Time, window time.Duration) ([]Summary, error) {
	latest := map[string]Summary{}
	var order []string
	start := now.Add(-window).UTC().Truncate(24 * time.Hour)
	for day := start; !day.After(now); day = day.Add(24 * time.Hour) {
		for after := int64(0); ; {
			els, err := s.rec.ReadList(ctx, s.queueKey(day), after, readPage)
			if err != nil {
				return nil, err
			}
			for _, e := range els {
				after = e.Seq
				var sum Summary
				if json.Unmarshal(e.Value, &sum) != nil || sum.UpdatedAt.Before(now.Add(-window)) {
					continue
				}
				if _, seen := latest[sum.ID]; !seen {
					order = append(order, sum.ID)
				}
				if old, ok := latest[sum.ID]; !ok || statusRank(sum.Status) >= statusRank(old.Status) {
					latest[sum.ID] = sum
				}
			}
			if len(els) < readPage {
				break
			}
		}
	}
	var out []Summary
	for _, id := range order {
		if sum := latest[id]; sum.Status != StatusClosed {
			out = append(out, sum)
		}
	}
	return out, nil
}

// statusRank orders statuses: a conversation never goes back, so a change
// recorded late by another gateway does not undo a later one.
func statusRank(s string) int {
	switch s {
	case StatusWaiting:
		return 0
	case StatusOpen:
		return 1
	default:
		return 2
	}
}

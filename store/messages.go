package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MessageRef ties an email Message-ID we sent (a tracked message, or a mail
// found in a sent folder) to the item it was sent for, so that a reply
// naming it in In-Reply-To or References reaches that item first.
type MessageRef struct {
	ItemID    string    `json:"item_id"`
	Source    string    `json:"source"` // who recorded it: "tracking", "imap/<connector>"
	CreatedAt time.Time `json:"created_at"`
}

// messageKeyPrefix namespaces message references among Records.
const messageKeyPrefix = "messages/"

// MessageKey is the Records key of a Message-ID (angle brackets and case of
// the domain part do not matter).
func MessageKey(messageID string) string {
	id := strings.TrimSpace(messageID)
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	if at := strings.LastIndexByte(id, '@'); at >= 0 {
		id = id[:at] + strings.ToLower(id[at:])
	}
	return messageKeyPrefix + id
}

// PutMessageRef records ref for messageID unless one is recorded already
// (the first item a message was sent for keeps it).
func PutMessageRef(ctx context.Context, r Records, messageID string, ref MessageRef, ttl time.Duration) error {
	b, err := json.Marshal(ref)
	if err != nil {
		return fmt.Errorf("message ref %s: %w", messageID, err)
	}
	if _, err := r.PutRecord(ctx, MessageKey(messageID), b, 0, ttl); err != nil && !errors.Is(err, ErrConflict) {
		return fmt.Errorf("message ref %s: %w", messageID, err)
	}
	return nil
}

// GetMessageRef returns the reference recorded for messageID, or ErrNotFound.
func GetMessageRef(ctx context.Context, r Records, messageID string) (MessageRef, error) {
	rec, err := r.GetRecord(ctx, MessageKey(messageID))
	if err != nil {
		return MessageRef{}, err
	}
	var ref MessageRef
	if err := json.Unmarshal(rec.Value, &ref); err != nil {
		return MessageRef{}, fmt.Errorf("message ref %s: %w", messageID, err)
	}
	return ref, nil
}

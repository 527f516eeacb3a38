package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/store"
)

// Timestamps are stored as RFC 3339 with nanoseconds, like encoding/json.
func formatTime(t time.Time) string { return t.Format(time.RFC3339Nano) }

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// score orders items by creation time; microseconds since the epoch stay
// exact in a sorted set's float64 score. Ties sort by item id.
func score(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// itemFields is the hash of a new item, as field/value pairs.
func itemFields(it store.Item) ([]any, error) {
	f := []any{
		"id", it.ID, "pipeline", it.Pipeline, "stage", it.Stage,
		"contact_id", it.ContactID, "responsible", it.Responsible,
		"closed", flag(it.Closed), "version", strconv.FormatInt(it.Version, 10),
		"created_at", formatTime(it.CreatedAt), "updated_at", formatTime(it.UpdatedAt),
		"score", score(it.CreatedAt),
	}
	if len(it.Fields) > 0 {
		b, err := json.Marshal(it.Fields)
		if err != nil {
			return nil, err
		}
		f = append(f, "fields", string(b))
	}
	return f, nil
}

// decodeItem turns an item hash, as a map or as a flat HGETALL reply from a
// script, into an Item.
func decodeItem(h map[string]string) (store.Item, error) {
	it := store.Item{
		ID: h["id"], Pipeline: h["pipeline"], Stage: h["stage"],
		ContactID: h["contact_id"], Responsible: h["responsible"],
		Closed: h["closed"] == "1",
	}
	var err error
	if it.Version, err = strconv.ParseInt(h["version"], 10, 64); err != nil {
		return it, fmt.Errorf("item %s: version: %w", it.ID, err)
	}
	if it.CreatedAt, err = parseTime(h["created_at"]); err != nil {
		return it, fmt.Errorf("item %s: %w", it.ID, err)
	}
	if it.UpdatedAt, err = parseTime(h["updated_at"]); err != nil {
		return it, fmt.Errorf("item %s: %w", it.ID, err)
	}
	if f := h["fields"]; f != "" {
		if err := json.Unmarshal([]byte(f), &it.Fields); err != nil {
			return it, fmt.Errorf("item %s: fields: %w", it.ID, err)
		}
	}
	return it, nil
}

// flatMap turns a flat [k1 v1 k2 v2 …] script reply into a map.
func flatMap(v any) (map[string]string, error) {
	list, ok := v.([]any)
	if !ok || len(list)%2 != 0 {
		return nil, fmt.Errorf("unexpected script reply %T", v)
	}
	m := make(map[string]string, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		m[k] = val
	}
	return m, nil
}

// decodeRecord turns an event record hash into an EventRecord.
func decodeRecord(h map[string]string) (store.EventRecord, error) {
	rec := store.EventRecord{
		Seq:       h["seq"],
		Applied:   h["applied"] == "1",
		Unmatched: h["unmatched"] == "1",
		Failed:    h["failed"] == "1",
		Note:      h["note"],
	}
	if err := json.Unmarshal([]byte(h["e"]), &rec.Event); err != nil {
		return rec, fmt.Errorf("event record: %w", err)
	}
	var err error
	if rec.AppliedAt, err = parseTime(h["applied_at"]); err != nil {
		return rec, fmt.Errorf("event record: %w", err)
	}
	return rec, nil
}

// entryDefaults fills what a timeline entry left empty: its item, its time,
// and, when it has no id, one derived from fallback.
func entryDefaults(e store.TimelineEntry, itemID string, at time.Time, fallback string) store.TimelineEntry {
	if e.ItemID == "" {
		e.ItemID = itemID
	}
	if e.At.IsZero() {
		e.At = at
	}
	if e.ID == "" {
		e.ID = fallback
	}
	return e
}

// unavailablePrefixes are Redis error replies that mean "not now" rather
// than "never": the server is loading, read-only, out of its disk (MISCONF:
// it refuses writes it could not persist), busy with a script, or failing
// over. They become store.ErrUnavailable so that callers retry.
var unavailablePrefixes = []string{
	"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
	"NOREPLICAS", "MISCONF", "BUSY", "OOM",
}

// wrap gives err the driver's message form, "redis: <op> <id>: <err>", and
// marks the errors that mean Redis could not be reached or did not answer
// (network errors, deadlines, a closed client, a server that is not ready)
// with store.ErrUnavailable. redis.Nil becomes store.ErrNotFound.
func wrap(op, id string, err error) error {
	if err == nil {
		return nil
	}
	if id != "" {
		op += " " + id
	}
	switch {
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("redis: %s: %w", op, store.ErrNotFound)
	case unavailable(err):
		return fmt.Errorf("redis: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("redis: %s: %w", op, err)
}

// unavailable reports whether err means that Redis could not be reached, did
// not answer in time or is temporarily unable to serve.
func unavailable(err error) bool {
	if errors.Is(err, store.ErrUnavailable) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, redis.ErrPoolExhausted) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	for _, p := range unavailablePrefixes {
		if redis.HasErrorPrefix(err, p+" ") {
			return true
		}
	}
	return false
}

// isNoGroup reports whether err says the log's consumer group (or the
// stream itself) is missing, as after Redis restarted without its data.
func isNoGroup(err error) bool {
	return redis.HasErrorPrefix(err, "NOGROUP")
}

package bolt

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// The engine is handed the appended event from memory: the same event the
// file holds, not shared with the caller's copy, and the cache is empty
// once the log is read.
func TestReadLogTakesRecentEvents(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, filepath.Join(t.TempDir(), "sg.db"), Options{})
	ev := &normalize.Event{
		ID: "api:recent-1", Type: normalize.EmailIncoming, Connector: "api",
		OccurredAt: time.Now(), ReceivedAt: time.Now(),
		Subject: normalize.Subject{Email: "a@example.com"},
		Attrs:   map[string]string{"k": "v"}, Raw: []byte("raw"),
	}
	if _, err := s.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if n := s.recent.len(); n != 1 {
		t.Fatalf("recent holds %d events after one append, want 1", n)
	}
	ev.Attrs["k"] = "changed by the caller"
	ev.Raw[0] = 'X'
	entries, err := s.ReadLog(ctx, "c", 10, 0)
	if err != nil || len(entries) != 1 {
		t.Fatalf("ReadLog = %d entries, %v", len(entries), err)
	}
	if n := s.recent.len(); n != 0 {
		t.Fatalf("recent holds %d events after ReadLog, want 0", n)
	}
	rec, _, err := s.GetEvent(ctx, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, want := entries[0].Event, rec.Event
	if !got.OccurredAt.Equal(want.OccurredAt) || !got.ReceivedAt.Equal(want.ReceivedAt) {
		t.Fatalf("ReadLog times %v %v, stored %v %v", got.OccurredAt, got.ReceivedAt, want.OccurredAt, want.ReceivedAt)
	}
	want.OccurredAt, want.ReceivedAt = got.OccurredAt, got.ReceivedAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadLog event\n%+v\ndiffers from the stored record\n%+v", got, want)
	}
	if got.Attrs["k"] != "v" || string(got.Raw) != "raw" {
		t.Fatalf("ReadLog event shares the caller's attrs or raw: %v %q", got.Attrs, got.Raw)
	}
}

// A cached event whose sequence the log gave to another event (a rerun
// transaction, or a log write that does not fill the cache) is not used.
func TestReadLogIgnoresStaleRecentEvent(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, filepath.Join(t.TempDir(), "sg.db"), Options{})
	ev := &normalize.Event{ID: "api:parked", Type: normalize.EmailIncoming, Connector: "api",
		Subject: normalize.Subject{Email: "a@example.com"}}
	if _, err := s.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	entries, err := s.ReadLog(ctx, "c", 10, 0)
	if err != nil || len(entries) != 1 {
		t.Fatalf("ReadLog = %d entries, %v", len(entries), err)
	}
	if err := s.Ack(ctx, entries[0], store.Outcome{Failed: true, Note: "boom"}); err != nil {
		t.Fatal(err)
	}
	// RetryEvent takes the next sequence without filling the cache; a
	// stale entry sits there under another id.
	seq, _ := parseSeq(entries[0].Seq)
	s.recent.put(seq+1, &normalize.Event{ID: "api:ghost"}, 10)
	if err := s.RetryEvent(ctx, ev.ID); err != nil {
		t.Fatal(err)
	}
	entries, err = s.ReadLog(ctx, "c", 10, 0)
	if err != nil || len(entries) != 1 {
		t.Fatalf("ReadLog after retry = %d entries, %v", len(entries), err)
	}
	if got := entries[0].Event.ID; got != ev.ID {
		t.Fatalf("ReadLog after retry handed out %q, want %q", got, ev.ID)
	}
	if n := s.recent.len(); n != 0 {
		t.Fatalf("recent holds %d events, want 0", n)
	}
}

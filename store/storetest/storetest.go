// Package storetest is the conformance suite that every store driver must
// pass. A driver's test calls Run with a function that opens a fresh, empty
// store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s := openTemp(t)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Behaviour that only a driver can check (reopening, dedup expiry, sweeping,
// reclaiming the entries of dead consumers) is left to the driver's own
// tests. The expiry of records and lists is checked with real time unless
// the driver passes Options.Wait to RunWith (see Options).
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// Opener returns a fresh, empty store; the caller registers its cleanup.
type Opener func(t *testing.T) store.Store

// base is the fixed time every test builds its timestamps from.
var base = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

// Options adapt the suite to a driver.
type Options struct {
	// Wait lets d pass for s as far as expiry is concerned. A driver with
	// an injectable clock moves that clock forward; nil sleeps.
	Wait func(s store.Store, d time.Duration)
	// NoExpiry skips the checks that need the backend's clock to run (a
	// stand-in such as miniredis never expires keys by itself).
	NoExpiry bool
}

// Run runs the whole suite; every subtest opens its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	RunWith(t, open, Options{})
}

// RunWith is Run with options.
func RunWith(t *testing.T, open func(t *testing.T) store.Store, opts Options) {
	t.Helper()
	if opts.Wait == nil {
		opts.Wait = func(_ store.Store, d time.Duration) { time.Sleep(d) }
	}
	groups := []struct {
		name  string
		tests func(t *testing.T, open Opener)
	}{
		{"Append", testAppend},
		{"Log", testLog},
		{"Events", testEvents},
		{"Contacts", testContacts},
		{"Items", testItems},
		{"Move", testMove},
		{"Batch", testBatch},
		{"EventOutbox", testEventOutbox},
		{"Timeline", testTimeline},
		{"Decisions", testDecisions},
		{"Ping", testPing},
		{"Records", testRecords},
		{"Lists", testLists},
		{"AppendAndPut", testAppendAndPut},
		{"EventsPut", testEventsPut},
		{"AppendLists", testAppendLists},
		{"Expiry", func(t *testing.T, open Opener) { testExpiry(t, open, opts) }},
		{"Broadcast", testBroadcast},
		{"Outbox", testOutbox},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) { g.tests(t, open) })
	}
}

func testPing(t *testing.T, open Opener) {
	s := open(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping on a healthy store: %v", err)
	}
}

// event returns a fully populated event with the given id, so that every
// field can be checked after a round trip.
func event(id string, n int) *normalize.Event {
	return &normalize.Event{
		ID:         id,
		Type:       normalize.EmailIncoming,
		Connector:  "imap-sales",
		OccurredAt: base.Add(time.Duration(n) * time.Minute),
		ReceivedAt: base.Add(time.Duration(n)*time.Minute + 1500*time.Millisecond),
		Subject: normalize.Subject{
			Email: fmt.Sprintf("ann%d@example.com", n), Phone: "+4930123456",
			VisitorID: "v-1", ItemID: "item-7", Name: "Ann Example",
		},
		Channel:  "email",
		Attrs:    map[string]string{"subject": "Re: offer", "n": fmt.Sprint(n), "empty": ""},
		Warnings: []string{"no date header"},
		Raw:      []byte("From: ann@example.com\r\n\r\nhello \x00\xff"),
	}
}

// checkEvent fails t unless got is want after a round trip.
func checkEvent(t *testing.T, got, want normalize.Event) {
	t.Helper()
	switch {
	case got.ID != want.ID, got.Type != want.Type, got.Connector != want.Connector,
		got.Channel != want.Channel:
		t.Errorf("event %s: scalar fields = %+v, want %+v", want.ID, got, want)
	case !got.OccurredAt.Equal(want.OccurredAt), !got.ReceivedAt.Equal(want.ReceivedAt):
		t.Errorf("event %s: times = %v/%v, want %v/%v", want.ID,
			got.OccurredAt, got.ReceivedAt, want.OccurredAt, want.ReceivedAt)
	case got.Subject != want.Subject:
		t.Errorf("event %s: subject = %+v, want %+v", want.ID, got.Subject, want.Subject)
	case !maps.Equal(got.Attrs, want.Attrs):
		t.Errorf("event %s: attrs = %v, want %v", want.ID, got.Attrs, want.Attrs)
	case !slices.Equal(got.Warnings, want.Warnings):
		t.Errorf("event %s: warnings = %q, want %q", want.ID, got.Warnings, want.Warnings)
	case !bytes.Equal(got.Raw, want.Raw):
		t.Errorf("event %s: raw = %q, want %q", want.ID, got.Raw, want.Raw)
	}
}

// mustAppend appends ev and fails unless it was new.
func mustAppend(t *testing.T, s store.Store, ev *normalize.Event) string {
	t.Helper()
	res, err := s.Append(t.Context(), ev)
	if err != nil {
		t.Fatalf("Append(%s): %v", ev.ID, err)
	}
	if res.Duplicate || res.Seq == "" {
		t.Fatalf("Append(%s) = %+v, want a new entry with a Seq", ev.ID, res)
	}
	return res.Seq
}

// readN reads from the log until n entries arrived, failing after a few
// seconds; a driver may hand out fewer than max entries per call.
func readN(t *testing.T, s store.Store, consumer string, n int) []store.LogEntry {
	t.Helper()
	var got []store.LogEntry
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		es, err := s.ReadLog(t.Context(), consumer, n-len(got), 200*time.Millisecond)
		if err != nil {
			t.Fatalf("ReadLog(%s): %v", consumer, err)
		}
		got = append(got, es...)
	}
	if len(got) != n {
		t.Fatalf("ReadLog(%s) gave %d entries, want %d", consumer, len(got), n)
	}
	return got
}

// expectNone fails if consumer can read anything from the log.
func expectNone(t *testing.T, s store.Store, consumer string) {
	t.Helper()
	es, err := s.ReadLog(t.Context(), consumer, 10, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("ReadLog(%s): %v", consumer, err)
	}
	if len(es) != 0 {
		t.Fatalf("ReadLog(%s) = %d entries (first %s), want none", consumer, len(es), es[0].Event.ID)
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

// together runs fn(i) for i in [0, n) in n goroutines that start at the
// same moment, and waits for all of them.
func together(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// contextWithTimeout derives a context from the test's.
func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}

package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/store"
	redisstore "github.com/stagegate/stagegate/store/redis"
)

// rawClient is a plain client for looking behind the store's back.
func rawClient(t *testing.T, srv *redisserver.Server) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Entries read by a consumer that dies unacknowledged go to another
// consumer (in another process) once they were idle for ClaimAfter.
func TestReclaimCrashedConsumer(t *testing.T) {
	srv := redisserver.Start(t)
	prefix := newPrefix()
	crashed := open(t, srv, prefix, time.Second)
	for _, id := range []string{"form:1", "form:2", "form:3"} {
		mustAppend(t, crashed, id)
	}
	if got := readUntil(t, crashed, "proc-a", 3, 5*time.Second); len(got) != 3 {
		t.Fatalf("consumer a read %d entries, want 3", len(got))
	}
	_ = crashed.Close() // dies without acknowledging

	s := open(t, srv, prefix, time.Second)
	start := time.Now()
	if es, err := s.ReadLog(t.Context(), "proc-b", 10, 100*time.Millisecond); err != nil || len(es) != 0 {
		t.Fatalf("ReadLog before ClaimAfter = %d entries, %v; want none yet", len(es), err)
	}
	got := readUntil(t, s, "proc-b", 3, 10*time.Second)
	if len(got) != 3 {
		t.Fatalf("consumer b reclaimed %d entries, want 3", len(got))
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Fatalf("reclaimed after %v, before ClaimAfter", took)
	}
	for i, e := range got {
		if want := []string{"form:1", "form:2", "form:3"}[i]; e.Event.ID != want {
			t.Errorf("reclaimed entry %d = %s, want %s", i, e.Event.ID, want)
		}
		if err := s.Ack(t.Context(), e, store.Outcome{}); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // nothing is left to reclaim
	for _, c := range []string{"proc-a", "proc-b", "proc-c"} {
		if es, err := s.ReadLog(t.Context(), c, 10, 50*time.Millisecond); err != nil || len(es) != 0 {
			t.Fatalf("ReadLog(%s) after acks = %d entries, %v; want none", c, len(es), err)
		}
	}
	if n := rawClient(t, srv).XLen(t.Context(), prefix+"log").Val(); n != 0 {
		t.Fatalf("log holds %d entries after acks, want 0", n)
	}
}

// A process that restarts under the same consumer name gets what it held
// at once, without waiting for ClaimAfter, and then only new entries.
func TestRestartedConsumerRereadsOwn(t *testing.T) {
	srv := redisserver.Start(t)
	prefix := newPrefix()
	first := open(t, srv, prefix, time.Hour)
	for _, id := range []string{"call:1", "call:2", "call:3"} {
		mustAppend(t, first, id)
	}
	readUntil(t, first, "host-1", 3, 5*time.Second)
	_ = first.Close()

	again := open(t, srv, prefix, time.Hour)
	mustAppend(t, again, "call:4")
	var ids []string
	for range 4 {
		es, err := again.ReadLog(t.Context(), "host-1", 2, 0)
		if err != nil {
			t.Fatalf("ReadLog after restart: %v", err)
		}
		for _, e := range es {
			ids = append(ids, e.Event.ID)
		}
	}
	if want := "call:1 call:2 call:3 call:4"; strings.Join(ids, " ") != want {
		t.Fatalf("ReadLog after restart gave %q, want %s", ids, want)
	}
}

// Consumers that ended are removed from the group, unless they hold entries.
func TestPruneConsumers(t *testing.T) {
	srv := redisserver.Start(t)
	prefix := newPrefix()
	s := open(t, srv, prefix, time.Hour)
	mustAppend(t, s, "call:1")
	readUntil(t, s, "holder", 1, 5*time.Second)
	for _, c := range []string{"gone", "me"} {
		if _, err := s.ReadLog(t.Context(), c, 1, 0); err != nil {
			t.Fatalf("ReadLog(%s): %v", c, err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	s.PruneConsumers(t.Context(), "me", 10*time.Millisecond)
	cs, err := rawClient(t, srv).XInfoConsumers(t.Context(), prefix+"log", redisstore.Group).Result()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if strings.Join(names, " ") != "holder me" {
		t.Fatalf("consumers after pruning = %q, want holder and me", names)
	}
}

// While Redis is down calls fail with ErrUnavailable; once it is back (with
// its append-only file) the same Store works again and nothing was lost.
func TestRedisDownAndBack(t *testing.T) {
	srv := redisserver.Start(t)
	if !srv.Real() {
		// miniredis keeps its data over Close/Restart, but its blocking
		// reads (XREADGROUP BLOCK) never answer after a Restart.
		t.Skip("needs a real redis-server")
	}
	s := open(t, srv, newPrefix(), time.Second)
	seq := mustAppend(t, s, "imap:before")

	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.Append(ctx, testEvent("imap:during"))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Append while down: err = %v, want ErrUnavailable", err)
	}
	if !strings.HasPrefix(err.Error(), "redis: append imap:during: ") {
		t.Errorf("error message %q does not say where", err)
	}
	t.Logf("Append while down failed after %v: %v", time.Since(start), err)
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping while down: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.ReadLog(ctx, "c1", 10, 100*time.Millisecond); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ReadLog while down: err = %v, want ErrUnavailable", err)
	}

	srv.Start()
	// After many failed dials go-redis fails fast and probes Redis once a
	// second in the background, so it may take a moment to notice.
	back := time.Now()
	for err := s.Ping(ctx); err != nil; err = s.Ping(ctx) {
		if time.Since(back) > 5*time.Second {
			t.Fatalf("Ping after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("store usable again %v after Redis was back", time.Since(back))
	rec, _, err := s.GetEvent(ctx, "imap:before")
	if err != nil || rec.Seq != seq {
		t.Fatalf("GetEvent after restart = seq %q, %v; want %q", rec.Seq, err, seq)
	}
	if res, err := s.Append(ctx, testEvent("imap:before")); err != nil || !res.Duplicate {
		t.Fatalf("Append(imap:before) after restart = %+v, %v; want a duplicate", res, err)
	}
	mustAppend(t, s, "imap:after")
	got := readUntil(t, s, "c1", 2, 5*time.Second)
	if len(got) != 2 || got[0].Event.ID != "imap:before" || got[1].Event.ID != "imap:after" {
		t.Fatalf("log after restart = %v, want imap:before, imap:after", got)
	}
}

// Open fails with ErrUnavailable when Redis does not answer, and a call past
// its deadline fails with ErrUnavailable and DeadlineExceeded.
func TestUnavailableErrors(t *testing.T) {
	srv := redisserver.Start(t)
	s := open(t, srv, newPrefix(), time.Second)
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := s.Append(ctx, testEvent("form:late"))
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append past its deadline: err = %v, want ErrUnavailable and DeadlineExceeded", err)
	}

	srv.Stop()
	_, err = redisstore.Open(t.Context(), store.Config{URL: srv.URL()}, redisstore.Options{})
	if !errors.Is(err, store.ErrUnavailable) || !strings.HasPrefix(err.Error(), "redis: open 127.0.0.1:") {
		t.Fatalf("Open on a stopped server: err = %v, want ErrUnavailable", err)
	}
	_ = s.Close()
	if err := s.Ping(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping after Close: err = %v, want ErrUnavailable", err)
	}
}

// If Redis lost the log and its consumer group (restarted empty), the next
// reads recreate the group and see what was appended since.
func TestLostConsumerGroup(t *testing.T) {
	srv := redisserver.Start(t)
	prefix := newPrefix()
	s := open(t, srv, prefix, time.Second)
	if err := rawClient(t, srv).Del(t.Context(), prefix+"log").Err(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "chat:1") // recreates the stream, without a group
	got := readUntil(t, s, "c1", 1, 5*time.Second)
	if len(got) != 1 || got[0].Event.ID != "chat:1" {
		t.Fatalf("ReadLog after losing the group = %v, want chat:1", got)
	}
	if err := s.Ack(t.Context(), got[0], store.Outcome{}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
}

// Every key the store writes starts with its prefix.
func TestKeysUnderPrefix(t *testing.T) {
	srv := redisserver.Start(t)
	s := open(t, srv, "tenant-a", time.Second) // ":" is appended
	if s.Prefix() != "tenant-a:" {
		t.Fatalf("Prefix() = %q", s.Prefix())
	}
	exercise(t, s)
	keys, err := rawClient(t, srv).Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 10 {
		t.Fatalf("only %d keys written: %q", len(keys), keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "tenant-a:") {
			t.Errorf("key %q is not under the prefix", k)
		}
	}
}

// exercise calls every write of the store once.
func exercise(t *testing.T, s *redisstore.Store) {
	t.Helper()
	ctx := t.Context()
	mustAppend(t, s, "form:1")
	es := readUntil(t, s, "c1", 1, 5*time.Second)
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	check("Ack", s.Ack(ctx, es[0], store.Outcome{Unmatched: true, Note: "nobody"}))
	_, _, err := s.EnsureContact(ctx, store.Contact{ID: "c-1"},
		[]store.Identity{{Kind: store.IdentityEmail, Value: "ann@example.com"}})
	check("EnsureContact", err)
	_, _, err = s.CreateItem(ctx, store.Item{ID: "i-1", Pipeline: "sales", Stage: "new", ContactID: "c-1"},
		store.TimelineEntry{})
	check("CreateItem", err)
	_, err = s.Move(ctx, store.MoveRequest{ItemID: "i-1", ExpectVersion: 1, To: "won", EventID: "form:1",
		Decisions: &store.ItemDecisions{Moved: true}})
	check("Move", err)
	check("AppendTimeline", s.AppendTimeline(ctx, store.TimelineEntry{ID: "a1", ItemID: "i-1", Kind: store.EntryAction}))
	check("RecordDecisions", s.RecordDecisions(ctx, "form:1", store.ItemDecisions{ItemID: "i-2"}))
	_, err = s.PutRecord(ctx, "tel/a/call/1", []byte("x"), 0, time.Hour)
	check("PutRecord", err)
	_, _, err = s.AppendList(ctx, "chat/1", "m1", []byte("x"), time.Hour)
	check("AppendList", err)
}

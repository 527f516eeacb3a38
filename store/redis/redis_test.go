package redis_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	redisstore "github.com/stagegate/stagegate/store/redis"
	"github.com/stagegate/stagegate/store/storetest"
)

// prefixes numbers the key prefixes, so stores on one server never meet.
var prefixes atomic.Int64

func newPrefix() string { return fmt.Sprintf("sgtest%d:", prefixes.Add(1)) }

// open opens a store on srv under prefix and closes it when t ends.
func open(tb testing.TB, srv *redisserver.Server, prefix string, claimAfter time.Duration) *redisstore.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redisstore.Open(ctx, store.Config{
		Driver: "redis", URL: srv.URL(), Prefix: prefix, ClaimAfter: claimAfter,
	}, redisstore.Options{})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformance runs the store conformance suite, each test on a fresh
// key prefix of one shared server.
func TestConformance(t *testing.T) {
	srv := redisserver.Start(t)
	storetest.RunWith(t, func(t *testing.T) store.Store {
		return open(t, srv, newPrefix(), 0)
	}, storetest.Options{NoExpiry: !srv.Real()}) // miniredis's clock stands still
}

// testEvent returns a small event.
func testEvent(id string) *normalize.Event {
	at := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	return &normalize.Event{
		ID: id, Type: normalize.FormSubmitted, Connector: "forms",
		OccurredAt: at, ReceivedAt: at,
		Subject: normalize.Subject{Email: "ann@example.com"},
	}
}

func mustAppend(tb testing.TB, s store.Store, id string) string {
	tb.Helper()
	res, err := s.Append(context.Background(), testEvent(id))
	if err != nil || res.Duplicate {
		tb.Fatalf("Append(%s) = %+v, %v; want new", id, res, err)
	}
	return res.Seq
}

// readUntil reads for consumer until it got n entries or timeout passed.
func readUntil(t *testing.T, s store.Store, consumer string, n int, timeout time.Duration) []store.LogEntry {
	t.Helper()
	var got []store.LogEntry
	deadline := time.Now().Add(timeout)
	for len(got) < n && time.Now().Before(deadline) {
		es, err := s.ReadLog(t.Context(), consumer, n-len(got), 200*time.Millisecond)
		if err != nil {
			t.Fatalf("ReadLog(%s): %v", consumer, err)
		}
		got = append(got, es...)
	}
	return got
}

// BenchmarkAppendParallel appends distinct events from about 64 goroutines,
// as many connectors would, and reports the throughput in events/s.
//
//	go test -run '^$' -bench AppendParallel ./store/redis/
func BenchmarkAppendParallel(b *testing.B) {
	srv := redisserver.Start(b)
	s := open(b, srv, newPrefix(), time.Minute)
	var n atomic.Int64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			ev := testEvent(fmt.Sprintf("bench:%d", n.Add(1)))
			res, err := s.Append(ctx, ev)
			if err != nil || res.Duplicate {
				b.Errorf("Append(%s) = %+v, %v", ev.ID, res, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

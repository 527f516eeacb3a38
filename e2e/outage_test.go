package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
)

// Redis stops while events arrive: the gateway answers 503 (never 2xx) and
// reports not ready; when Redis is back (same data directory, AOF) the
// gateway recovers by itself, the senders' retries are accepted and every
// event is applied exactly once.
func TestRedisOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	srv := redisserver.Start(t)
	if !srv.Real() {
		t.Skip("redis-server is not installed: miniredis (in-process) cannot be stopped and restarted with its data, which this test needs")
	}
	g := startGateway(t, "redis", redisStoreYAML(srv.URL(), "e2e-outage"))
	c := newClient(t)

	const n = 400
	emails := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("out-%d@e2e.test", i)
	}
	items := createItems(t, c, g.base(), emails)
	events := make([]*event, n)
	ids := make([]string, n)
	for i := range events {
		key := fmt.Sprintf("out-%d", i)
		if i%4 == 3 { // a quarter through the REST API, the rest as signed webhooks
			events[i] = apiEvent("api-"+key, "crm.step1", emails[i])
		} else {
			events[i] = hookEvent(key, "crm.step1", emails[i])
		}
		ids[i] = events[i].eventID()
	}

	var (
		mu       sync.Mutex
		attempts []attempt
	)
	s := &stream{c: c, to: g, workers: 6, backoff: 100 * time.Millisecond, pace: 5 * time.Millisecond,
		observe: func(a attempt) {
			mu.Lock()
			attempts = append(attempts, a)
			mu.Unlock()
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.run(ctx, events)
	}()
	for s.accepted.Load() < n/4 {
		select {
		case <-done:
			t.Fatalf("stream ended before the outage")
		case <-time.After(5 * time.Millisecond):
		}
	}

	srv.Stop()
	downFrom := time.Now()
	t.Logf("redis stopped at %d accepted", s.accepted.Load())
	// While Redis is down: /readyz says so, and the stream keeps trying.
	readyDown := 0
	for time.Since(downFrom) < 2500*time.Millisecond {
		st, err := getStatus(c, g.base()+"/readyz")
		if err != nil {
			t.Errorf("/readyz while redis is down: %v", err)
		} else if st != http.StatusServiceUnavailable {
			t.Errorf("/readyz while redis is down: %d, want 503", st)
		} else {
			readyDown++
		}
		time.Sleep(250 * time.Millisecond)
	}
	acceptedDown := s.accepted.Load()
	downUntil := time.Now()
	srv.Start()
	upAt := time.Now()
	if err := g.waitReady(nil, 30*time.Second); err != nil {
		t.Fatalf("gateway did not recover after redis came back: %v", err)
	}
	t.Logf("redis back; gateway ready again after %v (the gateway was not restarted: %d run)", time.Since(upAt).Round(time.Millisecond), g.runs)
	if r := g.running(); r.exited() {
		t.Fatalf("gateway exited during the outage: %v", r.err)
	}
	<-done
	s.report(t, events)

	// Attempts made entirely while Redis was down must all be 503 with Retry-After.
	mu.Lock()
	var down503, down2xx, downOther, down503API, noRetryAfter int
	for _, a := range attempts {
		if a.start.Before(downFrom) || a.end.After(downUntil) {
			continue
		}
		switch {
		case a.status == http.StatusServiceUnavailable:
			down503++
			if a.ev.via == "api" {
				down503API++
			}
			if a.retryAfter == "" && a.ev.via == "hook" {
				noRetryAfter++
			}
		case a.status/100 == 2:
			down2xx++
			if down2xx <= 10 {
				t.Errorf("%s %s answered %d while redis was down (not durable)", a.ev.via, a.ev.key, a.status)
			}
		default:
			downOther++
			if downOther <= 10 {
				t.Errorf("%s %s while redis was down: status %d err %v, want 503", a.ev.via, a.ev.key, a.status, a.err)
			}
		}
	}
	mu.Unlock()
	t.Logf("while down: %d attempts answered 503 (%d of them API), %d 2xx, %d other; /readyz 503 %d times; accepted stayed at %d",
		down503, down503API, down2xx, downOther, readyDown, acceptedDown)
	if noRetryAfter > 0 {
		t.Errorf("%d webhook 503 answers without Retry-After", noRetryAfter)
	}
	if down2xx > 0 {
		t.Errorf("%d requests made entirely while redis was down got a 2xx", down2xx)
	}
	if down503 == 0 {
		t.Errorf("no request was answered 503 while redis was down")
	}
	if readyDown == 0 {
		t.Errorf("/readyz never answered 503 while redis was down")
	}
	if t.Failed() {
		return
	}
	waitApplied(t, c, g.base(), ids, 30*time.Second)
	checkMovedOnce(t, c, g.base(), items, ids)
}

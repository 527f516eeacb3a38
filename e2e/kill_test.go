package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
)

// A steady stream of signed webhooks, each moving a distinct item from new
// to s1; the gateway is killed with SIGKILL three times in the middle of it and
// restarted on the same bolt file. Every event that got a 2xx is applied,
// and every item is moved exactly once.
func TestKillDuringStream_Bolt(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	g := startGateway(t, "bolt", boltStoreYAML(filepath.Join(t.TempDir(), "sg.db")))
	killDuringStream(t, g, "kb", 2000, 3)
}

// The same on Redis: the gateway is killed and restarted on the same Redis
// and prefix; the entries the dead process held are reclaimed.
func TestKillDuringStream_Redis(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	srv := redisserver.Start(t)
	if !srv.Real() {
		t.Log("redis-server not installed: running on miniredis")
	}
	g := startGateway(t, "redis", redisStoreYAML(srv.URL(), "e2e-kill"))
	killDuringStream(t, g, "kr", 1500, 2)
}

// killDuringStream creates n items, streams one crm.step1 webhook per item
// from 8 goroutines, and SIGKILLs and restarts g kills times, spread evenly
// over the stream.
func killDuringStream(t *testing.T, g *gatewayProc, tag string, n, kills int) {
	c := newClient(t)
	emails := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("%s-%d@e2e.test", tag, i)
	}
	begin := time.Now()
	items := createItems(t, c, g.base(), emails)
	t.Logf("created %d items in %v", n, time.Since(begin).Round(time.Millisecond))

	events := make([]*event, n)
	ids := make([]string, n)
	for i := range events {
		events[i] = hookEvent(fmt.Sprintf("%s-%d", tag, i), "crm.step1", emails[i])
		ids[i] = events[i].eventID()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := &stream{c: c, to: g, workers: 8, backoff: 50 * time.Millisecond}
	done := make(chan struct{})
	begin = time.Now()
	go func() {
		defer close(done)
		s.run(ctx, events)
	}()

	for k := 1; k <= kills; k++ {
		threshold := int64(n * k / (kills + 1))
		for s.accepted.Load() < threshold {
			select {
			case <-done:
				t.Fatalf("stream ended before kill %d (accepted %d of %d)", k, s.accepted.Load(), n)
			case <-time.After(5 * time.Millisecond):
			}
		}
		g.kill()
		t.Logf("kill %d: SIGKILL at %d accepted (%d transport errors, %d 503 so far)", k, s.accepted.Load(), s.nConnErr.Load(), s.n503.Load())
		time.Sleep(200 * time.Millisecond) // senders meet a dead port meanwhile
		g.start()
	}
	<-done
	t.Logf("stream done in %v", time.Since(begin).Round(time.Millisecond))
	s.report(t, events)
	if t.Failed() {
		return
	}
	waitApplied(t, c, g.base(), ids, 30*time.Second)
	checkMovedOnce(t, c, g.base(), items, ids)
}

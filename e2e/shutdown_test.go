package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

// SIGTERM while events are being accepted: the process exits 0 within a few
// seconds, having applied every event it acknowledged (checked in the bolt
// file before any restart); after a restart the senders' retries go through
// and every event is applied exactly once.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	dbPath := filepath.Join(t.TempDir(), "sg.db")
	g := startGateway(t, "bolt", boltStoreYAML(dbPath))
	c := newClient(t)

	const n = 1000
	emails := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("term-%d@e2e.test", i)
	}
	items := createItems(t, c, g.base(), emails)
	events := make([]*event, n)
	ids := make([]string, n)
	for i := range events {
		events[i] = hookEvent(fmt.Sprintf("term-%d", i), "crm.step1", emails[i])
		ids[i] = events[i].eventID()
	}

	var mu sync.Mutex
	acked := map[string]bool{} // event ids that got a 2xx
	s := &stream{c: c, to: g, workers: 8, backoff: 50 * time.Millisecond,
		observe: func(a attempt) {
			if a.status/100 == 2 && a.err == nil {
				mu.Lock()
				acked[a.ev.eventID()] = true
				mu.Unlock()
			}
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.run(ctx, events)
	}()
	for s.accepted.Load() < n/3 {
		select {
		case <-done:
			t.Fatalf("stream ended before SIGTERM")
		case <-time.After(5 * time.Millisecond):
		}
	}

	code, took := g.terminate(20 * time.Second)
	t.Logf("SIGTERM at %d accepted: exit status %d after %v", s.accepted.Load(), code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if took > 10*time.Second {
		t.Errorf("graceful shutdown took %v, want a few seconds", took)
	}
	time.Sleep(200 * time.Millisecond) // let answers already sent reach the senders
	mu.Lock()
	before := make([]string, 0, len(acked))
	for id := range acked {
		before = append(before, id)
	}
	mu.Unlock()

	// With the process gone, the bolt file shows what the shutdown left:
	// everything acknowledged is applied.
	cfg := store.Config{Driver: "bolt", Path: dbPath}
	cfg.SetDefaults()
	st, err := bolt.Open(cfg, bolt.Options{})
	if err != nil {
		t.Fatalf("open the bolt file after shutdown: %v", err)
	}
	var notApplied []string
	for _, id := range before {
		rec, _, err := st.GetEvent(context.Background(), id)
		if err != nil || !rec.Applied {
			notApplied = append(notApplied, fmt.Sprintf("%s (%v)", id, err))
		}
	}
	if err := st.Close(); err != nil {
		t.Fatalf("close the bolt file: %v", err)
	}
	t.Logf("%d events acknowledged before the exit; %d of them not applied by the graceful shutdown", len(before), len(notApplied))
	if len(notApplied) > 0 {
		t.Errorf("graceful shutdown left %d acknowledged events unapplied (first: %v)", len(notApplied), notApplied[:min(len(notApplied), 10)])
	}

	g.start()
	<-done
	s.report(t, events)
	if t.Failed() {
		return
	}
	waitApplied(t, c, g.base(), ids, 30*time.Second)
	checkMovedOnce(t, c, g.base(), items, ids)
}

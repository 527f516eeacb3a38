package e2e

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
)

// The same event posted 1,000 times at once (100 clients × 10), as a signed
// webhook with one webhook-id and through the API with one event id: every
// post is answered 2xx, exactly one says duplicate:false, and the item moves
// once.
func TestSameEvent1000Concurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	t.Run("bolt", func(t *testing.T) {
		g := startGateway(t, "bolt", boltStoreYAML(filepath.Join(t.TempDir(), "sg.db")))
		sameEvent1000(t, g)
	})
	t.Run("redis", func(t *testing.T) {
		srv := redisserver.Start(t)
		if !srv.Real() {
			t.Log("redis-server not installed: running on miniredis")
		}
		g := startGateway(t, "redis", redisStoreYAML(srv.URL(), "e2e-same"))
		sameEvent1000(t, g)
	})
}

func sameEvent1000(t *testing.T, g *gatewayProc) {
	const clients, each = 100, 10
	c := newClient(t)
	emails := []string{"same-hook@e2e.test", "same-api@e2e.test"}
	items := createItems(t, c, g.base(), emails)
	evs := []*event{
		hookEvent("same-1", "crm.step1", emails[0]),
		apiEvent("same-1", "crm.step1", emails[1]),
	}
	for _, ev := range evs {
		var fresh, dups, other atomic.Int64
		var mu sync.Mutex
		var problems []string
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for range each {
					a := send(c, g.base(), ev)
					switch {
					case a.status/100 == 2 && a.err == nil && a.dup:
						dups.Add(1)
					case a.status/100 == 2 && a.err == nil:
						fresh.Add(1)
					default:
						other.Add(1)
						mu.Lock()
						problems = append(problems, fmt.Sprintf("status %d: %v", a.status, a.err))
						mu.Unlock()
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		t.Logf("%s %s posted %d times: %d duplicate:false, %d duplicate:true, %d not 2xx",
			ev.via, ev.key, clients*each, fresh.Load(), dups.Load(), other.Load())
		if fresh.Load() != 1 {
			t.Errorf("%s: %d answers with duplicate:false, want exactly 1", ev.via, fresh.Load())
		}
		if other.Load() != 0 {
			t.Errorf("%s: %d answers were not 2xx (first: %s)", ev.via, other.Load(), problems[0])
		}
	}
	ids := []string{evs[0].eventID(), evs[1].eventID()}
	waitApplied(t, c, g.base(), ids, 20*time.Second)
	checkMovedOnce(t, c, g.base(), items, ids)
}

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
)

// Two gateway processes share one Redis and prefix. Every item gets crm.a
// (trigger on s1) and crm.b (trigger on s2), sent at the same time, one to
// each gateway, and each is also sent again to the other gateway. Whatever
// the order, an item ends at s2 after one move (b first) or two (a, then b);
// its timeline has one entry per move, its version is 1 + moves, no event
// moves an item twice, and each event is new on exactly one gateway.
func TestTwoGatewaysOneRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	twoGateways(t, false)
}

// The same, and one of the two gateways is killed (SIGKILL) halfway and
// restarted: the survivor takes over the log entries the dead one held.
func TestTwoGatewaysOneRedis_KillOne(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	twoGateways(t, true)
}

func twoGateways(t *testing.T, killOne bool) {
	srv := redisserver.Start(t)
	if !srv.Real() {
		t.Log("redis-server not installed: running on miniredis")
	}
	storeYAML := redisStoreYAML(srv.URL(), "e2e-two")
	gws := []*gatewayProc{startGateway(t, "gw1", storeYAML), startGateway(t, "gw2", storeYAML)}
	c := newClient(t)

	const n = 400
	emails := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("two-%d@e2e.test", i)
	}
	items := createItems(t, c, gws[0].base(), emails)

	rng := rand.New(rand.NewPCG(1, 2))
	var events []*event
	aIDs, bIDs := make([]string, n), make([]string, n)
	for i := range n {
		mk := func(kind, typ string, to *gatewayProc) *event {
			key := fmt.Sprintf("two-%s-%d", kind, i)
			var ev *event
			if kind == "b" && i%3 == 0 { // some through the REST API
				ev = apiEvent(key, typ, emails[i])
			} else {
				ev = hookEvent(key, typ, emails[i])
			}
			ev.to = to
			return ev
		}
		group := []*event{
			mk("a", "crm.a", gws[i%2]), mk("b", "crm.b", gws[(i+1)%2]), // one to each gateway
			mk("a", "crm.a", gws[(i+1)%2]), mk("b", "crm.b", gws[i%2]), // and again to the other
		}
		aIDs[i], bIDs[i] = group[0].eventID(), group[1].eventID()
		rng.Shuffle(len(group), func(x, y int) { group[x], group[y] = group[y], group[x] })
		events = append(events, group...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := &stream{c: c, to: gws[0], workers: 16, backoff: 50 * time.Millisecond}
	begin := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.run(ctx, events)
	}()
	if killOne {
		for s.accepted.Load() < int64(len(events)/2) {
			select {
			case <-done:
				t.Fatalf("stream ended before the kill")
			case <-time.After(5 * time.Millisecond):
			}
		}
		gws[1].kill()
		t.Logf("gw2 killed at %d of %d posts accepted", s.accepted.Load(), len(events))
		time.Sleep(300 * time.Millisecond)
		gws[1].start()
	}
	<-done
	t.Logf("stream of %d posts done in %v", len(events), time.Since(begin).Round(time.Millisecond))
	s.report(t, events)
	if t.Failed() {
		return
	}
	// Each event id was new exactly once across the two gateways (or at
	// most once when an attempt failed: the answer of the one that recorded
	// it may have been lost with the killed process).
	fresh, retried := map[string]int{}, map[string]bool{}
	for _, ev := range events {
		if !ev.dup {
			fresh[ev.eventID()]++
		}
		if ev.attempts > 1 {
			retried[ev.eventID()] = true
		}
	}
	for _, id := range append(append([]string{}, aIDs...), bIDs...) {
		if fresh[id] > 1 || (fresh[id] == 0 && !retried[id]) {
			t.Errorf("event %s: %d answers with duplicate:false across both gateways, want 1", id, fresh[id])
		}
	}

	waitApplied(t, c, gws[1].base(), append(append([]string{}, aIDs...), bIDs...), 30*time.Second)
	var oneMove, twoMoves atomic.Int64
	var mu sync.Mutex
	var bad []string
	errs := parallel(n, 8, func(i int) error {
		base := gws[i%2].base()
		var it itemReply
		if _, err := apiCall(c, base, "GET", "/api/v1/items/"+items[i], nil, &it); err != nil {
			return err
		}
		ms, err := moves(c, base, items[i])
		if err != nil {
			return err
		}
		if msg := checkTwoEventItem(it, ms, aIDs[i], bIDs[i]); msg != "" {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("item %s: %s (stage %s version %d moves %+v)", items[i], msg, it.Stage, it.Version, ms))
			mu.Unlock()
		} else if len(ms) == 1 {
			oneMove.Add(1)
		} else {
			twoMoves.Add(1)
		}
		return nil
	})
	for _, err := range errs[:min(len(errs), 5)] {
		t.Errorf("check items: %v", err)
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d items inconsistent:\n%s", len(bad), n, strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
	t.Logf("items at s2: %d moved straight there (b first), %d via s1 (a, then b)", oneMove.Load(), twoMoves.Load())
}

// checkTwoEventItem returns what is wrong with an item that received crm.a
// (event a) and crm.b (event b), or "".
func checkTwoEventItem(it itemReply, ms []timelineEntry, a, b string) string {
	switch {
	case it.Stage != "s2" || it.Closed:
		return "not at s2"
	case len(ms) != 1 && len(ms) != 2:
		return fmt.Sprintf("%d moves, want 1 or 2", len(ms))
	case it.Version != int64(1+len(ms)):
		return fmt.Sprintf("version %d with %d moves", it.Version, len(ms))
	}
	seen := map[string]bool{}
	prev := "new"
	for _, m := range ms {
		if seen[m.EventID] {
			return "event " + m.EventID + " moved the item twice"
		}
		seen[m.EventID] = true
		if m.From != prev {
			return fmt.Sprintf("move from %s, but the item was at %s", m.From, prev)
		}
		prev = m.To
	}
	if len(ms) == 1 && (ms[0].To != "s2" || ms[0].EventID != b || ms[0].Trigger != "b") {
		return "a single move that is not new→s2 by b"
	}
	if len(ms) == 2 && (ms[0].To != "s1" || ms[0].EventID != a || ms[0].Trigger != "a" ||
		ms[1].To != "s2" || ms[1].EventID != b || ms[1].Trigger != "b") {
		return "two moves that are not new→s1 by a, s1→s2 by b"
	}
	return ""
}

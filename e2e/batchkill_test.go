package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
	"github.com/stagegate/stagegate/store/redis"
)

// SIGKILL while the engine is writing batches. The log already holds n
// events when the gateway starts (they are appended straight into the
// store while it is stopped, as an intake would have), so its engine
// starts on a backlog that it applies in batches of up to 256. As soon as
// /metrics shows part of the backlog applied, the gateway is killed —
// twice — and restarted on the same store. Afterwards every event is
// applied and every item moved exactly once: a batch cut short is either
// not written at all (bolt: one transaction) or written in part (Redis:
// one script per event, pipelined) and then redelivered without effect
// for what it already did.
func TestKillDuringBatch_Bolt(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	path := filepath.Join(t.TempDir(), "sg.db")
	g := startGateway(t, "bolt", boltStoreYAML(path))
	killDuringBatch(t, g, "bk", 4000, func() store.Store {
		st, err := bolt.Open(store.Config{Path: path}, bolt.Options{})
		if err != nil {
			t.Fatalf("open bolt: %v", err)
		}
		return st
	})
}

func TestKillDuringBatch_Redis(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e fault test: skipped with -short")
	}
	srv := redisserver.Start(t)
	if !srv.Real() {
		t.Log("redis-server not installed: running on miniredis")
	}
	const prefix = "e2e-batchkill"
	g := startGateway(t, "redis", redisStoreYAML(srv.URL(), prefix))
	killDuringBatch(t, g, "bkr", 4000, func() store.Store {
		st, err := redis.Open(context.Background(), store.Config{URL: srv.URL(), Prefix: prefix}, redis.Options{})
		if err != nil {
			t.Fatalf("open redis: %v", err)
		}
		return st
	})
}

func killDuringBatch(t *testing.T, g *gatewayProc, tag string, n int, open func() store.Store) {
	c := newClient(t)
	emails := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("%s-%d@e2e.test", tag, i)
	}
	items := createItems(t, c, g.base(), emails)
	if code, _ := g.terminate(30 * time.Second); code != 0 {
		t.Fatalf("gateway exited with %d on SIGTERM", code)
	}

	// The backlog: the events a webhook per item would have made.
	ids := make([]string, n)
	st := open()
	now := time.Now()
	for i := range n {
		key := fmt.Sprintf("%s-%d", tag, i)
		raw, _ := json.Marshal(map[string]any{"type": "crm.step1", "subject": map[string]string{"email": emails[i]}})
		ev := &normalize.Event{ID: "hooks:" + key, Type: "crm.step1", Connector: "hooks",
			Subject: normalize.Subject{Email: emails[i]}, ReceivedAt: now, OccurredAt: now, Raw: raw}
		res, err := st.Append(context.Background(), ev)
		if err != nil || res.Duplicate {
			t.Fatalf("append %s: %+v %v", ev.ID, res, err)
		}
		ids[i] = ev.ID
	}
	if err := st.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}

	total := 0
	for k := 1; k <= 2; k++ {
		g.start()
		applied := waitMetric(t, c, g.base(), "stagegate_events_applied_total", 1, 20*time.Second)
		g.kill()
		total += int(applied)
		t.Logf("kill %d: SIGKILL after this run applied %d events (%d of %d in all, at least)", k, int(applied), total, n)
		if total >= n {
			t.Fatalf("the engine applied the whole backlog before kill %d: the test killed nothing mid-batch (raise n)", k)
		}
	}
	g.start()
	waitApplied(t, c, g.base(), ids, 60*time.Second)
	checkMovedOnce(t, c, g.base(), items, ids)
}

// waitMetric polls /metrics every 2 ms until the sum of the samples of the
// counter name reaches at least min, and returns that sum.
func waitMetric(t *testing.T, c *http.Client, base, name string, min float64, within time.Duration) float64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if v, err := metricSum(c, base, name); err == nil && v >= min {
			return v
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s did not reach %v within %v", name, min, within)
	return 0
}

// metricSum adds up the samples of a metric in the Prometheus text format.
func metricSum(c *http.Client, base, name string) (float64, error) {
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

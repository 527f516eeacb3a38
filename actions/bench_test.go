package actions_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/actions"
	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
	redisstore "github.com/stagegate/stagegate/store/redis"
)

// The action benchmarks move items by hand (engine.MoveManual) into a stage
// whose webhook aims at a local httptest target, and run the outbox with
// 64 workers, on each store:
//
//	go test -run '^$' -bench 'Action(Throughput|Latency)' -benchtime 5000x ./actions/
//
// Throughput: b.N moves are queued first, then the runner starts; actions/s
// is b.N over the time until the target got them all. Latency: moves at a
// fixed rate (500/s, open loop) while the runner runs; move→delivery is
// measured from the call that moves the item (its commit included) to the
// target's receipt.

func benchStores(b *testing.B) map[string]func(b *testing.B) store.Store {
	return map[string]func(b *testing.B) store.Store{
		"bolt": func(b *testing.B) store.Store {
			st, err := bolt.Open(store.Config{Path: filepath.Join(b.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		},
		"redis": func(b *testing.B) store.Store {
			srv := redisserver.Start(b)
			st, err := redisstore.Open(context.Background(), store.Config{URL: srv.URL(), Prefix: fmt.Sprintf("bench%d", time.Now().UnixNano())}, redisstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		},
	}
}

// benchRig is a store, an engine with the actions runner, and a target.
type benchRig struct {
	st     store.Store
	eng    *engine.Engine
	target *httptest.Server
	got    atomic.Int64
	mu     sync.Mutex
	at     map[string]time.Time // item id → delivery time
	done   chan struct{}
	want   int64
}

func newBenchRig(b *testing.B, st store.Store, want int) *benchRig {
	r := &benchRig{st: st, at: map[string]time.Time{}, done: make(chan struct{}), want: int64(want)}
	r.target = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		now := time.Now()
		item, _, _ := strings.Cut(req.Header.Get(actions.HeaderIdempotencyKey), "/")
		r.mu.Lock()
		first := r.at[item].IsZero()
		if first {
			r.at[item] = now
		}
		r.mu.Unlock()
		if first && r.got.Add(1) == r.want {
			close(r.done)
		}
	}))
	b.Cleanup(r.target.Close)
	cfg := actions.Config{AllowPrivate: true, ActionPolicy: engine.ActionPolicy{Workers: 64, Poll: 100 * time.Millisecond}}
	cfg.SetDefaults()
	runner, err := actions.New(cfg, actions.Options{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	ps := []engine.Pipeline{{ID: "sales", Stages: []engine.Stage{
		{ID: "new"}, {ID: "won", Actions: []engine.ActionSpec{{Type: "webhook", Settings: &actions.Webhook{URL: r.target.URL + "/won"}}}},
	}}}
	r.eng, err = engine.New(engine.Options{Store: st, Pipelines: ps, Actions: runner,
		ActionOptions: engine.ActionOptions{ActionPolicy: cfg.ActionPolicy}})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// items creates n items at new.
func (r *benchRig) items(b *testing.B, n int) []string {
	ids := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%d", i)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := r.eng.CreateItem(context.Background(), store.Item{ID: ids[i], Pipeline: "sales"}, ""); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	return ids
}

func BenchmarkActionThroughput(b *testing.B) {
	for name, open := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			r := newBenchRig(b, open(b), b.N)
			ids := r.items(b, b.N)
			var wg sync.WaitGroup
			sem := make(chan struct{}, 64)
			for _, id := range ids {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer func() { <-sem; wg.Done() }()
					if _, err := r.eng.MoveManual(context.Background(), id, "won", ""); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b.ResetTimer()
			start := time.Now()
			go r.eng.RunActions(ctx)
			select {
			case <-r.done:
			case <-time.After(5 * time.Minute):
				b.Fatalf("delivered %d of %d", r.got.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "actions/s")
		})
	}
}

func BenchmarkActionLatency(b *testing.B) {
	const rate = 500 // moves per second
	for name, open := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			r := newBenchRig(b, open(b), b.N)
			ids := r.items(b, b.N)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.eng.RunActions(ctx)
			moved := make([]time.Time, len(ids))
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i, id := range ids {
				time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / rate)))
				wg.Add(1)
				go func() {
					defer wg.Done()
					moved[i] = time.Now()
					if _, err := r.eng.MoveManual(context.Background(), id, "won", ""); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
			select {
			case <-r.done:
			case <-time.After(2 * time.Minute):
				b.Fatalf("delivered %d of %d", r.got.Load(), b.N)
			}
			b.StopTimer()
			lat := make([]time.Duration, len(ids))
			r.mu.Lock()
			for i, id := range ids {
				lat[i] = max(r.at[id].Sub(moved[i]), 0)
			}
			r.mu.Unlock()
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
			b.ReportMetric(pct(0.5), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
		})
	}
}

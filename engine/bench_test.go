package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

// BenchmarkApplyBolt measures the engine on a real bolt file: b.N events
// for 1,000 items (each item has its own contact), every event a trigger
// match that moves its item (the pipeline's two stages alternate).
//
//   - drain: the log already holds the b.N events when the timer starts;
//     the engine alone applies them (its reads, batches and writes).
//   - concurrent: 64 goroutines append while the engine applies, as the
//     gateway's intake does under load; intake and engine share the
//     committer.
//
// Besides events/s it reports the process CPU per event (user + system,
// less noisy than rates on a shared machine) and the distribution of the
// engine's batch sizes (log entries applied in one store write).
//   - concurrent-random-ids: concurrent with event ids that scatter over
//     the key space (hashes, as message ids and provider ids do), where
//     "bench:N" ids sort almost in order and land on the same pages.
func BenchmarkApplyBolt(b *testing.B) {
	b.Run("drain", func(b *testing.B) { benchApplyBolt(b, false, false) })
	b.Run("concurrent", func(b *testing.B) { benchApplyBolt(b, true, false) })
	b.Run("concurrent-random-ids", func(b *testing.B) { benchApplyBolt(b, true, true) })
}

func benchApplyBolt(b *testing.B, concurrent, randomIDs bool) {
	ctx := context.Background()
	st, err := bolt.Open(store.Config{Path: filepath.Join(b.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ps := []Pipeline{{ID: "p", Stages: []Stage{
		{ID: "a", Triggers: []Trigger{{Type: "crm.bench_back", AllowBack: true}}},
		{ID: "b", Triggers: []Trigger{{Type: "crm.bench"}}},
	}}}
	eng, err := New(Options{Store: st, Pipelines: ps})
	if err != nil {
		b.Fatal(err)
	}
	const items = 1000
	for i := range items {
		email := fmt.Sprintf("u%d@bench.test", i)
		c, _, err := st.EnsureContact(ctx, store.Contact{ID: "c" + email}, []store.Identity{{Kind: store.IdentityEmail, Value: email}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := eng.CreateItem(ctx, store.Item{ID: "i" + email, Pipeline: "p", ContactID: c.ID}, ""); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	evs := make([]*normalize.Event, b.N)
	for i := range evs {
		typ := normalize.Type("crm.bench")
		if (i/items)%2 == 1 {
			typ = "crm.bench_back"
		}
		id := fmt.Sprintf("bench:%d", i)
		if randomIDs {
			sum := sha256.Sum256([]byte(id))
			id = "bench:" + hex.EncodeToString(sum[:12])
		}
		evs[i] = &normalize.Event{ID: id, Type: typ, Connector: "bench",
			Subject: normalize.Subject{Email: fmt.Sprintf("u%d@bench.test", i%items)}, ReceivedAt: now, OccurredAt: now,
			Raw: []byte(`{"type":"crm.bench","subject":{"email":"u1@bench.test"}}`)}
	}
	appendAll := func() {
		sem := make(chan struct{}, 64)
		var wg sync.WaitGroup
		for _, ev := range evs {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if _, err := st.Append(ctx, ev); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if !concurrent {
		appendAll()
	}
	obs := &countObs{n: int64(b.N), done: make(chan struct{})}
	eng.obs = obs
	cpu0, w0 := cpuTime(), st.WriteStats()
	b.ResetTimer()
	rctx, cancel := context.WithCancel(ctx)
	go eng.Run(rctx)
	if concurrent {
		appendAll()
	}
	<-obs.done
	b.StopTimer()
	cpu, w := cpuTime()-cpu0, st.WriteStats()
	cancel()
	if c := w.Commits - w0.Commits; c > 0 {
		b.ReportMetric(float64(w.Pages-w0.Pages)/float64(b.N), "pages/event")
		b.ReportMetric(float64(w.Bytes-w0.Bytes)/float64(c)/1024, "KiB/commit")
		b.ReportMetric(float64(b.N)/float64(c), "events/commit")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
	sizes := obs.batchSizes()
	if len(sizes) > 0 {
		slices.Sort(sizes)
		b.ReportMetric(float64(b.N)/float64(len(sizes)), "batch-mean")
		b.ReportMetric(float64(sizes[len(sizes)/2]), "batch-p50")
		b.ReportMetric(float64(sizes[len(sizes)*9/10]), "batch-p90")
		b.ReportMetric(float64(sizes[len(sizes)-1]), "batch-max")
	}
}

// cpuTime is the user + system CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type countObs struct {
	n    int64
	seen atomic.Int64
	done chan struct{}

	mu    sync.Mutex
	sizes []int
}

func (o *countObs) Moved(string, string, string) {}
func (o *countObs) Applied(*normalize.Event, time.Duration, Result) {
	if o.seen.Add(1) == o.n {
		close(o.done)
	}
}
func (o *countObs) Batch(n int) {
	o.mu.Lock()
	o.sizes = append(o.sizes, n)
	o.mu.Unlock()
}

func (o *countObs) batchSizes() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.sizes)
}

package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

// BenchmarkApplyBolt measures events applied per second by the log consumer
// on the bolt store: b.N events for 1,000 items, half of them moving one.
func BenchmarkApplyBolt(b *testing.B) {
	ctx := context.Background()
	st, err := bolt.Open(store.Config{Path: filepath.Join(b.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var ps []Pipeline
	ps = append(ps, Pipeline{ID: "p", Stages: []Stage{{ID: "a"}, {ID: "b", Triggers: []Trigger{{Type: "crm.bench"}}}}})
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
		evs[i] = &normalize.Event{ID: fmt.Sprintf("bench:%d", i), Type: "crm.bench", Connector: "bench",
			Subject: normalize.Subject{Email: fmt.Sprintf("u%d@bench.test", i%items)}, ReceivedAt: now, OccurredAt: now,
			Raw: []byte(`{"type":"crm.bench","subject":{"email":"u1@bench.test"}}`)}
	}
	b.ResetTimer()
	done := make(chan struct{})
	obs := &countObs{n: int64(b.N), done: done}
	eng.obs = obs
	rctx, cancel := context.WithCancel(ctx)
	go eng.Run(rctx)
	sem := make(chan struct{}, 64)
	for _, ev := range evs {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if _, err := st.Append(ctx, ev); err != nil {
				b.Error(err)
			}
		}()
	}
	<-done
	b.StopTimer()
	cancel()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

type countObs struct {
	n    int64
	seen atomic.Int64
	done chan struct{}
}

func (o *countObs) Moved(string, string, string) {}
func (o *countObs) Applied(*normalize.Event, time.Duration, bool) {
	if o.seen.Add(1) == o.n {
		close(o.done)
	}
}

package actions_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/actions"
	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
	redisstore "github.com/stagegate/stagegate/store/redis"
)

// slowTarget answers 200 after a delay and records, per path, how often it
// was called, in which order, and how many calls overlapped.
type slowTarget struct {
	delay   time.Duration
	mu      sync.Mutex
	calls   []string // paths in arrival order
	running int
	overlap int // most calls in flight at once
	srv     *httptest.Server
}

func newSlowTarget(t *testing.T, delay time.Duration) *slowTarget {
	st := &slowTarget{delay: delay}
	st.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		st.calls = append(st.calls, r.URL.Path)
		st.running++
		st.overlap = max(st.overlap, st.running)
		st.mu.Unlock()
		time.Sleep(st.delay)
		st.mu.Lock()
		st.running--
		st.mu.Unlock()
	}))
	t.Cleanup(st.srv.Close)
	return st
}

// TestStageEntryChainRunsOnceInOrder is issue 16's scenario: the actions of
// one stage entry take together longer than the lease (four webhooks that
// answer after 40% of it) between two set_field. Each must run once, one at a time, in order,
// and count one attempt; before the fix the later ones' leases ended while
// the first ones ran, and they were claimed and delivered again, at the
// same time as the rest of the chain.
func TestStageEntryChainRunsOnceInOrder(t *testing.T) {
	const lease = 750 * time.Millisecond
	stores := map[string]func(t *testing.T) store.Store{
		"bolt": func(t *testing.T) store.Store {
			st, err := bolt.Open(store.Config{Path: filepath.Join(t.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		"redis": func(t *testing.T) store.Store {
			srv := redisserver.Start(t)
			st, err := redisstore.Open(t.Context(), store.Config{URL: srv.URL(), Prefix: fmt.Sprintf("chain%d:", time.Now().UnixNano()), DedupWindow: time.Hour}, redisstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			target := newSlowTarget(t, lease*4/10)
			cfg := actions.Config{AllowPrivate: true, ActionPolicy: engine.ActionPolicy{Timeout: lease / 2, Lease: lease, Workers: 8, Poll: 20 * time.Millisecond}}
			cfg.SetDefaults()
			runner, err := actions.New(cfg, actions.Options{Store: st})
			if err != nil {
				t.Fatal(err)
			}
			specs := []engine.ActionSpec{{Type: "set_field", Settings: &actions.SetField{Field: "won_via", Value: "by hand"}}}
			for i := range 4 {
				specs = append(specs, engine.ActionSpec{Type: "webhook", Settings: &actions.Webhook{URL: target.srv.URL + "/hook/" + strconv.Itoa(i+1)}})
			}
			// A set_field at the end ran once but showed 2 attempts.
			specs = append(specs, engine.ActionSpec{Type: "set_field", Settings: &actions.SetField{Field: "mirrored", Value: "yes"}})
			ps := []engine.Pipeline{{ID: "sales", Stages: []engine.Stage{{ID: "new"}, {ID: "won", Actions: specs}}}}
			eng, err := engine.New(engine.Options{Store: st, Pipelines: ps, Actions: runner,
				ActionOptions: engine.ActionOptions{ActionPolicy: cfg.ActionPolicy}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := eng.CreateItem(t.Context(), store.Item{ID: "deal-1", Pipeline: "sales"}, ""); err != nil {
				t.Fatal(err)
			}
			if _, err := eng.MoveManual(t.Context(), "deal-1", "won", "bob"); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- eng.RunActions(ctx) }()
			defer func() { cancel(); <-done }()

			deadline := time.Now().Add(10 * time.Second)
			for {
				es, err := st.ListOutbox(t.Context(), store.OutboxFilter{Status: store.OutboxDone})
				if err != nil {
					t.Fatal(err)
				}
				if len(es) == len(specs) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d actions done", len(es), len(specs))
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Give a wrongly released entry the time to come back.
			time.Sleep(lease + 100*time.Millisecond)

			target.mu.Lock()
			calls, overlap := slices.Clone(target.calls), target.overlap
			target.mu.Unlock()
			want := []string{"/hook/1", "/hook/2", "/hook/3", "/hook/4"}
			if !slices.Equal(calls, want) {
				t.Errorf("target got %q, want each hook once, in order: %q", calls, want)
			}
			if overlap != 1 {
				t.Errorf("%d calls overlapped, want one at a time", overlap)
			}
			es, err := st.ListOutbox(t.Context(), store.OutboxFilter{ItemID: "deal-1"})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if e.Status != store.OutboxDone || e.Attempts != 1 {
					t.Errorf("action %d (%s): %s after %d attempts, want done after 1", e.Index, e.Type, e.Status, e.Attempts)
				}
			}
			if it, err := st.GetItem(t.Context(), "deal-1"); err != nil || it.Fields["won_via"] != "by hand" || it.Fields["mirrored"] != "yes" {
				t.Errorf("item after the chain: fields %v, %v; want won_via and mirrored set", it.Fields, err)
			}
		})
	}
}

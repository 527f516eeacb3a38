package engine

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

// countingStore counts the GetEvent calls a wait makes.
type countingStore struct {
	*bolt.Store
	gets atomic.Int64
}

func (s *countingStore) GetEvent(ctx context.Context, id string) (store.EventRecord, []store.ItemDecisions, error) {
	s.gets.Add(1)
	return s.Store.GetEvent(ctx, id)
}

// A wait watched before the append is woken by the engine without a look
// at a single-process store; Wait, which cannot know, looks once.
func TestWatchFreshEventNeedsNoStoreRead(t *testing.T) {
	c := newClock()
	bs, err := bolt.Open(store.Config{Path: filepath.Join(t.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	st := &countingStore{Store: bs}
	eng, err := New(Options{Store: st, Pipelines: parsePipelines(t, testPipelines), Now: c.now, DefaultRegion: "US"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { _ = eng.Run(ctx) }()

	ev := event("email.incoming", "nobody@example.com")
	w := eng.Watch(ev.ID)
	defer w.Close()
	if _, err := st.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(ctx, true); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if n := st.gets.Load(); n != 0 {
		t.Fatalf("a fresh watched wait read the store %d times, want 0", n)
	}
	rec, _, err := bs.GetEvent(ctx, ev.ID)
	if err != nil || !rec.Applied {
		t.Fatalf("event after the wait: applied=%v, %v", rec.Applied, err)
	}

	// Wait on an event applied already returns from its one look.
	if err := eng.Wait(ctx, ev.ID); err != nil {
		t.Fatalf("Wait on an applied event: %v", err)
	}
	if n := st.gets.Load(); n != 1 {
		t.Fatalf("Wait on an applied event read the store %d times, want 1", n)
	}
}

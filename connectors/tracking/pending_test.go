package tracking

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"
)

// blockAppends makes every hit-list append wait for release; entered
// receives one value per append that reached the store.
func blockAppends(e *env) (entered chan string, release chan struct{}) {
	entered, release = make(chan string, 64), make(chan struct{})
	e.fake.SetBeforeAppend(func(key string) {
		entered <- key
		<-release
	})
	return entered, release
}

// TestPendingHitsAnsweredFirst: with pending_hits, the pixel and the click
// answer while their hits are not stored yet; once stored, the hits and the
// events are the same as when every hit is stored before its answer.
func TestPendingHitsAnsweredFirst(t *testing.T) {
	e := newEnv(t, nil, func(c *Config) { c.PendingHits = 8 })
	p := e.prepare(basicMessage)
	e.clk.Add(time.Hour)
	entered, release := blockAppends(e)

	checkGIF(t, e.do("GET", path(p.PixelURL), "", nil), false)
	a := e.do("GET", path(p.Links[0].ClickURL), "", nil)
	if a.code != http.StatusFound || a.header.Get("Location") != "https://example.com/pricing" {
		t.Fatalf("click answer %d %v", a.code, a.header)
	}
	<-entered
	<-entered // both hits are at the store, held there, and both requests have their answer
	if n := e.fake.ListLen(e.tr.hitsKey(p.ID)); n != 0 {
		t.Fatalf("%d hits stored while the store holds them", n)
	}
	if s := e.tr.statsNow(); s.AnsweredFirst != 2 || s.HitsPending != 2 || s.HitsRecorded != 0 {
		t.Fatalf("stats while pending %+v", s)
	}
	close(release)
	if err := e.tr.later.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.ListLen(e.tr.hitsKey(p.ID)); n != 2 {
		t.Errorf("%d hits stored, want 2", n)
	}
	// recorded in the background, the two may be submitted in either order
	want := []string{clickEventID("track", p.ID, 1, false), openEventID("track", p.ID, false)}
	got := e.in.IDs()
	slices.Sort(got)
	if slices.Sort(want); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if s := e.tr.statsNow(); s.HitsPending != 0 || s.HitsRecorded != 2 || s.Opens != 1 || s.Clicks != 1 {
		t.Errorf("stats after %+v", s)
	}
}

// TestPendingHitsBound: with pending_hits hits waiting, the next one is
// stored before its answer, so no more than pending_hits are ever answered
// and not stored.
func TestPendingHitsBound(t *testing.T) {
	e := newEnv(t, nil, func(c *Config) { c.PendingHits = 2 })
	p := e.prepare(basicMessage)
	e.clk.Add(time.Hour)
	entered, release := blockAppends(e)
	for range 2 {
		checkGIF(t, e.do("GET", path(p.PixelURL), "", nil), false)
	}
	done := make(chan answer, 1)
	go func() { done <- e.do("GET", path(p.PixelURL), "", nil) }()
	for range 3 {
		<-entered
	}
	select {
	case <-done:
		t.Fatal("the third hit was answered before it was stored (pending_hits 2)")
	default:
	}
	if s := e.tr.statsNow(); s.AnsweredFirst != 2 || s.HitsPending != 2 {
		t.Errorf("stats %+v", s)
	}
	close(release)
	checkGIF(t, <-done, false)
	if err := e.tr.later.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.ListLen(e.tr.hitsKey(p.ID)); n != 3 {
		t.Errorf("%d hits stored, want 3", n)
	}
}

// TestRunStoresPendingHitsAtStop: Run returns only once the hits answered
// before they were stored are stored (a graceful stop loses none).
func TestRunStoresPendingHitsAtStop(t *testing.T) {
	e := newEnv(t, nil, func(c *Config) { c.PendingHits = 8 })
	p := e.prepare(basicMessage)
	e.clk.Add(time.Hour)
	entered, release := blockAppends(e)
	checkGIF(t, e.do("GET", path(p.PixelURL), "", nil), false)
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- e.tr.Run(ctx) }()
	cancel()
	for len(e.tr.later.slots) < cap(e.tr.later.slots) { // Run holds the other slots once it waits
		time.Sleep(time.Millisecond)
	}
	select {
	case <-ran:
		t.Fatal("Run returned with a hit still pending")
	default:
	}
	close(release)
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if n := e.fake.ListLen(e.tr.hitsKey(p.ID)); n != 1 {
		t.Errorf("%d hits stored at stop, want 1", n)
	}
	if got := e.in.IDs(); len(got) != 1 {
		t.Errorf("events %q, want the open", got)
	}
}

// TestPendingHitsStoreDown: hits answered first while the store is down
// are counted as lost, as those stored before their answer are.
func TestPendingHitsStoreDown(t *testing.T) {
	e := newEnv(t, nil, func(c *Config) { c.PendingHits = 8 })
	p := e.prepare(basicMessage)
	e.clk.Add(time.Hour)
	checkGIF(t, e.do("GET", path(p.PixelURL), "", nil), false) // caches the message
	if err := e.tr.later.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.fake.SetDown(true)
	for range 5 {
		checkGIF(t, e.do("GET", path(p.PixelURL), "", nil), false)
	}
	if err := e.tr.later.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := e.tr.statsNow(); s.HitsLost != 5 || s.HitsRecorded != 1 || s.AnsweredFirst != 6 || s.HitsPending != 0 {
		t.Errorf("stats %+v", s)
	}
}

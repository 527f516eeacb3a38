package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

// poisonStore fails every Lookup that names the poisoned identity, with an
// error that is not a store outage (as a corrupt record would).
type poisonStore struct {
	store.Store
	poison store.Identity
}

func (p poisonStore) Lookup(ctx context.Context, req store.LookupRequest) (store.LookupResult, error) {
	for _, id := range req.Identities {
		if id == p.poison {
			return store.LookupResult{}, errors.New("corrupt record")
		}
	}
	return p.Store.Lookup(ctx, req)
}

// A poison event is narrowed down from its batch, parked after
// MaxApplyFailures tries with its error, and does not hold back the rest of
// the log; a retry after the cause is gone applies it.
func TestPoisonEventIsParkedAndRetried(t *testing.T) {
	f := newFixture(t, nil)
	good := f.item("sales", "new", "good@client.test")
	bad := f.item("sales", "new", "bad@client.test")
	ps := poisonStore{Store: f.st, poison: store.Identity{Kind: store.IdentityEmail, Value: "bad@client.test"}}
	eng, err := New(Options{Store: ps, Pipelines: parsePipelines(t, testPipelines), Now: f.clock.now, DefaultRegion: "US"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()

	evBad := event("email.incoming", "bad@client.test")
	evGood := event("email.incoming", "good@client.test")
	if _, err := f.st.Append(f.ctx, evBad); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Append(f.ctx, evGood); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := eng.Wait(wctx, evGood.ID); err != nil {
		t.Fatalf("good event not applied: %v", err)
	}
	if err := eng.Wait(wctx, evBad.ID); err != nil {
		t.Fatalf("poison event not parked: %v", err)
	}
	if it, _ := f.st.GetItem(f.ctx, good.ID); it.Stage == good.Stage {
		t.Errorf("good item did not move (at %s)", it.Stage)
	}
	failed, err := f.st.ListFailed(f.ctx, 10)
	if err != nil || len(failed) != 1 || failed[0].Event.ID != evBad.ID {
		t.Fatalf("ListFailed = %+v, %v; want the poison event", failed, err)
	}
	if it, _ := f.st.GetItem(f.ctx, bad.ID); it.Stage != bad.Stage {
		t.Errorf("poisoned item moved to %s", it.Stage)
	}
	// The cause is gone (a plain store now); a retry applies it once.
	cancel()
	<-done
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	go func() { _ = f.eng.Run(ctx2) }()
	if err := f.st.RetryEvent(ctx2, evBad.ID); err != nil {
		t.Fatalf("RetryEvent: %v", err)
	}
	for ctx2.Err() == nil {
		if rec, _, _ := f.st.GetEvent(ctx2, evBad.ID); rec.Applied && !rec.Failed {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if it, _ := f.st.GetItem(f.ctx, bad.ID); it.Stage == bad.Stage {
		t.Errorf("retried event did not move its item (at %s)", it.Stage)
	}
}

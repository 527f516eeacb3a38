package telephony

import (
	"context"
	"sync"
)

// turns lets the callbacks of one call take their turn in this process,
// one at a time. A provider sends a call's callbacks in bursts (ringing
// and answered within milliseconds, a child leg's beside its parent's);
// folded at once, all but one would fold into the same cached state and
// lose the compare-and-set, then read the call and write again. Taken in
// turn, each finds the state its predecessor cached and writes once.
// Other processes sharing the store are not held by it: the
// compare-and-set stays what makes a write safe. Safe for concurrent use.
type turns struct {
	mu sync.Mutex
	m  map[string]*turn
}

// turn is one call's: a token (the buffered slot) and how many callers
// hold or wait for it, so that the entry goes with its last caller.
type turn struct {
	token   chan struct{}
	waiters int
}

func newTurns() *turns { return &turns{m: map[string]*turn{}} }

// take waits for call id's turn, or for ctx to end (its error returned),
// and returns the function that ends the turn.
func (t *turns) take(ctx context.Context, id string) (func(), error) {
	t.mu.Lock()
	tu := t.m[id]
	if tu == nil {
		tu = &turn{token: make(chan struct{}, 1)}
		t.m[id] = tu
	}
	tu.waiters++
	t.mu.Unlock()
	select {
	case tu.token <- struct{}{}:
	case <-ctx.Done():
		t.leave(id, tu)
		return nil, ctx.Err()
	}
	return func() {
		<-tu.token
		t.leave(id, tu)
	}, nil
}

func (t *turns) leave(id string, tu *turn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tu.waiters--; tu.waiters == 0 {
		delete(t.m, id)
	}
}

// len counts the calls with a caller holding or waiting for their turn.
func (t *turns) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

package telephony

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTurns: one caller of a call at a time, calls apart do not wait for
// each other, a caller whose context ends stops waiting, and no entry is
// left behind.
func TestTurns(t *testing.T) {
	tu := newTurns()
	ctx := context.Background()
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			done, err := tu.take(ctx, "CA1")
			if err != nil {
				t.Error(err)
				return
			}
			if n := inside.Add(1); n > most.Load() {
				most.Store(n)
			}
			time.Sleep(100 * time.Microsecond)
			inside.Add(-1)
			done()
		})
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("%d callers of one call at once, want 1", most.Load())
	}

	done, err := tu.take(ctx, "CA1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tu.take(ctx, "CA2") // another call: not held
	if err != nil {
		t.Fatal(err)
	}
	other()
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := tu.take(short, "CA1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting past the deadline: %v, want DeadlineExceeded", err)
	}
	done()
	if n := tu.len(); n != 0 {
		t.Errorf("%d entries left, want 0", n)
	}
}

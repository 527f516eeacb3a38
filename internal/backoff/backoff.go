// Package backoff is the one exponential backoff of the gateway: the
// engine's log readers and action dispatch, its action retries, and the
// IMAP connector's reconnects all wait with it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is the wait after failure n (1-based): d = lo · 2^(n-1), capped at
// hi, drawn uniformly from [d/2, d) with rnd (a float in [0, 1)), so that
// waiters spread out but still wait longer after each failure.
func Delay(n int, lo, hi time.Duration, rnd func() float64) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(rnd()*float64(d/2))
}

// Backoff counts consecutive failures and yields the Delay after each. The
// zero value is not usable: make one with New. A Backoff is not safe for
// concurrent use; each loop keeps its own.
type Backoff struct {
	lo, hi time.Duration
	n      int
}

// New returns a Backoff whose delays double from lo up to hi.
func New(lo, hi time.Duration) *Backoff { return &Backoff{lo: lo, hi: max(hi, lo)} }

// Next counts one more failure and returns the wait before the next try.
func (b *Backoff) Next() time.Duration {
	if b.n < 64 {
		b.n++
	}
	return Delay(b.n, b.lo, b.hi, rand.Float64)
}

// Reset starts over after a success: the next delay is about lo again.
func (b *Backoff) Reset() { b.n = 0 }

// Sleep waits d or until ctx is done, whichever comes first, and reports
// whether the whole of d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

package backoff

import (
	"context"
	"testing"
	"time"
)

// The delay doubles with each failure up to the maximum and is spread over
// the upper half of that range.
func TestDelay(t *testing.T) {
	for _, tc := range []struct {
		n    int
		rnd  float64
		want time.Duration
	}{
		{1, 0, 500 * time.Millisecond}, {1, 0.999999, 999999500 * time.Nanosecond},
		{2, 0, time.Second}, {2, 0.5, 1500 * time.Millisecond},
		{3, 0, 2 * time.Second}, {8, 0, 5 * time.Second}, {30, 0.5, 7500 * time.Millisecond},
	} {
		got := Delay(tc.n, time.Second, 10*time.Second, func() float64 { return tc.rnd })
		if got != tc.want {
			t.Errorf("Delay(%d, rnd %v) = %v, want %v", tc.n, tc.rnd, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	for i, hi := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		hi *= time.Millisecond
		if d := b.Next(); d < hi/2 || d >= hi {
			t.Errorf("delay %d = %v, want in [%v, %v)", i+1, d, hi/2, hi)
		}
	}
	b.Reset()
	if d := b.Next(); d >= 100*time.Millisecond {
		t.Errorf("after Reset: %v, want < 100ms", d)
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep without cancel reported false")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep on a done context reported true")
	}
}

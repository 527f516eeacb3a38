package connectors

import (
	"testing"
	"time"
)

func TestWarnLimiter(t *testing.T) {
	var l WarnLimiter
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if ok, q := l.Allow(t0); !ok || q != 0 {
		t.Fatalf("first warning: %v, %d quieted; want through, 0", ok, q)
	}
	for i := range 3 {
		if ok, _ := l.Allow(t0.Add(time.Duration(i+1) * time.Second)); ok {
			t.Fatalf("warning %d within WarnEvery went through", i+2)
		}
	}
	if ok, q := l.Allow(t0.Add(WarnEvery)); !ok || q != 3 {
		t.Fatalf("after WarnEvery: %v, %d quieted; want through, 3", ok, q)
	}
	if ok, _ := l.Allow(t0.Add(WarnEvery + time.Second)); ok {
		t.Fatal("the window starts again at the last warning")
	}
}

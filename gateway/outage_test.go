package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/store"
)

// A store outage is one warning, reminders while it lasts and one
// "store recovered" line; the warnings it causes go to debug, other
// warnings and errors are untouched, and the next outage is reported again.
func TestOutageLogRateLimited(t *testing.T) {
	buf := &lockedBuffer{}
	base := slog.New(slog.NewJSONHandler(buf, nil)) // info
	o := newOutageLog(base, time.Now)
	o.probe, o.remind = 5*time.Millisecond, 40*time.Millisecond
	var up atomic.Bool
	o.ping = func(context.Context) error {
		if up.Load() {
			return nil
		}
		return fmt.Errorf("ping: %w", store.ErrUnavailable)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.run(ctx) }()
	defer func() { cancel(); <-done }()

	log := slog.New(o.wrap(base.Handler())).With("component", "engine")
	down := fmt.Errorf("redis: read log: %w", store.ErrUnavailable)
	for range 30 {
		log.Warn("read log failed", "err", down)
	}
	log.Warn("move refused", "reason", "not a store error")
	log.Error("event parked as failed", "err", down)
	waitRecord(t, buf, "store still unavailable", nil)
	up.Store(true)
	rec := waitRecord(t, buf, "store recovered", nil)
	if rec["warnings_at_debug"] != float64(30) || rec["level"] != "INFO" {
		t.Errorf("recovered line %v", rec)
	}
	count := func() map[string]int {
		n := map[string]int{}
		for _, r := range buf.records(t) {
			n[r["msg"].(string)]++
		}
		return n
	}
	n := count()
	if n["read log failed"] != 0 || n["move refused"] != 1 || n["event parked as failed"] != 1 || n["store recovered"] != 1 ||
		n["store unavailable: the warnings it causes are logged at debug until it recovers"] != 1 {
		t.Errorf("records %v:\n%s", n, buf.b.String())
	}

	up.Store(false)
	log.Warn("claim actions failed", "err", down)
	up.Store(true)
	waitRecord(t, buf, "store recovered", func(r map[string]any) bool { return r["warnings_at_debug"] == float64(1) })
	if n := count(); n["store unavailable: the warnings it causes are logged at debug until it recovers"] != 2 {
		t.Errorf("second outage not reported: %v", n)
	}
}

// With debug on, the warnings of an outage are still there, at debug.
func TestOutageLogKeepsDebug(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := newOutageLog(base, time.Now)
	slog.New(o.wrap(base.Handler())).Warn("read log failed", "err", fmt.Errorf("x: %w", store.ErrUnavailable))
	if !strings.Contains(buf.String(), `"level":"DEBUG","msg":"read log failed"`) {
		t.Errorf("log:\n%s", buf.String())
	}
}

// Redis stopped for a few seconds under a running gateway: the log shows
// one warning for the outage (not several a second) and one "store
// recovered" line once Redis answers again.
func TestRedisOutageLog(t *testing.T) {
	srv := redisserver.Start(t)
	if !srv.Real() {
		t.Skip("needs a real redis-server: miniredis's blocking reads do not answer after a restart")
	}
	src := strings.Replace(testConfig, "STORE", "{driver: redis, url: "+srv.URL()+", prefix: outage}", 1)
	_, buf := startLogged(t, src, nil)
	waitRecord(t, buf, "stagegate listening", nil)
	srv.Stop()
	time.Sleep(3 * time.Second)
	srv.Start()
	waitRecordFor(t, buf, 15*time.Second, "store recovered", nil)
	var warns []string
	for _, r := range buf.records(t) {
		if r["level"] == "WARN" {
			warns = append(warns, fmt.Sprint(r["msg"], " ", r["err"]))
		}
	}
	if len(warns) > 2 {
		t.Errorf("%d warnings for a 3 s outage:\n%s", len(warns), strings.Join(warns, "\n"))
	}
}

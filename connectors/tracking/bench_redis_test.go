package tracking

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/redis"
)

// storeIntake appends events to a store's durable log, as the gateway's
// intake does.
type storeIntake struct{ st store.Store }

func (s storeIntake) Submit(ctx context.Context, ev *normalize.Event) (connectors.Result, error) {
	res, err := s.st.Append(ctx, ev)
	return connectors.Result{EventID: ev.ID, Duplicate: res.Duplicate}, err
}

func (storeIntake) Reject(string, string) {}

// BenchmarkRedisPixel and BenchmarkRedisClick: every hit durably recorded
// in Redis (the redis driver's Records and log) before the answer.
func BenchmarkRedisPixel(b *testing.B) { benchRedis(b, false) }

func BenchmarkRedisClick(b *testing.B) { benchRedis(b, true) }

func benchRedis(b *testing.B, click bool) {
	srv := redisserver.Start(b)
	st, err := redis.Open(context.Background(), store.Config{Driver: "redis", URL: srv.URL(), Prefix: "bench", DedupWindow: time.Hour}, redis.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	tr, pixel, clickTok := benchTracker(b, st, storeIntake{st})
	b.SetParallelism(64 / max(1, runtime.GOMAXPROCS(0))) // 64 requests in flight, as wrk -c 64
	if click {
		runHandler(b, tr.serveClick, clickTok)
	} else {
		runHandler(b, tr.servePixel, pixel)
	}
	if s := tr.statsNow(); s.HitsLost > 0 || s.EventsLost > 0 {
		b.Fatalf("lost hits: %+v", s)
	}
}

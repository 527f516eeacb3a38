package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/store"
)

// A gateway started while Redis is down does not give up: it serves, with
// /readyz failing and input refused with 503, and once Redis answers it is
// ready and events are accepted and applied, with no restart.
func TestRedisDownAtStart(t *testing.T) {
	srv := redisserver.Start(t)
	if !srv.Real() {
		t.Skip("needs a real redis-server (miniredis stands in): skipped")
	}
	srv.Stop()
	tg := startGateway(t, fmt.Sprintf("{driver: redis, url: %q, prefix: %q}", srv.URL(), "gwdown"+randomID()))
	if code := tg.call("GET", "/readyz", nil, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz while Redis is down: %d", code)
	}
	if code := tg.call("GET", "/healthz", nil, nil); code != http.StatusOK {
		t.Fatalf("healthz while Redis is down: %d", code)
	}
	ev := map[string]any{"id": "down-1", "type": "crm.invoice_paid", "subject": map[string]any{"email": "ann@client.test"}}
	if code := tg.call("POST", "/api/v1/events", ev, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("event while Redis is down: %d", code)
	}

	srv.Start()
	deadline := time.Now().Add(15 * time.Second)
	for tg.call("GET", "/readyz", nil, nil) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("not ready 15s after Redis came up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out struct {
		Applied bool `json:"applied"`
	}
	if code := tg.call("POST", "/api/v1/events?wait=10s", ev, &out); code != http.StatusOK || !out.Applied {
		t.Fatalf("event after Redis came up: %d %+v", code, out)
	}
}

// With store.fail_fast, a gateway that cannot reach Redis at start-up
// fails at once (the process exits 1) instead of waiting for it.
func TestRedisDownAtStartFailFast(t *testing.T) {
	srv := redisserver.Start(t)
	srv.Stop()
	src := strings.Replace(testConfig, "STORE",
		fmt.Sprintf("{driver: redis, url: %q, prefix: gwfast, fail_fast: true}", srv.URL()), 1)
	env := map[string]string{"TOKEN": testToken, "SECRET": testWebhookSecret}
	cfg, err := config.Parse([]byte(src), Kinds, ActionTypes(), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	g, err := New(context.Background(), cfg, Options{Instance: "test"})
	if err == nil {
		g.Close()
		t.Fatal("started without Redis despite fail_fast")
	}
	if !errors.Is(err, store.ErrUnavailable) || time.Since(start) > 10*time.Second {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
}

// A Redis that answers but refuses the gateway (here: a password it does
// not have) is a configuration error: start-up fails without waiting.
func TestRedisRefusesAtStart(t *testing.T) {
	srv := redisserver.Start(t)
	if !srv.Real() {
		t.Skip("needs a real redis-server (miniredis stands in): skipped")
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	if err := rdb.ConfigSet(t.Context(), "requirepass", "right-password").Err(); err != nil {
		t.Fatal(err)
	}
	rdb.Close()
	src := strings.Replace(testConfig, "STORE",
		fmt.Sprintf("{driver: redis, url: %q, prefix: gwrefused}", "redis://:wrong-password@"+srv.Addr()+"/0"), 1)
	env := map[string]string{"TOKEN": testToken, "SECRET": testWebhookSecret}
	cfg, err := config.Parse([]byte(src), Kinds, ActionTypes(), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(context.Background(), cfg, Options{Instance: "test"})
	if err == nil {
		g.Close()
		t.Fatal("started on a Redis that refuses the password")
	}
	t.Logf("start-up error: %v", err)
}

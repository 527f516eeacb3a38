package redisserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
)

func client(t *testing.T, s *redisserver.Server) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// checkSurvives writes a key, runs bounce, and expects the key back.
func checkSurvives(t *testing.T, s *redisserver.Server, c *redis.Client, key string, bounce func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	bounce()
	got, err := c.Get(ctx, key).Result()
	if err != nil || got != "v" {
		t.Fatalf("after bounce: get %q = %q, %v", key, got, err)
	}
}

// TestRealServer checks that data survives Restart, Stop/Start and Kill/Start.
func TestRealServer(t *testing.T) {
	s := redisserver.Start(t)
	if !s.Real() {
		t.Skip("redis-server not installed")
	}
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/0") {
		t.Fatalf("URL = %q", s.URL())
	}
	c := client(t, s)
	ctx := context.Background()
	checkSurvives(t, s, c, "restart", s.Restart)
	checkSurvives(t, s, c, "stop-start", func() {
		s.Stop()
		if err := c.Ping(ctx).Err(); err == nil {
			t.Fatal("ping answered after Stop")
		}
		s.Start()
	})
	// A killed server recovers what the AOF holds: wait past the 1s fsync.
	checkSurvives(t, s, c, "kill", func() {
		time.Sleep(1500 * time.Millisecond)
		s.Kill()
		s.Start()
	})
	s.Start() // no-op while running
}

// TestMiniredisFallback hides redis-server and expects the miniredis stand-in.
func TestMiniredisFallback(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	s := redisserver.Start(t)
	if s.Real() {
		t.Fatal("Real() with an empty PATH")
	}
	c := client(t, s)
	checkSurvives(t, s, c, "restart", s.Restart)
	s.Start() // no-op while running
	checkSurvives(t, s, c, "stop-start", func() { s.Stop(); s.Start() })
}

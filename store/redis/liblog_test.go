package redis

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// go-redis's failed dials (one per connection attempt while Redis is down)
// go to debug; its other messages stay warnings.
func TestLibLoggerDialFailuresAtDebug(t *testing.T) {
	var buf bytes.Buffer
	l := libLogger{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 2, "connection refused")
	l.Printf(context.Background(), "redis: discarding bad PubSub connection: %v", "EOF")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=DEBUG") || !strings.Contains(lines[0], "failed to dial after 2 attempts") ||
		!strings.Contains(lines[1], "level=WARN") {
		t.Errorf("log:\n%s", buf.String())
	}
}

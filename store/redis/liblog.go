package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// libLogger sends go-redis's own messages (reconnects, pool errors) to slog.
type libLogger struct{ log *slog.Logger }

// Printf logs at warn, except a failed dial: go-redis reports one for each
// connection attempt while Redis is down, many a second, and the failed
// store call already surfaces as store.ErrUnavailable, whose outage the
// gateway reports once. Those go to debug.
func (l libLogger) Printf(ctx context.Context, format string, v ...any) {
	if strings.Contains(format, "failed to dial") {
		l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
		return
	}
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// RouteLibraryLogs makes go-redis log through logger instead of writing to
// stderr. go-redis keeps its logger in a package variable, so only the
// binary's main calls this, once, before opening a store.
func RouteLibraryLogs(logger *slog.Logger) {
	goredis.SetLogger(libLogger{log: logger.With("component", "go-redis")})
}

package redis

import (
	"context"
	"fmt"
	"log/slog"

	goredis "github.com/redis/go-redis/v9"
)

// libLogger sends go-redis's own messages (reconnects, pool errors) to slog.
type libLogger struct{ log *slog.Logger }

func (l libLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// RouteLibraryLogs makes go-redis log through logger instead of writing to
// stderr. go-redis keeps its logger in a package variable, so only the
// binary's main calls this, once, before opening a store.
func RouteLibraryLogs(logger *slog.Logger) {
	goredis.SetLogger(libLogger{log: logger.With("component", "go-redis")})
}

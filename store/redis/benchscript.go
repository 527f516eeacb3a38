package redis

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// LoadAppendScript loads the store's append script — what the intake makes
// Redis do for each new event, in one EVALSHA — into the server behind c
// and returns its SHA1, so that a benchmark (cmd/sgbench redis-compare) can
// run exactly the store's per-event work with redis-benchmark instead of a
// copy of it. KEYS: dedup, event record, log stream; ARGV: window (ms),
// event id, event JSON.
func LoadAppendScript(ctx context.Context, c redis.Scripter) (string, error) {
	return appendScript.Load(ctx, c).Result()
}

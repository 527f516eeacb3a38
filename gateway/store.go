package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
	"github.com/stagegate/stagegate/store/redis"
)

// openStore opens the configured driver.
func openStore(ctx context.Context, cfg store.Config, log *slog.Logger, now func() time.Time) (store.Store, error) {
	switch cfg.Driver {
	case "", "bolt":
		st, err := bolt.Open(cfg, bolt.Options{Logger: log, Now: now})
		if err != nil {
			return nil, fmt.Errorf("gateway: open bolt store %s: %w", cfg.Path, err)
		}
		return st, nil
	case "redis":
		st, err := redis.Open(ctx, cfg, redis.Options{Logger: log, Now: now, WaitForRedis: !cfg.FailFast})
		if err != nil {
			return nil, fmt.Errorf("gateway: open redis store: %w", err)
		}
		return st, nil
	default:
		return nil, fmt.Errorf("gateway: unknown store driver %q", cfg.Driver)
	}
}

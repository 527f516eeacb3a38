package redis

import (
	"context"
	"time"
)

// PruneConsumers exposes the pruning of idle consumers to the tests.
func (s *Store) PruneConsumers(ctx context.Context, self string, idle time.Duration) {
	s.pruneConsumers(ctx, self, idle)
}

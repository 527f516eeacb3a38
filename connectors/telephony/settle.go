package telephony

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stagegate/stagegate/store"
)

// The sweeper takes the missed decisions that fall due while no callback
// of the call arrives. A call whose decision waits is scheduled in a
// bucket list (telephony/<name>/settle/<n>, one list per SettleBucket of
// due times, element id = call id); the sweeper walks the buckets that are
// wholly in the past, folds each call with the clock, and records the last
// bucket done in telephony/<name>/sweep with compare-and-set. Several
// gateways sharing a store may sweep at once: they fold the same calls and
// submit the same event ids, which are duplicates.
const (
	// SettleBucket is the width of a bucket of due times.
	SettleBucket = 5 * time.Second
	// SweepEvery is how often the sweeper looks for due buckets.
	SweepEvery = time.Second
	// maxSweepBuckets bounds one sweep (an hour of buckets) so that catching
	// up after an outage happens in steps.
	maxSweepBuckets = int64(time.Hour / SettleBucket)
	// maxCatchUp is how far back the sweeper goes after an outage.
	maxCatchUp = int64(24 * time.Hour / SettleBucket)
	// settlePage is how many calls of a bucket are read at once.
	settlePage = 100
)

func bucketOf(t time.Time) int64 { return t.Unix() / int64(SettleBucket/time.Second) }

func (c *Connector) settleKey(b int64) string {
	return "telephony/" + c.Name() + "/settle/" + strconv.FormatInt(b, 10)
}
func (c *Connector) sweepKey() string { return "telephony/" + c.Name() + "/sweep" }

// schedule puts call root in the bucket of due, and at least in the bucket
// after now's, so that a bucket being swept (or a clock a little behind
// another gateway's) never swallows it. Scheduling twice is a no-op.
func (c *Connector) schedule(ctx context.Context, root string, due, now time.Time) error {
	b := max(bucketOf(due), bucketOf(now)+1)
	_, _, err := c.records.AppendList(ctx, c.settleKey(b), root, []byte(due.UTC().Format(time.RFC3339Nano)), c.retention)
	if err != nil {
		return fmt.Errorf("telephony %s: call %s: schedule: %w", c.Name(), root, err)
	}
	return nil
}

// Run sweeps every SweepEvery until ctx is done. Failures (the store is
// down) are logged and retried on the next tick.
func (c *Connector) Run(ctx context.Context) error {
	if err := c.initCursor(ctx); err != nil {
		c.Logger().Warn("sweep cursor not initialized; the first sweep catches up", "err", err)
	}
	t := time.NewTicker(SweepEvery)
	defer t.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := c.sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			c.Logger().Warn("sweep failed; retrying every tick", "err", err)
			failing = true
		case err == nil && failing:
			c.Logger().Info("sweep recovered")
			failing = false
		}
	}
}

// sweep settles the calls of every bucket wholly in the past since the
// last one done, at most maxSweepBuckets of them.
func (c *Connector) sweep(ctx context.Context) error {
	now := c.Now()
	last := bucketOf(now) - 1
	done, version, err := c.sweepCursor(ctx, last)
	if err != nil {
		return err
	}
	if done < last-maxCatchUp {
		c.Logger().Warn("sweeper was stopped longer than it catches up; older missed decisions wait for a callback",
			"buckets_skipped", last-maxCatchUp-done)
		done = last - maxCatchUp
	}
	for b := done + 1; b <= last && b <= done+maxSweepBuckets; b++ {
		if err := c.settleBucket(ctx, b, now); err != nil {
			return err
		}
		version, err = c.records.PutRecord(ctx, c.sweepKey(), []byte(strconv.FormatInt(b, 10)), version, 0)
		if errors.Is(err, store.ErrConflict) {
			return nil // another gateway swept further; go on from its cursor next tick
		}
		if err != nil {
			return fmt.Errorf("telephony %s: sweep cursor: %w", c.Name(), err)
		}
	}
	return nil
}

// initCursor writes the sweep cursor of a connector that has none (its
// first start on this store) just before the buckets that calls scheduled
// from now on use, so that the first sweep has nothing to catch up.
func (c *Connector) initCursor(ctx context.Context) error {
	_, err := c.records.GetRecord(ctx, c.sweepKey())
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	b := bucketOf(c.Now()) - 2
	_, err = c.records.PutRecord(ctx, c.sweepKey(), []byte(strconv.FormatInt(b, 10)), 0, 0)
	if errors.Is(err, store.ErrConflict) {
		return nil // another gateway wrote it
	}
	return err
}

// sweepCursor returns the last bucket swept and its record version. With
// no cursor (initCursor failed) it goes back as far as it catches up.
func (c *Connector) sweepCursor(ctx context.Context, last int64) (int64, int64, error) {
	rec, err := c.records.GetRecord(ctx, c.sweepKey())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return last - maxCatchUp, 0, nil
	case err != nil:
		return 0, 0, fmt.Errorf("telephony %s: sweep cursor: %w", c.Name(), err)
	}
	done, err := strconv.ParseInt(string(rec.Value), 10, 64)
	if err != nil {
		return last - maxCatchUp, rec.Version, nil // unreadable: catch up
	}
	return done, rec.Version, nil
}

// settleBucket folds each call of bucket b with the clock at now.
func (c *Connector) settleBucket(ctx context.Context, b int64, now time.Time) error {
	var after int64
	for {
		elems, err := c.records.ReadList(ctx, c.settleKey(b), after, settlePage)
		if err != nil {
			return fmt.Errorf("telephony %s: settle bucket %d: %w", c.Name(), b, err)
		}
		for _, e := range elems {
			if err := c.settle(ctx, e.ID, now); err != nil {
				return err
			}
			after = e.Seq
		}
		if len(elems) < settlePage {
			return nil
		}
	}
}

// settle folds the clock into call root in the call's turn, so that the
// state it caches cannot overwrite a newer one a callback cached meanwhile.
func (c *Connector) settle(ctx context.Context, root string, now time.Time) error {
	done, err := c.takeTurn(ctx, root)
	if err != nil {
		return err
	}
	defer done()
	_, _, _, err = c.apply(ctx, root, nil, now, nil)
	return err
}

package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/internal/group"
	"github.com/stagegate/stagegate/store"
)

// maxBatch bounds how many writes share one transaction.
const maxBatch = 1000

// writeReq is one caller's write, waiting for its group to commit.
type writeReq struct {
	fn   func(tx *bbolt.Tx) error
	err  error      // fn's result in the last run
	done chan error // buffered: the committer never blocks on it
}

// committer is the group commit: one goroutine takes every write queued
// while the previous group was committing, runs them all in one bbolt
// transaction and commits once, so one fsync serves the whole group. An
// idle committer commits a single write at once, so latency stays at one
// fsync.
type committer struct {
	db      *bbolt.DB
	log     *slog.Logger
	reqs    chan *writeReq
	stopped chan struct{}
	commits atomic.Int64 // successful commits, for tests and benchmarks

	// committed, if not nil, runs in the committer's goroutine after
	// each successful commit, before the writers are answered.
	committed func()

	mu     sync.RWMutex // held for reading while sending on reqs
	closed bool
}

func newCommitter(db *bbolt.DB, log *slog.Logger, committed func()) *committer {
	c := &committer{
		db:        db,
		log:       log,
		reqs:      make(chan *writeReq, maxBatch),
		stopped:   make(chan struct{}),
		committed: committed,
	}
	go c.run()
	return c
}

// cleanError marks an error returned by a write function before it wrote
// anything (a refused precondition such as ErrConflict). Such a failure
// needs no rollback: the rest of the group goes on in the same transaction.
type cleanError struct{ err error }

func (e cleanError) Error() string { return e.err.Error() }
func (e cleanError) Unwrap() error { return e.err }

// clean wraps err as a failure that left the transaction untouched.
func clean(err error) error { return cleanError{err} }

// do queues fn and waits for the commit of its group. fn may run more than
// once (when a neighbour fails the group is rerun without it), so it must
// reset any result it reports through variables it captures. Once queued,
// do waits for the answer even if ctx ends, so the caller always learns
// whether its write happened.
func (c *committer) do(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	r := &writeReq{fn: fn, done: make(chan error, 1)}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return errClosed
	}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		c.mu.RUnlock()
		return ctx.Err()
	}
	c.mu.RUnlock()
	return <-r.done
}

// close stops taking writes, commits those already queued and waits for
// the committer to end.
func (c *committer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.mu.Unlock()
	<-c.stopped
}

func (c *committer) run() {
	defer close(c.stopped)
	batch := make([]*writeReq, 0, maxBatch)
	for r := range c.reqs {
		batch = group.Collect(c.reqs, r, maxBatch, batch)
		c.commit(batch)
		clear(batch)
	}
}

// commit runs the group in one transaction. A function that fails after
// writing aborts the transaction; its caller gets the error and the group
// is rerun without it, so one bad write cannot fail its neighbours.
func (c *committer) commit(group []*writeReq) {
	pending := slices.Clone(group)
	for len(pending) > 0 {
		bad := -1
		err := c.db.Update(func(tx *bbolt.Tx) error {
			for i, r := range pending {
				r.err = r.fn(tx)
				var ce cleanError
				if errors.As(r.err, &ce) {
					r.err = ce.err
					continue
				}
				if r.err != nil {
					bad = i
					return r.err
				}
			}
			return nil
		})
		if bad >= 0 {
			pending[bad].done <- pending[bad].err
			pending = slices.Delete(pending, bad, bad+1)
			continue
		}
		if err != nil {
			// The commit itself failed: nothing of the group is durable.
			c.log.Error("bolt: commit failed", "writes", len(pending), "err", err)
			err = fmt.Errorf("commit: %w: %w", store.ErrUnavailable, err)
			for _, r := range pending {
				r.done <- err
			}
			return
		}
		c.commits.Add(1)
		if c.committed != nil {
			c.committed()
		}
		for _, r := range pending {
			r.done <- r.err
		}
		return
	}
}

package redis

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/internal/group"
)

// The intake's group commit on Redis. Every Append hands its script call
// to a small pool of appenders; an appender takes every call queued while
// its previous pipeline was on the wire and sends them all as one pipeline,
// so N concurrent Appends cost Redis one read and one write instead of N
// each, and the gateway one round trip instead of N. An idle appender sends
// a single call at once, so latency stays at one round trip.
const (
	maxAppendGroup = 256 // calls in one pipeline
	appendWorkers  = 2   // pipelines on the wire at once
)

// appendReq is one Append waiting for its group.
type appendReq struct {
	keys     []string
	args     []any
	deadline time.Time // zero: none
	seq      string
	dup      bool
	err      error
	done     chan struct{}
}

// startAppenders starts the appenders; Close stops them (closeAppenders).
func (s *Store) startAppenders() {
	s.appends = make(chan *appendReq, maxAppendGroup*appendWorkers)
	s.appendersDone = make(chan struct{}, appendWorkers)
	for range appendWorkers {
		go s.runAppends()
	}
}

// closeAppenders stops the appenders once their queue is empty. The caller
// holds closeMu exclusively, so no Append is between its check of
// appendsClosed and its send.
func (s *Store) closeAppenders() {
	if s.appendsClosed {
		return
	}
	s.appendsClosed = true
	close(s.appends)
	for range appendWorkers {
		<-s.appendersDone
	}
}

// groupAppend queues one append script call and waits for its group's
// pipeline. The caller holds s.hold().
func (s *Store) groupAppend(ctx context.Context, keys []string, args ...any) (seq string, dup bool, err error) {
	if s.appendsClosed {
		return "", false, redis.ErrClosed
	}
	r := &appendReq{keys: keys, args: args, done: make(chan struct{})}
	if d, ok := ctx.Deadline(); ok {
		r.deadline = d
	}
	s.appends <- r
	<-r.done // bounded: the group's pipeline honours r.deadline
	return r.seq, r.dup, r.err
}

func (s *Store) runAppends() {
	defer func() { s.appendersDone <- struct{}{} }()
	g := make([]*appendReq, 0, maxAppendGroup)
	for r := range s.appends {
		g = group.Collect(s.appends, r, maxAppendGroup, g)
		s.sendAppends(g)
		clear(g)
	}
}

// sendAppends sends group as one pipeline, with the latest deadline of its
// calls (none if one of them has none), and hands each call its result.
func (s *Store) sendAppends(group []*appendReq) {
	ctx := context.Background()
	var latest time.Time
	for _, r := range group {
		if r.deadline.IsZero() {
			latest = time.Time{}
			break
		}
		if r.deadline.After(latest) {
			latest = r.deadline
		}
	}
	if !latest.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	cmds := make([]*redis.Cmd, len(group))
	err := s.pipelinedScripts(ctx, func(p redis.Pipeliner) error {
		for i, r := range group {
			cmds[i] = appendScript.Run(ctx, p, r.keys, r.args...)
		}
		return nil
	})
	for i, r := range group {
		seq, cerr := cmds[i].Text()
		switch {
		case errors.Is(cerr, redis.Nil):
			r.dup = true
		case cerr != nil:
			r.err = cerr
		case seq == "":
			r.err = cmp.Or(err, errors.New("empty reply"))
		default:
			r.seq = seq
		}
		close(r.done)
	}
}

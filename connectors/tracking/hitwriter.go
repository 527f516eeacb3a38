package tracking

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/stagegate/stagegate/internal/group"
	"github.com/stagegate/stagegate/store"
)

// maxHitGroup bounds the hits written together; hitWriters groups are
// written at the same time at most (a Redis round trip or a bolt commit
// in flight does not hold the next group back).
const (
	maxHitGroup = 256
	hitWriters  = 4
)

// hitWriter writes the hits of concurrent requests in groups: one
// store.AppendLists (one bolt commit, one Redis pipeline) per group, each
// hit durable before its request answers. There is no goroutine of its
// own: a request that finds fewer than hitWriters writers at work becomes
// one (holding a token), serves the queue with group.Collect until its own hit
// is written, and hands over; a waiting request takes the token next.
type hitWriter struct {
	records store.Records
	timeout time.Duration
	reqs    chan *hitReq
	token   chan struct{}
	serves  atomic.Int64 // serve calls (a test checks that a waiting hit does not spin)
}

// hitReq is one hit waiting for its group.
type hitReq struct {
	a    store.ListAppend
	done chan store.ListAppendResult // buffered: the writer never blocks
}

func newHitWriter(records store.Records, timeout time.Duration) *hitWriter {
	return &hitWriter{records: records, timeout: timeout,
		reqs: make(chan *hitReq, 4*maxHitGroup), token: make(chan struct{}, hitWriters)}
}

// append stores a (an element of a hit list) in the next group and returns
// its result. A full queue waits at most until ctx ends; once queued, the
// hit's outcome is always waited for (each group is bounded by timeout).
func (w *hitWriter) append(ctx context.Context, a store.ListAppend) store.ListAppendResult {
	r := &hitReq{a: a, done: make(chan store.ListAppendResult, 1)}
	select {
	case w.reqs <- r:
	case <-ctx.Done():
		return store.ListAppendResult{Err: ctx.Err()}
	}
	return w.wait(r)
}

// wait returns the result of r, a queued hit: written by the writer this
// request becomes, or by another that took r into its group.
func (w *hitWriter) wait(r *hitReq) store.ListAppendResult {
	select {
	case res := <-r.done:
		return res
	case w.token <- struct{}{}:
		w.serve(r)
		<-w.token
		// r is written, or in a group another writer took from the queue
		// and is writing: waiting for it is all that is left. (Taking the
		// token again here spun while that group was on its way.)
		return <-r.done
	}
}

// serve writes groups from the queue until r is written or the queue is
// empty (r is then in a group another writer is writing).
func (w *hitWriter) serve(r *hitReq) {
	w.serves.Add(1)
	var (
		g  []*hitReq
		as []store.ListAppend // made once there is a group: most calls find none
	)
	for len(r.done) == 0 {
		var first *hitReq
		select {
		case first = <-w.reqs:
		default:
			return
		}
		g = group.Collect(w.reqs, first, maxHitGroup, g)
		if as == nil {
			as = make([]store.ListAppend, 0, len(g))
		}
		as = as[:0]
		for _, q := range g {
			as = append(as, q.a)
		}
		w.write(g, as)
		clear(g)
	}
}

// write stores one group and answers each of its requests.
func (w *hitWriter) write(g []*hitReq, as []store.ListAppend) {
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	res, err := store.AppendLists(ctx, w.records, as)
	for i, q := range g {
		switch {
		case err != nil:
			q.done <- store.ListAppendResult{Err: err}
		case i < len(res):
			q.done <- res[i]
		default:
			q.done <- store.ListAppendResult{Err: store.ErrUnavailable}
		}
	}
}

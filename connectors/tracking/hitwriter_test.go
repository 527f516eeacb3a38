package tracking

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

// groupCounter counts the AppendLists calls and appends of a store, and
// can slow or fail them.
type groupCounter struct {
	store.Records
	calls, appends atomic.Int64
	delay          time.Duration
	fail           error
}

func (g *groupCounter) AppendLists(ctx context.Context, as []store.ListAppend) ([]store.ListAppendResult, error) {
	g.calls.Add(1)
	g.appends.Add(int64(len(as)))
	time.Sleep(g.delay)
	if g.fail != nil {
		return nil, g.fail
	}
	return store.AppendLists(ctx, g.Records, as) // the wrapped driver's own
}

// TestHitWriterGroups: 64 concurrent hits on the real stores are all
// stored once each, with fewer store writes than hits, and every caller
// gets its own element's sequence.
func TestHitWriterGroups(t *testing.T) {
	for name, open := range realStores() {
		t.Run(name, func(t *testing.T) {
			rec := &groupCounter{Records: open(t, time.Now), delay: 5 * time.Millisecond}
			w := newHitWriter(rec, 5*time.Second)
			const n = 64
			seqs := make([]int64, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					res := w.append(t.Context(), store.ListAppend{Key: fmt.Sprintf("hits/%d", i%3), ID: fmt.Sprint("h", i), Value: []byte(fmt.Sprint(i))})
					if res.Err != nil {
						t.Errorf("hit %d: %v", i, res.Err)
					}
					seqs[i] = res.Seq
				})
			}
			wg.Wait()
			if got := rec.appends.Load(); got != n {
				t.Errorf("%d appends reached the store, want %d", got, n)
			}
			if c := rec.calls.Load(); c >= n || c < 1 {
				t.Errorf("%d store writes for %d concurrent hits: not grouped", c, n)
			}
			for k := range 3 {
				els, err := rec.ReadList(t.Context(), fmt.Sprintf("hits/%d", k), 0, 100)
				if err != nil {
					t.Fatal(err)
				}
				if len(els) != (n+2-k)/3 {
					t.Errorf("list %d: %d elements, want %d", k, len(els), (n+2-k)/3)
				}
				for _, el := range els {
					var i int
					fmt.Sscan(string(el.Value), &i)
					if el.ID != fmt.Sprint("h", i) || seqs[i] != el.Seq {
						t.Errorf("list %d: element %d is %s=%q; its caller got seq %d", k, el.Seq, el.ID, el.Value, seqs[i])
					}
				}
			}
		})
	}
}

// TestHitWriterFailure: a failed group write reaches every caller of the
// group as an error, and the next hits are written again.
func TestHitWriterFailure(t *testing.T) {
	rec := &groupCounter{Records: newFakeRecords(time.Now), fail: fmt.Errorf("boom: %w", store.ErrUnavailable)}
	w := newHitWriter(rec, time.Second)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 16 {
		wg.Go(func() {
			if res := w.append(t.Context(), store.ListAppend{Key: "hits/x", ID: fmt.Sprint(i), Value: []byte("v")}); errors.Is(res.Err, store.ErrUnavailable) {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 16 {
		t.Fatalf("%d of 16 callers saw the store failure", failed.Load())
	}
	rec.fail = nil
	if res := w.append(t.Context(), store.ListAppend{Key: "hits/x", ID: "after", Value: []byte("v")}); res.Err != nil || res.Seq != 1 {
		t.Fatalf("after the failure: %+v", res)
	}
}

// heldLists holds every AppendLists until release is closed, and says when
// the first one has begun.
type heldLists struct {
	store.Records
	begun   chan struct{}
	once    sync.Once
	release chan struct{}
}

func (h *heldLists) AppendLists(ctx context.Context, as []store.ListAppend) ([]store.ListAppendResult, error) {
	h.once.Do(func() { close(h.begun) })
	<-h.release
	return store.AppendLists(ctx, h.Records, as)
}

// TestHitWriterWaitDoesNotSpin: a hit another writer took into its group
// waits for that group's write; it used to take the free token again and
// again, finding the queue empty each time, for as long as the write took
// (a busy loop per waiting hit, for milliseconds on bolt).
func TestHitWriterWaitDoesNotSpin(t *testing.T) {
	rec := &heldLists{Records: newFakeRecords(time.Now), begun: make(chan struct{}), release: make(chan struct{})}
	w := newHitWriter(rec, 5*time.Second)
	// b is queued first, as by a request that has not begun waiting yet,
	// so the writer that a's request becomes takes both into one group.
	b := &hitReq{a: store.ListAppend{Key: "hits/b", ID: "b", Value: []byte("v")}, done: make(chan store.ListAppendResult, 1)}
	w.reqs <- b
	resA := make(chan store.ListAppendResult, 1)
	go func() { resA <- w.append(t.Context(), store.ListAppend{Key: "hits/a", ID: "a", Value: []byte("v")}) }()
	<-rec.begun
	resB := make(chan store.ListAppendResult, 1)
	go func() { resB <- w.wait(b) }()
	time.Sleep(50 * time.Millisecond) // the group's write is on its way
	close(rec.release)
	for name, ch := range map[string]chan store.ListAppendResult{"a": resA, "b": resB} {
		if res := <-ch; res.Err != nil || res.Seq != 1 {
			t.Errorf("hit %s: %+v, want stored at 1", name, res)
		}
	}
	// a's writer served once; b's waiter at most once (it found the queue
	// empty) and then waited.
	if n := w.serves.Load(); n > 2 {
		t.Errorf("%d serve calls for one group of two hits: the waiting hit spun on the token", n)
	}
}

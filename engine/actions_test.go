package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

// flowPipelines has a stage per trigger; every trigger may move back, so
// tests can move items around freely.
const flowPipelines = `
- id: flow
  stages:
    - id: a
      triggers: [{type: crm.to_a, allow_back: true}]
      actions: [{type: probe, name: probe-a}]
    - id: b
      triggers: [{type: crm.to_b, allow_back: true}]
      actions:
        - {type: probe, name: first}
        - {type: log, message: second}
    - id: c
      triggers: [{type: crm.to_c, allow_back: true}]
      actions: [{type: probe, name: late, after: 10m}]
    - id: d
      triggers: [{type: crm.to_d, allow_back: true}]
      actions: [{type: probe, name: late-anyway, after: 10m, skip_if_left: false}]
`

// probeRunner records the probe actions it runs and returns the queued
// errors in turn; log actions go to the real LogAction.
type probeRunner struct {
	log LogAction

	mu    sync.Mutex
	calls []ActionInput
	errs  []error
	block chan struct{} // when set, probe actions wait for it (or ctx)
}

func (p *probeRunner) Kinds() map[string]ActionKind {
	return map[string]ActionKind{"log": LogKind(), "probe": {}}
}

func (p *probeRunner) RunAction(ctx context.Context, in ActionInput) error {
	if in.Action.Type == "log" {
		return p.log.RunAction(ctx, in)
	}
	p.mu.Lock()
	p.calls = append(p.calls, in)
	var err error
	if len(p.errs) > 0 {
		err, p.errs = p.errs[0], p.errs[1:]
	}
	block := p.block
	p.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (p *probeRunner) ran() []ActionInput {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

func (p *probeRunner) fail(errs ...error) {
	p.mu.Lock()
	p.errs = append(p.errs, errs...)
	p.mu.Unlock()
}

// flowFixture is a fixture on flowPipelines with a probe runner.
func flowFixture(t *testing.T, o ActionOptions) (*fixture, *probeRunner) {
	t.Helper()
	c := newClock()
	st, err := bolt.Open(store.Config{Path: filepath.Join(t.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var ps []Pipeline
	if err := yaml.Unmarshal([]byte(flowPipelines), &ps); err != nil {
		t.Fatal(err)
	}
	p := &probeRunner{log: LogAction{Store: st}}
	if errs := ValidatePipelines(ps, p.Kinds()); len(errs) > 0 {
		t.Fatal(errs)
	}
	eng, err := New(Options{Store: st, Pipelines: ps, Now: c.now, Actions: p, ActionOptions: o})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, st: st, eng: eng, clock: c, ctx: context.Background()}, p
}

// outbox lists the item's outbox entries, oldest first (by index within
// one stage entry).
func (f *fixture) outbox(itemID string) []store.OutboxEntry {
	f.t.Helper()
	es, err := f.st.ListOutbox(f.ctx, store.OutboxFilter{ItemID: itemID})
	if err != nil {
		f.t.Fatal(err)
	}
	slices.SortStableFunc(es, func(a, b store.OutboxEntry) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return a.Index - b.Index
	})
	return es
}

// entryOn returns the item's first outbox entry for stage.
func (f *fixture) entryOn(itemID, stage string) store.OutboxEntry {
	f.t.Helper()
	for _, e := range f.outbox(itemID) {
		if e.Stage == stage {
			return e
		}
	}
	f.t.Fatalf("no outbox entry of %s for stage %s", itemID, stage)
	return store.OutboxEntry{}
}

func (f *fixture) entry(id string) store.OutboxEntry {
	f.t.Helper()
	e, err := f.st.GetOutbox(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// caused is an event of type typ for email caused by the action run id.
func caused(typ, email, id string) *normalize.Event {
	return event(typ, email, CauseAttr, id)
}

// The move and its outbox entries are one atomic step: after Apply the
// entries are there, keyed by item, stage entry and index, and nothing has
// run yet; the worker then runs them in order, once.
func TestActionsQueuedWithMove(t *testing.T) {
	f, p := flowFixture(t, ActionOptions{})
	it := f.item("flow", "a", "ann@client.test")
	ev := event("crm.to_b", "ann@client.test")
	f.apply(ev)
	es := f.outbox(it.ID)
	if len(es) != 2 {
		t.Fatalf("outbox after move = %d entries, want 2", len(es))
	}
	for i, e := range es {
		key := fmt.Sprintf("%s/ev:%s/%d", it.ID, ev.ID, i)
		if e.Key != key || e.ID != ActionID(key) || e.Status != store.OutboxPending || e.Stage != "b" || e.Index != i || !e.Due.Equal(t0) {
			t.Errorf("entry %d = %+v, want key %s pending at %v", i, e, key, t0)
		}
	}
	if len(p.ran()) != 0 {
		t.Fatal("an action ran before the worker")
	}
	f.deliver(2)
	calls := p.ran()
	if len(calls) != 1 {
		t.Fatalf("probe ran %d times, want 1", len(calls))
	}
	in := calls[0]
	if in.Key() != es[0].Key || in.ID != es[0].ID || in.Attempt != 1 || in.From != "a" || in.Stage.ID != "b" ||
		in.Event == nil || in.Event.ID != ev.ID || in.Entry.ID != "ev:"+ev.ID {
		t.Fatalf("action input = %+v", in)
	}
	d := in.Data
	if d.ID != es[0].ID || d.IdempotencyKey != es[0].Key || d.Type != "stage.entered" || d.Stage.ID != "b" ||
		d.PreviousStage != "a" || d.Actor != "bob" || d.Item.ID != it.ID || d.Contact.ID != it.ContactID ||
		d.Event.ID != ev.ID || d.Action.Name != "first" || d.Manual || d.ChainDepth != 0 {
		t.Fatalf("action data = %+v", d)
	}
	for _, e := range f.outbox(it.ID) {
		if e.Status != store.OutboxDone {
			t.Errorf("entry %d is %s after the run, want done", e.Index, e.Status)
		}
	}
	// Applying the event again queues nothing more.
	f.apply(ev)
	if n := len(f.outbox(it.ID)); n != 2 {
		t.Fatalf("outbox after a replay = %d entries, want 2", n)
	}
	f.deliver(0)
}

// A failed attempt is retried with the same key after a growing, jittered
// delay; the last attempt fails the action for good, visibly, and a retry
// through the API runs it again.
func TestActionRetries(t *testing.T) {
	f, p := flowFixture(t, ActionOptions{ActionPolicy: ActionPolicy{MaxAttempts: 3, BackoffMin: time.Second, BackoffMax: time.Minute}})
	it := f.item("flow", "b", "ann@client.test")
	f.apply(event("crm.to_a", "ann@client.test"))
	boom := errors.New("503 Service Unavailable")
	p.fail(boom, boom, boom, nil)
	id := f.outbox(it.ID)[0].ID
	var gaps []time.Duration
	for attempt := 1; attempt <= 2; attempt++ {
		f.deliver(1)
		e := f.entry(id)
		gap := e.Due.Sub(f.clock.now())
		lo, hi := time.Second<<(attempt-1)/2, time.Second<<(attempt-1)
		if e.Status != store.OutboxPending || e.Attempts != attempt || gap < lo || gap > hi || e.LastError != boom.Error() {
			t.Fatalf("after attempt %d: %s, attempts %d, retry in %v (want %v..%v), error %q", attempt, e.Status, e.Attempts, gap, lo, hi, e.LastError)
		}
		gaps = append(gaps, gap)
		f.deliver(0) // not due yet
		f.clock.add(gap)
	}
	if gaps[1] < gaps[0] {
		t.Errorf("retry gaps %v: the backoff does not grow", gaps)
	}
	f.deliver(1)
	e := f.entry(id)
	if e.Status != store.OutboxFailed || e.Attempts != 3 {
		t.Fatalf("after the last attempt: %s, %d attempts; want failed after 3", e.Status, e.Attempts)
	}
	keys := map[string]bool{}
	for _, in := range p.ran() {
		keys[in.Key()] = true
	}
	if len(keys) != 1 || len(p.ran()) != 3 {
		t.Fatalf("%d calls with keys %v, want 3 calls with one key", len(p.ran()), keys)
	}
	tl, _ := f.st.Timeline(f.ctx, it.ID)
	if last := tl[len(tl)-1]; last.Kind != store.EntryAction || !strings.Contains(last.Message, "failed after 3 attempt(s): 503") {
		t.Fatalf("last timeline entry = %+v, want the failure", last)
	}
	if _, err := f.st.RetryOutbox(f.ctx, id, f.clock.now()); err != nil {
		t.Fatal(err)
	}
	f.deliver(1)
	if e := f.entry(id); e.Status != store.OutboxDone {
		t.Fatalf("after a retry: %s", e.Status)
	}
}

// A permanent error fails at once; Retry-After postpones the retry.
func TestActionErrorKinds(t *testing.T) {
	f, p := flowFixture(t, ActionOptions{ActionPolicy: ActionPolicy{BackoffMin: time.Second}})
	ann := f.item("flow", "b", "ann@client.test")
	p.fail(Permanent(errors.New("404 Not Found")))
	f.apply(event("crm.to_a", "ann@client.test"))
	f.deliver(1)
	if e := f.outbox(ann.ID)[0]; e.Status != store.OutboxFailed || e.Attempts != 1 {
		t.Fatalf("after a permanent error: %s after %d attempts", e.Status, e.Attempts)
	}
	bob := f.item("flow", "b", "bob@client.test")
	p.fail(&ActionError{Err: errors.New("429 Too Many Requests"), RetryAfter: 2 * time.Minute})
	f.apply(event("crm.to_a", "bob@client.test"))
	f.deliver(1)
	if e := f.outbox(bob.ID)[0]; e.Status != store.OutboxPending || !e.Due.Equal(f.clock.now().Add(2*time.Minute)) {
		t.Fatalf("after Retry-After 2m: %s due %v", e.Status, e.Due)
	}
}

// A delayed action runs at its time, unless its item left the stage (or
// left and came back: that is another stage entry) meanwhile; with
// skip_if_left: false it runs anyway.
func TestDelayedActions(t *testing.T) {
	f, p := flowFixture(t, ActionOptions{})
	stay := f.item("flow", "a", "stay@client.test")
	leave := f.item("flow", "a", "leave@client.test")
	back := f.item("flow", "a", "back@client.test")
	anyway := f.item("flow", "a", "anyway@client.test")
	for _, who := range []string{"stay", "leave", "back"} {
		f.apply(event("crm.to_c", who+"@client.test"))
	}
	f.apply(event("crm.to_d", "anyway@client.test"))
	f.deliver(0)
	f.clock.add(5 * time.Minute)
	f.apply(event("crm.to_b", "leave@client.test"))
	f.apply(event("crm.to_b", "anyway@client.test"))
	f.apply(event("crm.to_b", "back@client.test"))
	f.apply(event("crm.to_c", "back@client.test")) // enters c again: a new delayed run
	f.deliver(6)                                   // the b actions of the moves above
	p.mu.Lock()
	p.calls = nil
	p.mu.Unlock()
	f.clock.add(5 * time.Minute)
	f.deliver(4)
	var ran []string
	for _, in := range p.ran() {
		ran = append(ran, in.Item.ID)
	}
	if want := []string{stay.ID, anyway.ID}; !slices.Equal(ran, want) && !slices.Equal(ran, []string{anyway.ID, stay.ID}) {
		t.Fatalf("delayed actions ran for %q, want %q", ran, want)
	}
	for _, it := range []store.Item{leave, back} {
		first := f.outbox(it.ID)[0]
		if first.Stage != "c" || first.Status != store.OutboxSkipped {
			t.Fatalf("%s: first delayed action %s at %s, want skipped", it.ID, first.Status, first.Stage)
		}
	}
	f.clock.add(5 * time.Minute)
	f.deliver(1)
	if last := p.ran()[len(p.ran())-1]; last.Item.ID != back.ID || last.Entry.Trigger == "" {
		t.Fatalf("second entry's delayed action ran for %s", last.Item.ID)
	}
}

// Moves caused by actions (events naming their cause) stop at a loop and at
// the configured depth, with a timeline entry; the decision says why.
func TestActionChains(t *testing.T) {
	f, _ := flowFixture(t, ActionOptions{ActionPolicy: ActionPolicy{MaxChainDepth: 2}})
	it := f.item("flow", "a", "ann@client.test")
	f.apply(event("crm.to_b", "ann@client.test"))
	fromB := f.entryOn(it.ID, "b").ID
	d := f.apply(caused("crm.to_c", "ann@client.test", fromB))
	if !d.Moved || d.To != "c" {
		t.Fatalf("first caused move: %+v", d)
	}
	fromC := f.entryOn(it.ID, "c")
	// Back to b, which this chain entered already: a loop.
	d = f.apply(caused("crm.to_b", "ann@client.test", fromC.Key))
	if d.Moved || !strings.Contains(d.Note, "loop") || f.stage(it.ID) != "c" {
		t.Fatalf("loop move: %+v at %s", d, f.stage(it.ID))
	}
	tl, _ := f.st.Timeline(f.ctx, it.ID)
	if last := tl[len(tl)-1]; last.Kind != store.EntryChainStopped || last.To != "b" || !strings.Contains(last.Message, "loop") {
		t.Fatalf("last timeline entry = %+v", last)
	}
	// On to a: depth 2, still allowed; then d would be depth 3.
	d = f.apply(caused("crm.to_a", "ann@client.test", fromC.ID))
	if !d.Moved {
		t.Fatalf("depth-2 move refused: %+v", d)
	}
	fromA := f.entryOn(it.ID, "a")
	d = f.apply(caused("crm.to_d", "ann@client.test", fromA.ID))
	if d.Moved || !strings.Contains(d.Note, "max_chain_depth 2") {
		t.Fatalf("depth-3 move: %+v", d)
	}
	// An event without a cause, or with an unknown one, moves as usual.
	if d := f.apply(caused("crm.to_d", "ann@client.test", "ac_unknown")); !d.Moved {
		t.Fatalf("move with an unknown cause refused: %+v", d)
	}
}

// The runner started by the gateway runs actions soon after the move,
// in order within a stage entry, and gives running actions back (due at
// once) when it stops.
func TestRunActions(t *testing.T) {
	st, err := bolt.Open(store.Config{Path: filepath.Join(t.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ps []Pipeline
	if err := yaml.Unmarshal([]byte(flowPipelines), &ps); err != nil {
		t.Fatal(err)
	}
	p := &probeRunner{log: LogAction{Store: st}}
	eng, err := New(Options{Store: st, Pipelines: ps, Actions: p, ActionOptions: ActionOptions{ActionPolicy: ActionPolicy{Workers: 4, Poll: time.Hour}, Grace: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, eng: eng, ctx: context.Background()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- eng.RunActions(ctx) }()

	it := f.item("flow", "a", "ann@client.test")
	start := time.Now()
	f.apply(event("crm.to_b", "ann@client.test"))
	waitFor(t, func() bool {
		es := f.outbox(it.ID)
		return len(es) == 2 && es[0].Status == store.OutboxDone && es[1].Status == store.OutboxDone
	})
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("actions ran %v after the move, want well under the 1h poll", took)
	}
	tl, _ := st.Timeline(f.ctx, it.ID)
	if tl[len(tl)-1].Message != "second" {
		t.Fatalf("log action did not run last: %+v", tl[len(tl)-1])
	}

	p.mu.Lock()
	p.block = make(chan struct{})
	p.mu.Unlock()
	f.apply(event("crm.to_a", "ann@client.test"))
	waitFor(t, func() bool { return len(p.ran()) == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	es := f.outbox(it.ID)
	if e := es[len(es)-1]; e.Status != store.OutboxPending || e.Attempts != 1 || e.Due.After(time.Now()) {
		t.Fatalf("interrupted action = %+v, want pending and due", e)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

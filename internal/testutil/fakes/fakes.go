// Package fakes holds the test doubles every connector's tests share: a
// settable clock, an Intake that records what it is given, and in-memory
// store.Records. They stand in only for the gateway's side of the contract;
// connectors are still tested against real servers and real stores where
// those matter.
package fakes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set sets the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Intake records submitted events, answers Duplicate for an id it has seen,
// and fails with connectors.ErrUnavailable while set down. The zero value is
// ready to use.
type Intake struct {
	mu      sync.Mutex
	down    bool
	put     store.Records // SubmitWithPut's records; nil: unsupported
	puts    int
	seen    map[string]bool
	events  []*normalize.Event
	submits int
	rejects []string
}

var _ connectors.Intake = (*Intake)(nil)

// Submit implements connectors.Intake.
func (f *Intake) Submit(_ context.Context, ev *normalize.Event) (connectors.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submits++
	if f.down {
		return connectors.Result{}, fmt.Errorf("fake intake: %w", connectors.ErrUnavailable)
	}
	if f.seen[ev.ID] {
		return connectors.Result{EventID: ev.ID, Duplicate: true}, nil
	}
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	f.seen[ev.ID] = true
	f.events = append(f.events, ev)
	return connectors.Result{EventID: ev.ID}, nil
}

var _ connectors.PutIntake = (*Intake)(nil)

// PutWith makes SubmitWithPut work over r, the connector's records: with
// r nil (the zero Intake) it answers errors.ErrUnsupported, as the
// gateway's intake does on a store that is not a store.EventsPutter.
func (f *Intake) PutWith(r store.Records) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.put = r
}

// SubmitWithPut implements connectors.PutIntake over the records given to
// PutWith: store.AppendAndPut, then, only if the put passed its check, each
// event as Submit records it. Not one atomic step, unlike a real store's,
// but with the same outcomes: no event on a lost check, nothing at all
// while down.
func (f *Intake) SubmitWithPut(ctx context.Context, evs []*normalize.Event, a store.ListAppend, p store.RecordPut) (connectors.PutResult, error) {
	f.mu.Lock()
	r, down := f.put, f.down
	if r != nil {
		f.puts++
	}
	f.mu.Unlock()
	switch {
	case r == nil:
		return connectors.PutResult{}, errors.ErrUnsupported
	case down:
		return connectors.PutResult{}, fmt.Errorf("fake intake: %w", connectors.ErrUnavailable)
	}
	seq, dup, version, err := store.AppendAndPut(ctx, r, a, p)
	res := connectors.PutResult{Seq: seq, Duplicate: dup, Version: version}
	if err != nil {
		return res, err
	}
	for _, ev := range evs {
		er, err := f.Submit(ctx, ev)
		if err != nil {
			return connectors.PutResult{}, err
		}
		res.Events = append(res.Events, er)
	}
	return res, nil
}

// CanPut implements connectors.PutIntake: whether PutWith gave records.
func (f *Intake) CanPut() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.put != nil
}

// Puts counts the SubmitWithPut calls made over PutWith's records.
func (f *Intake) Puts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts
}

// Reject implements connectors.Intake; it records "connector/reason".
func (f *Intake) Reject(connector, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejects = append(f.rejects, connector+"/"+reason)
}

// SetDown makes Submit fail (true) or work again (false).
func (f *Intake) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// Events returns the events recorded (duplicates and failures excluded), in order.
func (f *Intake) Events() []*normalize.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

// IDs returns the ids of Events.
func (f *Intake) IDs() []string {
	var ids []string
	for _, ev := range f.Events() {
		ids = append(ids, ev.ID)
	}
	return ids
}

// Event returns the recorded event with id, or nil.
func (f *Intake) Event(id string) *normalize.Event {
	for _, ev := range f.Events() {
		if ev.ID == id {
			return ev
		}
	}
	return nil
}

// Submits counts every Submit call, failed and duplicate ones included.
func (f *Intake) Submits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.submits
}

// Rejects returns the rejections recorded, in order.
func (f *Intake) Rejects() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rejects)
}

// OffsetClock is the real clock plus an offset a test moves forward, so
// that stores and timers keep working while measured durations grow.
type OffsetClock struct {
	mu  sync.Mutex
	off time.Duration
}

// Now returns the real time plus the offset.
func (c *OffsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Add moves the clock forward by d.
func (c *OffsetClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// Records is an in-memory store.Records. Made with a clock, records and
// lists expire after their TTL on it; made with nil, TTLs are ignored.
// While down every call fails with store.ErrUnavailable. A hook set with
// SetBeforePut runs before each PutRecord, outside the lock, to play a
// concurrent writer.
type Records struct {
	mu        sync.Mutex
	now       func() time.Time
	down      bool
	recs      map[string]fakeRec
	lists     map[string]*fakeList
	beforePut func(key string)
	beforeAdd func(key string)
}

type fakeRec struct {
	store.Record
	expires time.Time
}

type fakeList struct {
	elems   []store.ListElem
	ids     map[string]int64
	expires time.Time
}

var _ store.Records = (*Records)(nil)

// NewRecords returns empty records whose TTLs run on now (nil: no TTLs).
func NewRecords(now func() time.Time) *Records {
	return &Records{now: now, recs: map[string]fakeRec{}, lists: map[string]*fakeList{}}
}

// SetDown makes every call fail (true) or work again (false).
func (f *Records) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// SetBeforePut sets the hook run before each PutRecord (nil: none).
func (f *Records) SetBeforePut(hook func(key string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beforePut = hook
}

// SetBeforeAppend sets the hook run before each AppendList (nil: none).
func (f *Records) SetBeforeAppend(hook func(key string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beforeAdd = hook
}

func (f *Records) enter() error {
	if f.down {
		return fmt.Errorf("fake records: %w", store.ErrUnavailable)
	}
	return nil
}

func (f *Records) live(exp time.Time) bool { return exp.IsZero() || f.now().Before(exp) }

func (f *Records) expiry(ttl time.Duration) time.Time {
	if ttl <= 0 || f.now == nil {
		return time.Time{}
	}
	return f.now().Add(ttl)
}

// GetRecord implements store.Records.
func (f *Records) GetRecord(_ context.Context, key string) (store.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(); err != nil {
		return store.Record{}, err
	}
	r, ok := f.recs[key]
	if !ok || !f.live(r.expires) {
		return store.Record{}, fmt.Errorf("fake records: %s: %w", key, store.ErrNotFound)
	}
	return store.Record{Value: slices.Clone(r.Value), Version: r.Version}, nil
}

// PutRecord implements store.Records.
func (f *Records) PutRecord(_ context.Context, key string, value []byte, expect int64, ttl time.Duration) (int64, error) {
	f.mu.Lock()
	hook := f.beforePut
	f.mu.Unlock()
	if hook != nil {
		hook(key)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(); err != nil {
		return 0, err
	}
	r, ok := f.recs[key]
	var cur int64
	if ok && f.live(r.expires) {
		cur = r.Version
	}
	if cur != expect {
		return 0, fmt.Errorf("fake records: %s: %w", key, store.ErrConflict)
	}
	f.recs[key] = fakeRec{Record: store.Record{Value: slices.Clone(value), Version: cur + 1}, expires: f.expiry(ttl)}
	return cur + 1, nil
}

// DeleteRecord implements store.Records.
func (f *Records) DeleteRecord(_ context.Context, key string, expect int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(); err != nil {
		return err
	}
	r, ok := f.recs[key]
	if !ok || !f.live(r.expires) {
		return store.ErrNotFound
	}
	if r.Version != expect {
		return store.ErrConflict
	}
	delete(f.recs, key)
	return nil
}

// AppendList implements store.Records.
func (f *Records) AppendList(_ context.Context, key, id string, value []byte, ttl time.Duration) (int64, bool, error) {
	f.mu.Lock()
	if hook := f.beforeAdd; hook != nil {
		f.mu.Unlock()
		hook(key)
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	if err := f.enter(); err != nil {
		return 0, false, err
	}
	l, ok := f.lists[key]
	if !ok || !f.live(l.expires) {
		l = &fakeList{ids: map[string]int64{}}
		f.lists[key] = l
	}
	if seq, dup := l.ids[id]; dup {
		return seq, true, nil
	}
	seq := int64(len(l.elems) + 1)
	l.elems = append(l.elems, store.ListElem{Seq: seq, ID: id, Value: slices.Clone(value)})
	l.ids[id] = seq
	l.expires = f.expiry(ttl)
	return seq, false, nil
}

// ReadList implements store.Records.
func (f *Records) ReadList(_ context.Context, key string, after int64, limit int) ([]store.ListElem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(); err != nil {
		return nil, err
	}
	l, ok := f.lists[key]
	if !ok || !f.live(l.expires) || after >= int64(len(l.elems)) {
		return nil, nil
	}
	end := min(int64(len(l.elems)), after+int64(limit))
	return slices.Clone(l.elems[after:end]), nil
}

// Peek returns the record at key, expired or not, even while down.
func (f *Records) Peek(key string) (store.Record, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.recs[key]
	return r.Record, ok
}

// Keys lists every record and list key, sorted.
func (f *Records) Keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ks []string
	for k := range f.recs {
		ks = append(ks, k)
	}
	for k := range f.lists {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Len counts the records (not the lists), expired ones included.
func (f *Records) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recs)
}

// ListLen returns the length of the list at key.
func (f *Records) ListLen(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.lists[key]; ok {
		return len(l.elems)
	}
	return 0
}

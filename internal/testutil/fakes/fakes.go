// Package fakes holds the test doubles every connector's tests share: a
// settable clock and an Intake that records what it is given. They stand in
// only for the gateway's side of the contract; connectors are still tested
// against real servers and real stores where those matter.
package fakes

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
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

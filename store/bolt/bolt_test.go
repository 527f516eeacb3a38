package bolt

import (
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/storetest"
)

func TestConformance(t *testing.T) {
	var clocks sync.Map // *Store → *offsetClock
	storetest.RunWith(t, func(t *testing.T) store.Store {
		c := &offsetClock{}
		s := openTemp(t, filepath.Join(t.TempDir(), "sub", "sg.db"), Options{Now: c.Now})
		clocks.Store(s, c)
		return s
	}, storetest.Options{
		Wait: func(s store.Store, d time.Duration) {
			c, _ := clocks.Load(s)
			c.(*offsetClock).Add(d)
		},
	})
}

// offsetClock is the real clock moved forward by what tests add.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

func (c *offsetClock) Add(d time.Duration) { c.off.Add(int64(d)) }

// openTemp opens a store at path and closes it when the test ends.
func openTemp(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(store.Config{Path: path, DedupWindow: time.Hour}, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func ev(id string) *normalize.Event {
	return &normalize.Event{ID: id, Type: normalize.CallMissed, Connector: "tel", OccurredAt: t0, ReceivedAt: t0}
}

// count returns how many keys a top-level bucket holds.
func count(t *testing.T, s *Store, bucket []byte) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucket).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatalf("View: %v", err)
	}
	return n
}

// countKind counts the keys of kind (evref.go) in bEvData.
func countKind(t *testing.T, s *Store, kind byte) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bEvData).ForEach(func(k, _ []byte) error {
			if len(k) >= 9 && k[8] == kind {
				n++
			}
			return nil
		})
	}); err != nil {
		t.Fatalf("View: %v", err)
	}
	return n
}

func TestCommitterIsolatesFailures(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "sg.db"), Options{})
	put := func(k string, fail error) *writeReq {
		return &writeReq{done: make(chan error, 1), fn: func(tx *bbolt.Tx) error {
			if err := tx.Bucket(bContacts).Put([]byte(k), []byte("x")); err != nil {
				return err
			}
			return fail
		}}
	}
	refused := &writeReq{done: make(chan error, 1), fn: func(*bbolt.Tx) error {
		return clean(store.ErrConflict)
	}}
	boom := errors.New("boom")
	group := []*writeReq{put("a", nil), put("b", boom), refused, put("c", nil), put("d", boom)}
	before := s.c.commits.Load()
	s.c.commit(group)
	for i, want := range []error{nil, boom, store.ErrConflict, nil, boom} {
		if err := <-group[i].done; !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("request %d: err %v, want %v", i, err, want)
		}
	}
	if n := s.c.commits.Load() - before; n != 1 {
		t.Errorf("%d commits for one group, want 1", n)
	}
	s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bContacts)
		for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": false} {
			if got := b.Get([]byte(k)) != nil; got != want {
				t.Errorf("key %s present %v, want %v", k, got, want)
			}
		}
		return nil
	})
}

func TestClosed(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "sg.db"), Options{})
	waiting := make(chan error, 1)
	go func() {
		_, err := s.ReadLog(t.Context(), "c", 10, time.Minute)
		waiting <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-waiting:
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("blocked ReadLog after Close: %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked ReadLog did not return on Close")
	}
	ctx := t.Context()
	_, appendErr := s.Append(ctx, ev("a"))
	_, getErr := s.GetItem(ctx, "x")
	_, _, createErr := s.CreateItem(ctx, store.Item{ID: "x"}, store.TimelineEntry{})
	_, readErr := s.ReadLog(ctx, "c", 1, 0)
	for name, err := range map[string]error{
		"Ping": s.Ping(ctx), "Append": appendErr, "GetItem": getErr,
		"CreateItem": createErr, "ReadLog": readErr,
	} {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close: %v, want ErrUnavailable", name, err)
		}
	}
}

func TestOpenLocked(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the file lock timeout")
	}
	path := filepath.Join(t.TempDir(), "sg.db")
	openTemp(t, path, Options{})
	if s, err := Open(store.Config{Path: path}, Options{}); err == nil {
		s.Close()
		t.Fatal("second Open of one file succeeded")
	}
}

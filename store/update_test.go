package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

// memRecords is a versioned map whose PutRecord can be made to lose its
// race a number of times, as if another writer got there first each time.
type memRecords struct {
	store.Records // ReadList and the rest: not used here
	vals          map[string]store.Record
	lose          int // PutRecord calls left that bump the version and conflict
	puts          int
	appended      map[string]bool // list element ids appended (one list)
	appends       int
}

func (m *memRecords) AppendList(_ context.Context, _, id string, _ []byte, _ time.Duration) (int64, bool, error) {
	m.appends++
	if m.appended[id] {
		return 1, true, nil
	}
	m.appended[id] = true
	return int64(len(m.appended)), false, nil
}

func (m *memRecords) GetRecord(_ context.Context, key string) (store.Record, error) {
	r, ok := m.vals[key]
	if !ok {
		return store.Record{}, store.ErrNotFound
	}
	return r, nil
}

func (m *memRecords) PutRecord(_ context.Context, key string, v []byte, expect int64, _ time.Duration) (int64, error) {
	m.puts++
	cur := m.vals[key]
	if m.lose > 0 {
		m.lose--
		m.vals[key] = store.Record{Value: []byte(`{"n":100}`), Version: cur.Version + 1}
		return 0, store.ErrConflict
	}
	if cur.Version != expect {
		return 0, store.ErrConflict
	}
	m.vals[key] = store.Record{Value: v, Version: expect + 1}
	return expect + 1, nil
}

type counter struct {
	N int `json:"n"`
}

func TestUpdateJSON(t *testing.T) {
	ctx := context.Background()
	incr := func(v *counter, _ int64) (bool, error) { v.N++; return true, nil }
	tests := []struct {
		name     string
		lose     int
		change   func(v *counter, version int64) (bool, error)
		want     counter
		wantVer  int64
		wantPuts int
		wantErr  error
	}{
		{name: "absent record starts from zero", change: incr, want: counter{1}, wantVer: 1, wantPuts: 1},
		{name: "a lost race starts again from the new value", lose: 2, change: incr, want: counter{101}, wantVer: 3, wantPuts: 3},
		{name: "no change writes nothing", change: func(*counter, int64) (bool, error) { return false, nil }, wantPuts: 0},
		{name: "an error of change ends it", change: func(*counter, int64) (bool, error) { return false, errBoom }, wantErr: errBoom},
		{name: "the budget runs out", lose: store.UpdateAttempts, change: incr, wantPuts: store.UpdateAttempts, wantErr: store.ErrConflict},
	}
	for _, tt := range tests {
		for _, withAppend := range []bool{false, true} {
			name := tt.name
			if withAppend {
				name = "UpdateJSONAppend: " + name
			}
			t.Run(name, func(t *testing.T) {
				r := &memRecords{vals: map[string]store.Record{}, lose: tt.lose, appended: map[string]bool{}}
				var (
					got counter
					ver int64
					dup bool
					err error
				)
				if withAppend {
					got, ver, dup, err = store.UpdateJSONAppend(ctx, r, store.ListAppend{Key: "l", ID: "a1"}, "k", 0, tt.change)
				} else {
					got, ver, err = store.UpdateJSON(ctx, r, "k", 0, tt.change)
				}
				if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if err == nil && (got != tt.want || ver != tt.wantVer) {
					t.Errorf("got %+v version %d, want %+v version %d", got, ver, tt.want, tt.wantVer)
				}
				if r.puts != tt.wantPuts {
					t.Errorf("%d puts, want %d", r.puts, tt.wantPuts)
				}
				// The append is made once, with the first write or alone,
				// and not at all when change fails.
				wantAppends := 0
				if withAppend && !errors.Is(tt.wantErr, errBoom) {
					wantAppends = 1
				}
				if r.appends != wantAppends || dup {
					t.Errorf("%d appends (duplicate %v), want %d", r.appends, dup, wantAppends)
				}
				if withAppend && wantAppends == 1 {
					_, _, dup, err = store.UpdateJSONAppend(ctx, r, store.ListAppend{Key: "l", ID: "a1"}, "k", 0,
						func(*counter, int64) (bool, error) { return false, nil })
					if err != nil || !dup {
						t.Errorf("the same element again: duplicate %v, %v; want true", dup, err)
					}
				}
			})
		}
	}
}

var errBoom = errors.New("boom")

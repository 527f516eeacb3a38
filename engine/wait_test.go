package engine

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

// shared is a bolt store that says it may be shared, as Redis does.
type shared struct{ *bolt.Store }

func (shared) SingleProcess() bool { return false }

// On bolt, the waiter of a fresh event is told what the engine stored,
// exactly as GetEvent reads it back: a move of two items, a trigger that
// would move them back (refused: decisions, no move), an unmatched event. On a store that may be shared it is
// told nothing (the API then reads the store).
func TestWatcherAppliedIsWhatIsStored(t *testing.T) {
	for _, tc := range []struct {
		name   string
		single bool
	}{{"bolt", true}, {"shared", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			b, err := bolt.Open(store.Config{Path: filepath.Join(t.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			var st store.Store = b
			if !tc.single {
				st = shared{b}
			}
			eng, err := New(Options{Store: st, Pipelines: []Pipeline{{ID: "p", Stages: []Stage{
				{ID: "a", Triggers: []Trigger{{Type: "crm.back"}}}, {ID: "b", Triggers: []Trigger{{Type: "crm.go"}}},
			}}}})
			if err != nil {
				t.Fatal(err)
			}
			c, _, err := b.EnsureContact(ctx, store.Contact{ID: "c1"}, []store.Identity{{Kind: store.IdentityEmail, Value: "u@x.test"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"i2", "i1"} {
				if _, err := eng.CreateItem(ctx, store.Item{ID: id, Pipeline: "p", ContactID: c.ID}, ""); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() { done <- eng.Run(ctx) }()
			for _, ev := range []*normalize.Event{
				{ID: "e-move", Type: "crm.go", Subject: normalize.Subject{Email: "u@x.test"}},
				{ID: "e-none", Type: "crm.back", Subject: normalize.Subject{Email: "u@x.test"}}, // backwards: refused
				{ID: "e-nobody", Type: "crm.go", Subject: normalize.Subject{Email: "nobody@x.test"}},
			} {
				ev.Connector, ev.ReceivedAt, ev.OccurredAt, ev.Raw = "test", time.Now(), time.Now(), []byte(`{}`)
				w := eng.Watch(ev.ID)
				if _, err := b.Append(ctx, ev); err != nil {
					t.Fatal(err)
				}
				wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
				err := w.Wait(wctx, true)
				wcancel()
				if err != nil {
					t.Fatalf("%s: wait: %v", ev.ID, err)
				}
				a := w.Applied()
				w.Close()
				if !tc.single {
					if a != nil {
						t.Errorf("%s: told %+v on a store that may be shared", ev.ID, a)
					}
					continue
				}
				if a == nil {
					t.Fatalf("%s: the waiter was told nothing", ev.ID)
				}
				rec, ds, err := b.GetEvent(ctx, ev.ID)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := json.Marshal(a)
				want, _ := json.Marshal(Applied{Unmatched: rec.Unmatched, Note: rec.Note, Decisions: ds})
				if string(got) != string(want) {
					t.Errorf("%s: told\n%s\nstored\n%s", ev.ID, got, want)
				}
				if n := len(a.Decisions); (ev.ID == "e-nobody") != (n == 0) || (ev.ID != "e-nobody" && n != 2) {
					t.Errorf("%s: %d decisions", ev.ID, n)
				}
			}
			cancel()
			<-done
		})
	}
}

package actions

import (
	"testing"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/store"
)

// set_field and set_responsible change the item and say so in its
// timeline, once per stage entry however often they run.
func TestItemActions(t *testing.T) {
	st := openStore(t)
	r := newRunner(t, Config{}, st)
	it, _, err := st.CreateItem(t.Context(), store.Item{ID: "i-1", Pipeline: "sales", Stage: "won", Responsible: "bob", CreatedAt: t0},
		store.TimelineEntry{ID: "created", Kind: store.EntryCreated})
	if err != nil {
		t.Fatal(err)
	}
	setField := input(it, engine.ActionSpec{Type: "set_field", Settings: &SetField{Field: "won_via", Value: "{{.Trigger}} by {{.Actor}}"}})
	setField.Index = 0
	setUser := input(it, engine.ActionSpec{Type: "set_responsible", Settings: &SetResponsible{User: "{{if .Stage.Final}}closer{{else}}bob{{end}}"}})
	for range 2 {
		for _, in := range []engine.ActionInput{setField, setUser} {
			if err := r.RunAction(t.Context(), in); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := st.GetItem(t.Context(), "i-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Fields["won_via"] != "paid by bob" || got.Responsible != "closer" || got.Version != 3 {
		t.Fatalf("item = %+v", got)
	}
	tl, _ := st.Timeline(t.Context(), "i-1")
	var msgs []string
	for _, e := range tl {
		if e.Kind == store.EntryAction {
			msgs = append(msgs, e.Action+": "+e.Message)
		}
	}
	if len(msgs) != 2 || msgs[0] != `set_field: set field won_via to "paid by bob"` || msgs[1] != "set_responsible: responsible set to closer" {
		t.Fatalf("timeline actions = %q", msgs)
	}
	// A template that fails fails for good.
	bad := input(it, engine.ActionSpec{Type: "set_field", Settings: &SetField{Field: "x", Value: "{{.Nope.Deeper}}"}})
	if err := r.RunAction(t.Context(), bad); !permanent(err) {
		t.Fatalf("bad template: %v, want a permanent error", err)
	}
}

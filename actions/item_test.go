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
	// Each change is a field_changed / responsible_changed entry and an
	// event in the log, caused by the action run (the engine's chain guard
	// follows it); the second round changed nothing and emitted nothing.
	var kinds []string
	for _, e := range tl {
		if e.Kind == store.EntryFieldChanged || e.Kind == store.EntryResponsibleChanged {
			kinds = append(kinds, e.Kind+" "+e.Field+" "+e.From+" → "+e.To+" by "+e.Actor)
		}
	}
	if len(kinds) != 2 || kinds[0] != "field_changed won_via  → paid by bob by bob" || kinds[1] != "responsible_changed  bob → closer by bob" {
		t.Fatalf("change entries = %q", kinds)
	}
	log, err := st.ReadLog(t.Context(), "c1", 10, 0)
	if err != nil || len(log) != 2 {
		t.Fatalf("log = %+v, %v; want the two changes' events", log, err)
	}
	if ev := log[0].Event; ev.Type != "item.field_changed" || ev.Attrs["field"] != "won_via" || ev.Attrs[engine.CauseAttr] != setField.ID {
		t.Fatalf("set_field event %+v", ev)
	}
	if ev := log[1].Event; ev.Type != "item.responsible_changed" || ev.Attrs["to"] != "closer" || ev.Attrs[engine.CauseAttr] != setUser.ID {
		t.Fatalf("set_responsible event %+v", ev)
	}
	// A template that fails fails for good.
	bad := input(it, engine.ActionSpec{Type: "set_field", Settings: &SetField{Field: "x", Value: "{{.Nope.Deeper}}"}})
	if err := r.RunAction(t.Context(), bad); !permanent(err) {
		t.Fatalf("bad template: %v, want a permanent error", err)
	}
}

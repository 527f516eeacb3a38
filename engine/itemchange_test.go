package engine

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

// changePipelines has triggers on item changes only.
const changePipelines = `
- id: deals
  stages:
    - id: new
      triggers:
        - {type: field.changed, name: reopened, field: status, to: open, allow_back: true}
    - id: qualified
      triggers:
        - {type: field.changed, name: qualified, field: status, to: qualified}
        - {type: field.changed, name: any-budget, field: budget}
    - id: assigned
      triggers:
        - {type: responsible.changed, name: to-alice, to: alice}
        - {type: field.changed, name: budget-big, field: budget, match: regex, to: "^[0-9]{5,}$"}
    - id: priority
      triggers:
        - {type: responsible.changed, name: any-owner}
        - {type: field.changed, name: vip, field: tier, match: prefix, to: vip, as_user: alice}
    - id: won
      final: success
      triggers:
        - {type: field.changed, name: won-status, field: status, to: won}
`

func newChangeFixture(t *testing.T) *fixture {
	t.Helper()
	c := newClock()
	st, err := bolt.Open(store.Config{Path: filepath.Join(t.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := New(Options{Store: st, Pipelines: parsePipelines(t, changePipelines), Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, st: st, eng: eng, clock: c, ctx: t.Context()}
}

// deal creates an item at stage, responsible bob, with fields.
func (f *fixture) deal(id, stage string, fields map[string]string) store.Item {
	f.t.Helper()
	it, err := f.eng.CreateItem(f.ctx, store.Item{ID: id, Pipeline: "deals", Stage: stage, Responsible: "bob", Fields: fields}, "")
	if err != nil {
		f.t.Fatal(err)
	}
	return it
}

// change applies c and then its one event, and returns the verdict.
func (f *fixture) change(c ItemChange) store.ItemDecisions {
	f.t.Helper()
	res, err := ChangeItem(f.ctx, f.st, c, f.clock.now())
	if err != nil {
		f.t.Fatal(err)
	}
	if len(res.Events) != 1 {
		f.t.Fatalf("change emitted %d events, want 1", len(res.Events))
	}
	return f.apply(&res.Events[0])
}

// Rule 3 for field.changed: a trigger behind the item does not fire; one
// with allow_back does.
func TestFieldChangedForwardOnlyAndAllowBack(t *testing.T) {
	f := newChangeFixture(t)
	f.deal("d1", "assigned", nil)
	d := f.change(ItemChange{ItemID: "d1", Set: map[string]string{"status": "qualified"}, Actor: "carol"})
	if d.Moved || outcomes(d)["qualified"] != OutcomeStageBehind {
		t.Fatalf("moved back without allow_back: %+v", d)
	}
	d = f.change(ItemChange{ItemID: "d1", Set: map[string]string{"status": "open"}})
	if !d.Moved || d.To != "new" || f.stage("d1") != "new" {
		t.Fatalf("allow_back trigger did not move back: %+v", d)
	}
}

// Rule 3: a trigger on the current stage never fires; a closed item moves
// only by allow_back.
func TestFieldChangedCurrentStageAndClosed(t *testing.T) {
	f := newChangeFixture(t)
	f.deal("d1", "qualified", nil)
	d := f.change(ItemChange{ItemID: "d1", Set: map[string]string{"status": "qualified"}})
	if d.Moved || outcomes(d)["qualified"] != OutcomeNotEligible {
		t.Fatalf("trigger on the current stage fired: %+v", d)
	}
	f.deal("d2", "won", nil)
	d = f.change(ItemChange{ItemID: "d2", Responsible: "alice"})
	if d.Moved || outcomes(d)["to-alice"] != OutcomeNotEligible {
		t.Fatalf("closed item moved: %+v", d)
	}
	d = f.change(ItemChange{ItemID: "d2", Set: map[string]string{"status": "open"}})
	if !d.Moved || d.To != "new" {
		t.Fatalf("closed item not reopened by allow_back: %+v", d)
	}
}

// Rule 4: of matching triggers the earliest stage wins, and the decisions
// say why the others did not fire.
func TestFieldChangedEarliestStageWins(t *testing.T) {
	f := newChangeFixture(t)
	f.deal("d1", "new", nil)
	d := f.change(ItemChange{ItemID: "d1", Set: map[string]string{"budget": "120000"}})
	o := outcomes(d)
	if d.To != "qualified" || o["any-budget"] != OutcomeWon || o["budget-big"] != OutcomeLost || o["qualified"] != OutcomeNotMet {
		t.Fatalf("to %q, outcomes %v", d.To, o)
	}
	// Removing a field is a change too: a trigger without `to` fires on it.
	f.deal("d2", "new", map[string]string{"budget": "5"})
	d = f.change(ItemChange{ItemID: "d2", Remove: []string{"budget"}})
	if d.To != "qualified" {
		t.Fatalf("removal: %+v", d)
	}
}

// Rules 5 and 6: a field change jumps straight to the trigger's stage; the
// move's timeline entry names the trigger, the event and the actor
// (as_user); the stages jumped over are behind the item afterwards.
func TestFieldChangedJumpAndTimeline(t *testing.T) {
	f := newChangeFixture(t)
	f.deal("d1", "new", nil)
	res, err := ChangeItem(f.ctx, f.st, ItemChange{ItemID: "d1", Set: map[string]string{"tier": "vip-gold"}, Actor: "carol"}, f.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	d := f.apply(&res.Events[0])
	if d.To != "priority" || f.stage("d1") != "priority" {
		t.Fatalf("moved to %q, want priority", d.To)
	}
	tl, err := f.st.Timeline(f.ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	last := tl[len(tl)-1]
	if last.Kind != store.EntryMove || last.From != "new" || last.To != "priority" || last.Trigger != "vip" ||
		last.EventID != res.Events[0].ID || last.Actor != "alice" {
		t.Fatalf("move entry %+v", last)
	}
	d = f.change(ItemChange{ItemID: "d1", Set: map[string]string{"budget": "120000"}})
	if o := outcomes(d); d.Moved || o["any-budget"] != OutcomeStageBehind || o["budget-big"] != OutcomeStageBehind {
		t.Fatalf("a trigger left behind fired: %+v", d)
	}
}

// responsible.changed: `to` names the new user; without it any change
// fires. Earliest stage wins between them.
func TestResponsibleChanged(t *testing.T) {
	f := newChangeFixture(t)
	f.deal("d1", "new", nil)
	d := f.change(ItemChange{ItemID: "d1", Responsible: "carol"})
	if o := outcomes(d); d.To != "priority" || o["to-alice"] != OutcomeNotMet || o["any-owner"] != OutcomeWon {
		t.Fatalf("to %q, outcomes %v", d.To, o)
	}
	f.deal("d2", "new", nil)
	d = f.change(ItemChange{ItemID: "d2", Responsible: "alice"})
	if o := outcomes(d); d.To != "assigned" || o["any-owner"] != OutcomeLost {
		t.Fatalf("to %q, outcomes %v", d.To, o)
	}
}

// ChangeItem writes one timeline entry and one event per change, with ids
// derived from the item's new version; a value that does not change is no
// change; a stale ExpectVersion is a conflict that writes nothing.
func TestChangeItem(t *testing.T) {
	f := newChangeFixture(t)
	f.deal("d1", "new", map[string]string{"a": "1", "b": "2"})
	res, err := ChangeItem(f.ctx, f.st, ItemChange{ItemID: "d1", ExpectVersion: 1, Set: map[string]string{"a": "1", "c": "3"},
		Remove: []string{"b", "zz"}, Responsible: "carol", Actor: "dave"}, f.clock.now())
	if err != nil || !res.Applied || res.Item.Version != 2 {
		t.Fatalf("ChangeItem = %+v, %v", res, err)
	}
	ids := []string{"item:d1:v2:f:c", "item:d1:v2:f:b", "item:d1:v2:responsible"}
	if len(res.Events) != 3 {
		t.Fatalf("events %+v", res.Events)
	}
	for i, ev := range res.Events {
		if ev.ID != ids[i] || ev.Subject.ItemID != "d1" || ev.Attrs[AttrActor] != "dave" {
			t.Fatalf("event %d = %+v, want id %s", i, ev, ids[i])
		}
	}
	if a := res.Events[1].Attrs; res.Events[1].Type != normalize.ItemFieldChanged || a[AttrField] != "b" || a[AttrFrom] != "2" || a[AttrTo] != "" || a[AttrRemoved] != "true" {
		t.Fatalf("removal event %+v", res.Events[1])
	}
	if a := res.Events[2].Attrs; res.Events[2].Type != normalize.ItemResponsibleChanged || a[AttrFrom] != "bob" || a[AttrTo] != "carol" {
		t.Fatalf("responsible event %+v", res.Events[2])
	}
	for _, id := range ids {
		if _, _, err := f.st.GetEvent(f.ctx, id); err != nil {
			t.Fatalf("event %s not in the log: %v", id, err)
		}
	}
	tl, err := f.st.Timeline(f.ctx, "d1")
	if err != nil || len(tl) != 4 {
		t.Fatalf("timeline %+v, %v", tl, err)
	}
	if e := tl[1]; e.Kind != store.EntryFieldChanged || e.Field != "c" || e.From != "" || e.To != "3" || e.Actor != "dave" || e.EventID != ids[0] {
		t.Fatalf("entry %+v", e)
	}
	if e := tl[3]; e.Kind != store.EntryResponsibleChanged || e.From != "bob" || e.To != "carol" {
		t.Fatalf("entry %+v", e)
	}
	// Nothing changes: nothing written.
	res, err = ChangeItem(f.ctx, f.st, ItemChange{ItemID: "d1", Set: map[string]string{"c": "3"}, Responsible: "carol"}, f.clock.now())
	if err != nil || res.Applied || len(res.Events) != 0 || res.Item.Version != 2 {
		t.Fatalf("no-op change = %+v, %v", res, err)
	}
	_, err = ChangeItem(f.ctx, f.st, ItemChange{ItemID: "d1", ExpectVersion: 1, Set: map[string]string{"c": "4"}}, f.clock.now())
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale version: %v, want a conflict", err)
	}
	if it, _ := f.st.GetItem(f.ctx, "d1"); it.Version != 2 || it.Fields["c"] != "3" {
		t.Fatalf("item after a stale change %+v", it)
	}
	_, err = ChangeItem(f.ctx, f.st, ItemChange{ItemID: "nope", Set: map[string]string{"c": "4"}}, f.clock.now())
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown item: %v", err)
	}
}

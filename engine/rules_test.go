package engine

import (
	"strings"
	"testing"

	"github.com/stagegate/stagegate/store"
)

// Rule 3: triggers on stages behind the item do not fire without allow_back.
func TestRuleForwardOnly(t *testing.T) {
	f := newFixture(t, nil)
	it := f.item("sales", "engaged", "ann@client.test")
	d := f.apply(event("email.incoming", "ann@client.test"))
	if d.Moved || f.stage(it.ID) != "engaged" {
		t.Fatalf("moved back without allow_back: %+v", d)
	}
	if got := outcomes(d)["mail"]; got != OutcomeStageBehind {
		t.Fatalf("outcome %q, want %q", got, OutcomeStageBehind)
	}
}

// Rule 3: an allow_back trigger on an earlier stage moves the item back.
func TestRuleAllowBack(t *testing.T) {
	f := newFixture(t, nil)
	it := f.item("sales", "proposal", "ann@client.test")
	d := f.apply(event("chat.message", "ann@client.test", "text", "what is the price?"))
	if !d.Moved || d.To != "engaged" || f.stage(it.ID) != "engaged" {
		t.Fatalf("allow_back did not move back: %+v", d)
	}
}

// Rule 3: triggers on the current stage never fire, even with allow_back.
func TestRuleCurrentStageNeverFires(t *testing.T) {
	f := newFixture(t, nil)
	f.item("sales", "engaged", "ann@client.test")
	d := f.apply(event("chat.message", "ann@client.test", "text", "price"))
	if d.Moved {
		t.Fatalf("trigger on current stage fired: %+v", d)
	}
	if got := outcomes(d)["price"]; got != OutcomeNotEligible {
		t.Fatalf("outcome %q, want %q", got, OutcomeNotEligible)
	}
}

// Rule 4: among matching eligible triggers the earliest stage wins; on one
// stage the first in config order.
func TestRuleEarliestStageWins(t *testing.T) {
	f := newFixture(t, nil)
	it := f.item("sales", "new", "ann@client.test")
	d := f.apply(event("webhook.received", "ann@client.test", "code", "a"))
	if d.To != "contacted" || f.stage(it.ID) != "contacted" {
		t.Fatalf("moved to %q, want contacted", d.To)
	}
	o := outcomes(d)
	if o["hook-a"] != OutcomeWon || o["hook-a2"] != OutcomeLost || o["hook-b"] != OutcomeNotMet {
		t.Fatalf("outcomes %v", o)
	}
}

// Rule 5: a jump skips the stages between (their actions do not run), and
// afterwards triggers on stages left behind do not fire.
func TestRuleJumpSkipsStages(t *testing.T) {
	f := newFixture(t, nil)
	it := f.item("sales", "new", "ann@client.test")
	d := f.apply(event("crm.invoice_paid", "ann@client.test", "status", "paid"))
	if d.To != "won" {
		t.Fatalf("moved to %q, want won", d.To)
	}
	f.deliver(1) // only won's action was queued
	tl, err := f.st.Timeline(f.ctx, it.ID)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range tl {
		if e.Kind == store.EntryAction {
			actions = append(actions, e.Message)
		}
	}
	if strings.Join(actions, ",") != "won" {
		t.Fatalf("actions run %q, want only won's", actions)
	}
	// The item is closed (won is final): a contacted trigger does not fire.
	d = f.apply(event("email.incoming", "ann@client.test"))
	if d.Moved || outcomes(d)["mail"] != OutcomeNotEligible {
		t.Fatalf("trigger behind fired after jump: %+v", d)
	}
}

// Rule 1/3: a closed item is moved only by an allow_back trigger.
func TestRuleClosedItem(t *testing.T) {
	f := newFixture(t, nil)
	it := f.item("sales", "won", "ann@client.test")
	if !it.Closed {
		t.Fatal("item at final stage is not closed")
	}
	d := f.apply(event("crm.lost", "ann@client.test"))
	if d.Moved || outcomes(d)["lost"] != OutcomeNotEligible {
		t.Fatalf("closed item moved by a plain trigger: %+v", d)
	}
	d = f.apply(event("crm.reset", "ann@client.test"))
	if d.To != "new" {
		t.Fatalf("allow_back did not reopen: %+v", d)
	}
	got, _ := f.st.GetItem(f.ctx, it.ID)
	if got.Closed || got.Stage != "new" {
		t.Fatalf("item after reopen: %+v", got)
	}
}

// Rule 2/6: the move records from, to, trigger, event and actor (as_user,
// else the responsible user) in the timeline.
func TestRuleTimelineAndActor(t *testing.T) {
	f := newFixture(t, nil)
	it := f.item("sales", "new", "ann@client.test")
	ev := event("email.incoming", "ANN@Client.test")
	f.apply(ev)
	ev2 := event("chat.message", "ann@client.test", "text", "price")
	f.apply(ev2)
	tl, err := f.st.Timeline(f.ctx, it.ID)
	if err != nil {
		t.Fatal(err)
	}
	var moves []store.TimelineEntry
	for _, e := range tl {
		if e.Kind == store.EntryMove {
			moves = append(moves, e)
		}
	}
	if len(moves) != 2 {
		t.Fatalf("timeline %+v", tl)
	}
	want := []store.TimelineEntry{
		{From: "new", To: "contacted", Trigger: "mail", EventID: ev.ID, Actor: "bob"},
		{From: "contacted", To: "engaged", Trigger: "price", EventID: ev2.ID, Actor: "alice"},
	}
	for i, w := range want {
		m := moves[i]
		if m.From != w.From || m.To != w.To || m.Trigger != w.Trigger || m.EventID != w.EventID || m.Actor != w.Actor || !m.At.Equal(t0) {
			t.Errorf("move %d = %+v, want %+v", i, m, w)
		}
	}
}

// Rule 6: a manual move runs the entered stage's actions too.
func TestManualMoveRunsActions(t *testing.T) {
	f := newFixture(t, nil)
	it := f.item("sales", "new", "ann@client.test")
	if _, err := f.eng.MoveManual(f.ctx, it.ID, "proposal", "carol"); err != nil {
		t.Fatal(err)
	}
	f.deliver(1)
	tl, _ := f.st.Timeline(f.ctx, it.ID)
	last := tl[len(tl)-1]
	if last.Kind != store.EntryAction || last.Message != "entered stage proposal from new" || last.Actor != "carol" {
		t.Fatalf("last entry %+v", last)
	}
	if _, err := f.eng.MoveManual(f.ctx, it.ID, "nowhere", ""); err == nil {
		t.Fatal("move to unknown stage succeeded")
	}
}

// Applying one event twice moves nothing the second time.
func TestApplyIdempotent(t *testing.T) {
	f := newFixture(t, nil)
	it := f.item("sales", "new", "ann@client.test")
	ev := event("email.incoming", "ann@client.test")
	f.apply(ev)
	d := f.apply(ev)
	if d.Moved {
		t.Fatalf("second apply moved: %+v", d)
	}
	tl, _ := f.st.Timeline(f.ctx, it.ID)
	if n := countMoves(tl); n != 1 {
		t.Fatalf("%d moves in timeline, want 1", n)
	}
}

func countMoves(tl []store.TimelineEntry) int {
	n := 0
	for _, e := range tl {
		if e.Kind == store.EntryMove {
			n++
		}
	}
	return n
}

// An event applied again after the item was moved back by hand still does
// not move it: the store remembers which events moved which item.
func TestApplyIdempotentAfterManualMoveBack(t *testing.T) {
	f := newFixture(t, nil)
	it := f.item("sales", "new", "ann@client.test")
	ev := event("email.incoming", "ann@client.test")
	f.apply(ev)
	if _, err := f.eng.MoveManual(f.ctx, it.ID, "new", "bob"); err != nil {
		t.Fatal(err)
	}
	d := f.apply(ev)
	if d.Moved || f.stage(it.ID) != "new" {
		t.Fatalf("replayed event moved again: %+v", d)
	}
}

package engine

import (
	"errors"
	"testing"

	"github.com/stagegate/stagegate/store"
)

// Explain decides like Apply — the item that would move, the one that
// would not, and the lead a connector would create — and writes nothing.
func TestExplainWritesNothing(t *testing.T) {
	f := newFixture(t, map[string]CreateSpec{"test": {Pipeline: "sales", Stage: "new"}})
	moves := f.item("sales", "new", "ann@client.test")
	stays := f.item("sales", "won", "bob@client.test")
	ev := event("crm.invoice_paid", "ann@client.test", "status", "paid")
	res, err := f.eng.Explain(f.ctx, ev)
	if err != nil || len(res.Items) != 1 {
		t.Fatalf("Explain = %+v, %v", res, err)
	}
	if d := res.Items[0]; d.ItemID != moves.ID || !d.Moved || d.To != "won" || outcomes(d)["paid"] != OutcomeWon {
		t.Fatalf("would-move verdict %+v", d)
	}
	res, err = f.eng.Explain(f.ctx, event("crm.invoice_paid", "bob@client.test", "status", "paid"))
	if err != nil || len(res.Items) != 1 || res.Items[0].Moved || outcomes(res.Items[0])["paid"] != OutcomeNotEligible {
		t.Fatalf("would-stay verdict %+v, %v", res, err)
	}
	res, err = f.eng.Explain(f.ctx, event("form.submitted", "neo@lead.test", "form_id", "pricing"))
	if err != nil || len(res.Items) != 1 || res.Items[0].To != "won" || res.Note == "" {
		t.Fatalf("would-create verdict %+v, %v", res, err)
	}
	for _, it := range []store.Item{moves, stays} {
		got, err := f.st.GetItem(f.ctx, it.ID)
		if err != nil || got.Version != it.Version || got.Stage != it.Stage {
			t.Fatalf("item after Explain %+v, %v; want %+v", got, err, it)
		}
		if tl, _ := f.st.Timeline(f.ctx, it.ID); len(tl) != 1 {
			t.Fatalf("timeline after Explain %+v", tl)
		}
	}
	if _, _, err := f.st.GetEvent(f.ctx, ev.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("explained event recorded: %v", err)
	}
	if _, err := f.st.FindContact(f.ctx, store.Identity{Kind: store.IdentityEmail, Value: "neo@lead.test"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Explain created a contact: %v", err)
	}
	if n, _ := f.st.OutboxDepth(f.ctx); n != 0 {
		t.Fatalf("Explain queued %d actions", n)
	}
	// Applying it for real does what Explain said.
	if d := f.apply(ev); d.To != "won" {
		t.Fatalf("apply after explain: %+v", d)
	}
}

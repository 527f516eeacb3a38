package engine

import (
	"strings"
	"testing"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// architecture §4: identities find the contact's items in pipelines that listen to
// the event type; several pipelines each get their verdict.
func TestResolveSeveralPipelines(t *testing.T) {
	f := newFixture(t, nil)
	sales := f.item("sales", "new", "ann@client.test")
	support, err := f.eng.CreateItem(f.ctx, store.Item{ID: "sup", Pipeline: "support", ContactID: sales.ContactID}, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.eng.Apply(f.ctx, event("email.incoming", " Ann@CLIENT.test "))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 2 || f.stage(sales.ID) != "contacted" || f.stage(support.ID) != "answered" {
		t.Fatalf("result %+v", res)
	}
	// crm.invoice_paid has triggers in sales only.
	res, _ = f.eng.Apply(f.ctx, event("crm.invoice_paid", "ann@client.test", "status", "paid"))
	if len(res.Items) != 1 || res.Items[0].ItemID != sales.ID {
		t.Fatalf("result %+v", res)
	}
}

func TestResolveByPhoneVisitorAndItem(t *testing.T) {
	f := newFixture(t, nil)
	c, _, _ := f.st.EnsureContact(f.ctx, store.Contact{ID: "c1"}, []store.Identity{
		{Kind: store.IdentityPhone, Value: "+15551230000"}, {Kind: store.IdentityVisitor, Value: "v-9"}})
	it, _ := f.eng.CreateItem(f.ctx, store.Item{ID: "i1", Pipeline: "sales", ContactID: c.ID}, "")
	for _, s := range []normalize.Subject{{Phone: "+15551230000"}, {VisitorID: "v-9"}, {ItemID: it.ID}} {
		e := event("crm.lost", "")
		e.Subject = s
		res, err := f.eng.Apply(f.ctx, e)
		if err != nil || len(res.Items) != 1 || res.Items[0].ItemID != it.ID {
			t.Fatalf("subject %+v: %+v %v", s, res, err)
		}
	}
}

func TestResolveUnmatched(t *testing.T) {
	f := newFixture(t, nil)
	for _, e := range []*normalize.Event{event("email.incoming", "nobody@x.test"), event("email.incoming", "")} {
		res, err := f.eng.Apply(f.ctx, e)
		if err != nil || !res.Unmatched || res.Note == "" {
			t.Fatalf("%+v %v", res, err)
		}
	}
	e := event("crm.lost", "")
	e.Subject.ItemID = "missing"
	if res, _ := f.eng.Apply(f.ctx, e); !res.Unmatched {
		t.Fatalf("unknown item id matched: %+v", res)
	}
}

// architecture §4: a connector configured to create makes one contact and one
// item, then applies the event to it; a second event reuses them.
func TestResolveCreate(t *testing.T) {
	f := newFixture(t, map[string]CreateSpec{"test": {Pipeline: "sales", Stage: "new", Responsible: "dan"}})
	e := event("email.incoming", "New@Lead.test")
	e.Subject.Name = "New Lead"
	d := f.apply(e)
	if d.To != "contacted" {
		t.Fatalf("created item not moved by its event: %+v", d)
	}
	it, err := f.st.GetItem(f.ctx, d.ItemID)
	if err != nil || it.Responsible != "dan" || it.Pipeline != "sales" {
		t.Fatalf("%+v %v", it, err)
	}
	c, err := f.st.FindContact(f.ctx, store.Identity{Kind: store.IdentityEmail, Value: "new@lead.test"})
	if err != nil || c.ID != it.ContactID || c.Name != "New Lead" {
		t.Fatalf("%+v %v", c, err)
	}
	d2 := f.apply(event("crm.lost", "new@lead.test"))
	if d2.ItemID != it.ID {
		t.Fatalf("second event created another item %s", d2.ItemID)
	}
	items, _ := f.st.ListItems(f.ctx, store.ItemFilter{ContactID: c.ID})
	if len(items) != 1 {
		t.Fatalf("%d items, want 1", len(items))
	}
}

// Rule 8: the decisions of an (event, item) pair are stored and returned.
func TestExplainStored(t *testing.T) {
	f := newFixture(t, nil)
	it := f.item("sales", "contacted", "ann@client.test")
	e := event("webhook.received", "ann@client.test", "code", "a")
	if _, err := f.st.Append(f.ctx, e); err != nil {
		t.Fatal(err)
	}
	f.apply(e)
	_, ds, err := f.st.GetEvent(f.ctx, e.ID)
	if err != nil || len(ds) != 1 || ds[0].ItemID != it.ID || !ds[0].Moved {
		t.Fatalf("%+v %v", ds, err)
	}
	o := outcomes(ds[0])
	if o["hook-a"] != OutcomeNotEligible || o["hook-a2"] != OutcomeWon || o["hook-b"] != OutcomeNotMet {
		t.Fatalf("stored outcomes %v", o)
	}
}

// architecture §4: a reply naming a message we sent goes to that message's item
// before any address lookup, even from another address.
func TestResolveReply(t *testing.T) {
	f := newFixture(t, nil)
	ann := f.item("sales", "new", "ann@client.test")
	bob := f.item("sales", "new", "bob@client.test")
	if err := store.PutMessageRef(f.ctx, f.st, "<m1@stagegate.test>", store.MessageRef{ItemID: bob.ID}, 0); err != nil {
		t.Fatal(err)
	}
	e := event("email.incoming", "ann@client.test", "references", "<zz@x> <m1@STAGEGATE.test>", "in_reply_to", "<unknown@x>")
	d := f.apply(e)
	if d.ItemID != bob.ID || f.stage(bob.ID) != "contacted" || f.stage(ann.ID) != "new" {
		t.Fatalf("reply went to %s, want %s", d.ItemID, bob.ID)
	}
}

// An auto-reply or bounce from an unknown sender creates no lead, even on a
// connector that creates them; the note says why.
func TestResolveNoLeadForNotCustomerMail(t *testing.T) {
	f := newFixture(t, map[string]CreateSpec{"test": {Pipeline: "sales", Stage: "new"}})
	res, err := f.eng.Apply(f.ctx, event("email.incoming", "mailer-daemon@x.test", AttrNotCustomerMail, "bounce"))
	if err != nil || !res.Unmatched || !strings.Contains(res.Note, "bounce") {
		t.Fatalf("%+v %v", res, err)
	}
	if items, _ := f.st.ListItems(f.ctx, store.ItemFilter{}); len(items) != 0 {
		t.Fatalf("created %d items", len(items))
	}
}

// A mail we sent to a customer records its Message-ID for the item, so the
// customer's reply from another address reaches that item.
func TestSentMessageRoutesReplies(t *testing.T) {
	f := newFixture(t, nil)
	it := f.item("support", "open", "ann@client.test")
	other := f.item("sales", "new", "assistant@client.test")
	sent := event("email.sent", "ann@client.test", "message_id", "<out-1@us.test>")
	if _, err := f.eng.Apply(f.ctx, sent); err != nil {
		t.Fatal(err)
	}
	reply := event("email.incoming", "assistant@client.test", "in_reply_to", "<out-1@us.test>")
	d := f.apply(reply)
	if d.ItemID != it.ID || f.stage(it.ID) != "answered" || f.stage(other.ID) != "new" {
		t.Fatalf("reply went to %s (%+v)", d.ItemID, d)
	}
}

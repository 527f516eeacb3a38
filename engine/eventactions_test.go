package engine

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

// formAutoreply is an event action on the form "contact" of connector site.
func formAutoreply() []EventAction {
	return []EventAction{{Connector: "site", Type: normalize.FormSubmitted, Channel: "contact", Name: "autoreply",
		NeedsEmail: true, Action: ActionSpec{Type: "probe"}}}
}

func formEvent(id, email string) *normalize.Event {
	return &normalize.Event{ID: id, Type: normalize.FormSubmitted, Connector: "site", Channel: "contact",
		Subject: normalize.Subject{Email: email, Name: "Ann"}, OccurredAt: t0, ReceivedAt: t0,
		Attrs: map[string]string{"field.topic": "pricing"}}
}

// An event action is queued with the event, whatever the event reached,
// and survives the process: a new engine on the reopened store runs it,
// once, with the event's key and address. Applying the event again queues
// nothing; an event without an email address queues nothing and says so.
func TestEventActionQueuedWithEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sg.db")
	c := newClock()
	open := func() (store.Store, *Engine, *probeRunner) {
		st, err := bolt.Open(store.Config{Path: path, DedupWindow: time.Hour}, bolt.Options{Now: c.now})
		if err != nil {
			t.Fatal(err)
		}
		p := &probeRunner{log: LogAction{Store: st}}
		eng, err := New(Options{Store: st, Now: c.now, Actions: p, EventActions: formAutoreply()})
		if err != nil {
			t.Fatal(err)
		}
		return st, eng, p
	}
	st, eng, _ := open()
	ev := formEvent("f1", "ann@client.test")
	res, err := eng.Apply(t.Context(), ev)
	if err != nil || !res.Unmatched {
		t.Fatalf("Apply: %+v, %v", res, err)
	}
	key := EventActionKey("f1", "autoreply")
	en, err := st.GetOutbox(t.Context(), ActionID(key))
	if err != nil || en.Status != store.OutboxPending || en.Key != key || en.ItemID != "" || en.Type != "probe" {
		t.Fatalf("queued entry %+v, %v", en, err)
	}
	// The process ends before its runner got to it.
	st.Close()

	st, eng, p := open()
	defer st.Close()
	if n, err := eng.DeliverDue(t.Context()); err != nil || n != 1 {
		t.Fatalf("DeliverDue = %d, %v; want 1", n, err)
	}
	ran := p.ran()
	if len(ran) != 1 {
		t.Fatalf("ran %d, want 1", len(ran))
	}
	in := ran[0]
	if in.Key() != key || in.DefaultTo != "ann@client.test" || in.Event == nil || in.Event.Attrs["field.topic"] != "pricing" ||
		in.Data.Type != string(normalize.FormSubmitted) || in.Data.Contact.Name != "Ann" ||
		len(in.Data.Contact.Identities) != 1 || in.Data.Contact.Identities[0].Value != "ann@client.test" {
		t.Errorf("input %+v", in)
	}
	if got, _ := st.GetOutbox(t.Context(), ActionID(key)); got.Status != store.OutboxDone {
		t.Errorf("entry after the run %+v", got)
	}

	// The same event again: nothing new to run.
	if _, err := eng.Apply(t.Context(), formEvent("f1", "ann@client.test")); err != nil {
		t.Fatal(err)
	}
	if n, _ := eng.DeliverDue(t.Context()); n != 0 {
		t.Errorf("DeliverDue after applying the event again = %d, want 0", n)
	}

	// No email address: not queued, and the event's note says why; other
	// forms and connectors have no autoreply.
	res, err = eng.Apply(t.Context(), formEvent("f2", ""))
	if err != nil || !strings.Contains(res.Note, "autoreply not sent: the submission has no email address") {
		t.Errorf("Apply without email: %+v, %v", res, err)
	}
	other := formEvent("f3", "bo@client.test")
	other.Channel = "newsletter"
	if _, err := eng.Apply(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"f2", "f3"} {
		if _, err := st.GetOutbox(t.Context(), ActionID(EventActionKey(id, "autoreply"))); err == nil {
			t.Errorf("event %s queued an autoreply", id)
		}
	}
	if n, _ := eng.DeliverDue(t.Context()); n != 0 {
		t.Errorf("DeliverDue = %d, want 0", n)
	}
}

// A configured event action whose type the runner does not know is an
// error of New.
func TestEventActionChecked(t *testing.T) {
	f := newFixture(t, nil)
	ea := formAutoreply()
	ea[0].Action.Type = "nope"
	if _, err := New(Options{Store: f.st, EventActions: ea}); err == nil || !strings.Contains(err.Error(), `unknown action type "nope"`) {
		t.Errorf("New = %v", err)
	}
}

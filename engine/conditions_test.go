package engine

import (
	"testing"

	"github.com/stagegate/stagegate/normalize"
)

func ptr[T any](v T) *T { return &v }

// Rule 7: each trigger type's conditions, matched against events.
func TestConditions(t *testing.T) {
	cases := []struct {
		name string
		trig Trigger
		ev   normalize.Event
		want bool
	}{
		{"mailbox any", Trigger{Type: "email.incoming"}, ev("email.incoming", "mailbox", "sales@co"), true},
		{"mailbox match", Trigger{Type: "email.incoming", Mailbox: "Sales@co"}, ev("email.incoming", "mailbox", "sales@co"), true},
		{"mailbox other", Trigger{Type: "email.incoming", Mailbox: "help@co"}, ev("email.incoming", "mailbox", "sales@co"), false},
		{"not customer mail", Trigger{Type: "email.incoming"}, ev("email.incoming", AttrNotCustomerMail, "auto-submitted"), false},
		{"open human", Trigger{Type: "email.opened"}, ev("email.opened", "machine", "false"), true},
		{"open machine", Trigger{Type: "email.opened"}, ev("email.opened", "machine", "true"), false},
		{"open machine allowed", Trigger{Type: "email.opened", HumanOnly: ptr(false)}, ev("email.opened", "machine", "true"), true},
		{"click prefix", Trigger{Type: "email.clicked", URL: "https://x.test/p"}, ev("email.clicked", "url", "https://x.test/pricing?a=1"), true},
		{"click prefix miss", Trigger{Type: "email.clicked", URL: "https://x.test/p"}, ev("email.clicked", "url", "https://x.test/q"), false},
		{"click exact", Trigger{Type: "email.clicked", URL: "https://x.test/p", Match: "exact"}, ev("email.clicked", "url", "https://x.test/pricing"), false},
		{"click machine", Trigger{Type: "email.clicked", URL: "https://x.test/"}, ev("email.clicked", "url", "https://x.test/", "machine", "true"), false},
		{"line formats", Trigger{Type: "call.inbound", Line: "+1 (555) 000-1111"}, ev("call.inbound", "line", "+15550001111"), true},
		{"line other", Trigger{Type: "call.missed", Line: "+15550001111"}, ev("call.missed", "line", "+15550002222"), false},
		{"line any", Trigger{Type: "call.outbound"}, ev("call.outbound", "line", "+15550002222"), true},
		{"channel", Trigger{Type: "chat.started", Channel: "web"}, evc("chat.started", "web"), true},
		{"channel other", Trigger{Type: "chat.started", Channel: "web"}, evc("chat.started", "tg"), false},
		{"text case", Trigger{Type: "chat.text", Text: "Price"}, ev("chat.message", "text", "the price?"), false},
		{"text case insensitive", Trigger{Type: "chat.text", Text: "Price", CaseSensitive: ptr(false)}, ev("chat.message", "text", "the PRICE?"), true},
		{"text word order", Trigger{Type: "chat.text", Text: "price list"}, ev("chat.message", "text", "list price"), false},
		{"text exact", Trigger{Type: "chat.text", Text: "hi", Match: "exact"}, ev("chat.message", "text", "hi there"), false},
		{"text regex", Trigger{Type: "chat.text", Text: `\bprice\b`, Match: "regex"}, ev("chat.message", "text", "a price!"), true},
		{"reaction over", Trigger{Type: "chat.reaction_time", Seconds: ptr(60.0)}, ev("chat.accepted", "reaction_s", "61"), true},
		{"reaction under", Trigger{Type: "chat.reaction_time", Seconds: ptr(60.0)}, ev("chat.accepted", "reaction_s", "60"), false},
		{"reaction missing", Trigger{Type: "chat.reaction_time", Seconds: ptr(60.0)}, ev("chat.accepted"), false},
		{"form any", Trigger{Type: "form.submitted"}, ev("form.submitted", "form_id", "f1", "kind", "form"), true},
		{"form named", Trigger{Type: "form.submitted", Form: "f2"}, ev("form.submitted", "form_id", "f1"), false},
		{"callback", Trigger{Type: "form.callback"}, ev("form.submitted", "form_id", "f1", "kind", "callback"), true},
		{"callback plain form", Trigger{Type: "form.callback"}, ev("form.submitted", "form_id", "f1", "kind", "form"), false},
		{"webhook code", Trigger{Type: "webhook.received", Code: "x"}, ev("webhook.received", "code", "x"), true},
		{"webhook code other", Trigger{Type: "webhook.received", Code: "x"}, ev("webhook.received", "code", "y"), false},
		{"crm attrs", Trigger{Type: "crm.invoice_paid", Attrs: map[string]string{"status": "paid"}}, ev("crm.invoice_paid", "status", "paid"), true},
		{"crm attrs miss", Trigger{Type: "crm.invoice_paid", Attrs: map[string]string{"status": "paid"}}, ev("crm.invoice_paid", "status", "open"), false},
		{"site attrs", Trigger{Type: "site.visit", Attrs: map[string]string{"url": "/p"}}, ev("site.visit", "url", "/p"), true},
		{"field any value", Trigger{Type: "field.changed", Field: "status"}, ev("item.field_changed", "field", "status", "to", "x"), true},
		{"field removed", Trigger{Type: "field.changed", Field: "status"}, ev("item.field_changed", "field", "status", "to", "", "removed", "true"), true},
		{"field other", Trigger{Type: "field.changed", Field: "status"}, ev("item.field_changed", "field", "budget", "to", "x"), false},
		{"field to exact", Trigger{Type: "field.changed", Field: "status", To: "won"}, ev("item.field_changed", "field", "status", "to", "won"), true},
		{"field to exact miss", Trigger{Type: "field.changed", Field: "status", To: "won"}, ev("item.field_changed", "field", "status", "to", "won-ish"), false},
		{"field to prefix", Trigger{Type: "field.changed", Field: "tier", To: "vip", Match: "prefix"}, ev("item.field_changed", "field", "tier", "to", "vip-gold"), true},
		{"field to prefix miss", Trigger{Type: "field.changed", Field: "tier", To: "vip", Match: "prefix"}, ev("item.field_changed", "field", "tier", "to", "basic"), false},
		{"field to regex", Trigger{Type: "field.changed", Field: "budget", To: `^[0-9]{5,}$`, Match: "regex"}, ev("item.field_changed", "field", "budget", "to", "120000"), true},
		{"field to regex miss", Trigger{Type: "field.changed", Field: "budget", To: `^[0-9]{5,}$`, Match: "regex"}, ev("item.field_changed", "field", "budget", "to", "900"), false},
		{"responsible any", Trigger{Type: "responsible.changed"}, ev("item.responsible_changed", "from", "bob", "to", "carol"), true},
		{"responsible to", Trigger{Type: "responsible.changed", To: "alice"}, ev("item.responsible_changed", "from", "bob", "to", "alice"), true},
		{"responsible to miss", Trigger{Type: "responsible.changed", To: "alice"}, ev("item.responsible_changed", "from", "bob", "to", "carol"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := compilePipeline(Pipeline{ID: "p", Stages: []Stage{{ID: "a"}, {ID: "b", Triggers: []Trigger{c.trig}}}}, "US")
			if err != nil {
				t.Fatal(err)
			}
			tr := p.triggers[0]
			if tr.event != c.ev.Type {
				t.Fatalf("trigger listens to %s, event is %s", tr.event, c.ev.Type)
			}
			got, why := tr.matches(&c.ev)
			if got != c.want {
				t.Fatalf("matches = %v (%s), want %v", got, why, c.want)
			}
			if !got && why == "" {
				t.Fatal("a failed condition must say why")
			}
		})
	}
}

func ev(typ string, kv ...string) normalize.Event {
	a := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		a[kv[i]] = kv[i+1]
	}
	return normalize.Event{Type: normalize.Type(typ), Attrs: a}
}

func evc(typ, channel string) normalize.Event {
	e := ev(typ)
	e.Channel = channel
	return e
}

func TestValidatePipelines(t *testing.T) {
	ps := []Pipeline{{ID: "p", Stages: []Stage{
		{ID: "a", Final: "maybe", Triggers: []Trigger{{Type: "email.clicked"}, {Type: "nope"}, {Type: "call.inbound", URL: "x"}}},
		{ID: "a", Triggers: []Trigger{{Type: "chat.reaction_time"}, {Type: "chat.text", Text: "(", Match: "regex"}}, Actions: []ActionSpec{{Type: "fax"}}},
		{ID: "c", Triggers: []Trigger{{Type: "field.changed"}, {Type: "field.changed", Field: "f", Match: "regex"},
			{Type: "field.changed", Field: "f", To: "(", Match: "regex"}, {Type: "field.changed", Field: "f", Match: "contains"},
			{Type: "responsible.changed", Field: "f"}}},
	}}, {ID: "p", Stages: []Stage{{ID: "x"}}}}
	got := ValidatePipelines(ps, map[string]ActionKind{"log": LogKind()}).Error()
	want := `pipelines[0].stages[0].final: must be "success" or "failure", not "maybe"
pipelines[0].stages[0].triggers[0].url: required
pipelines[0].stages[0].triggers[1].type: unknown trigger type "nope"
pipelines[0].stages[0].triggers[2].url: not a condition of call.inbound triggers
pipelines[0].stages[1].id: duplicate stage id "a"
pipelines[0].stages[1].triggers[0].seconds: required
pipelines[0].stages[1].triggers[1].text: invalid regex: error parsing regexp: missing closing ): ` + "`(`" + `
pipelines[0].stages[1].actions[0].type: unknown action type "fax"
pipelines[0].stages[2].triggers[0].field: required
pipelines[0].stages[2].triggers[1].to: required with match regex
pipelines[0].stages[2].triggers[2].to: invalid regex: error parsing regexp: missing closing ): ` + "`(`" + `
pipelines[0].stages[2].triggers[3].match: must be exact, prefix or regex, not "contains"
pipelines[0].stages[2].triggers[4].field: not a condition of responsible.changed triggers
pipelines[1].id: duplicate pipeline id "p"`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

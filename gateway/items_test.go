package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/store"
)

// itemsConfig has triggers on item changes, and stages whose actions
// change fields (STORE is the store section).
const itemsConfig = `
listen: 127.0.0.1:0
store: STORE
api:
  tokens: ["${TOKEN}"]
pipelines:
  - id: deals
    stages:
      - id: new
      - id: qualified
        triggers:
          - {type: field.changed, name: qualified, field: status, match: prefix, to: qualified, allow_back: true}
        actions:
          - {type: set_field, field: score, value: "10"}
      - id: scored
        triggers:
          - {type: field.changed, name: scored, field: score}
        actions:
          - {type: set_field, field: status, value: qualified-again}
      - id: assigned
        triggers:
          - {type: responsible.changed, name: to alice, to: alice}
      - id: won
        final: success
        triggers:
          - {type: crm.invoice_paid, name: paid}
`

// onBothStores runs test on bolt and on Redis (a real redis-server when
// it is on PATH).
func onBothStores(t *testing.T, test func(t *testing.T, storeYAML string)) {
	t.Run("bolt", func(t *testing.T) { test(t, boltStore(t)) })
	t.Run("redis", func(t *testing.T) {
		srv := redisserver.Start(t)
		test(t, fmt.Sprintf("{driver: redis, url: %q, prefix: %q}", srv.URL(), "gwitems"+randomID()))
	})
}

func startItemsGateway(t *testing.T, storeYAML string) *testGW {
	t.Helper()
	return startGatewayConfig(t, strings.Replace(itemsConfig, "STORE", storeYAML, 1))
}

// newDeal creates an item of the deals pipeline at new, responsible bob.
func (tg *testGW) newDeal(fields map[string]string) store.Item {
	tg.t.Helper()
	var it store.Item
	if st := tg.call("POST", "/api/v1/items", map[string]any{"pipeline": "deals", "responsible": "bob", "fields": fields}, &it); st != http.StatusCreated {
		tg.t.Fatalf("create item: %d", st)
	}
	return it
}

// PATCH sets and removes fields and the responsible user, once per version
// (If-Match), records each change in the timeline and emits one event per
// change.
func TestPatchItem(t *testing.T) {
	onBothStores(t, func(t *testing.T, storeYAML string) {
		tg := startItemsGateway(t, storeYAML)
		it := tg.newDeal(map[string]string{"source": "web"})
		var got patchItemReply
		st, h := tg.callHeaders("PATCH", "/api/v1/items/"+it.ID, map[string]string{"If-Match": `"1"`},
			map[string]any{"fields": map[string]any{"note": "call back", "source": nil}, "responsible": "carol", "as_user": "dave"}, &got)
		if st != http.StatusOK || got.Version != 2 || got.Fields["note"] != "call back" || got.Fields["source"] != "" || got.Responsible != "carol" || h.Get("ETag") != `"2"` {
			t.Fatalf("PATCH: %d %+v (ETag %s)", st, got, h.Get("ETag"))
		}
		want := []string{"item:" + it.ID + ":v2:f:note", "item:" + it.ID + ":v2:f:source", "item:" + it.ID + ":v2:responsible"}
		if strings.Join(got.Events, " ") != strings.Join(want, " ") {
			t.Fatalf("events %q, want %q", got.Events, want)
		}
		var evr eventReply
		if st := tg.call("GET", "/api/v1/events/"+want[1], nil, &evr); st != http.StatusOK ||
			evr.Event.Type != "item.field_changed" || evr.Event.Attrs["field"] != "source" || evr.Event.Attrs["from"] != "web" ||
			evr.Event.Attrs["to"] != "" || evr.Event.Attrs["removed"] != "true" || evr.Event.Attrs["actor"] != "dave" {
			t.Fatalf("event: %d %+v", st, evr)
		}
		// A stale If-Match changes nothing.
		var apiErr apiError
		st, h = tg.callHeaders("PATCH", "/api/v1/items/"+it.ID, map[string]string{"If-Match": "1"},
			map[string]any{"fields": map[string]any{"note": "late"}}, &apiErr)
		if st != http.StatusPreconditionFailed || apiErr.Error.Code != "version_mismatch" || h.Get("ETag") != `"2"` {
			t.Fatalf("stale If-Match: %d %+v", st, apiErr)
		}
		var cur store.Item
		if st, h := tg.callHeaders("GET", "/api/v1/items/"+it.ID, nil, nil, &cur); st != 200 || cur.Version != 2 || cur.Fields["note"] != "call back" || h.Get("ETag") != `"2"` {
			t.Fatalf("item after a stale PATCH: %+v", cur)
		}
		// The same values again change nothing and emit nothing.
		if st := tg.call("PATCH", "/api/v1/items/"+it.ID, map[string]any{"fields": map[string]any{"note": "call back"}}, &got); st != 200 || got.Version != 2 || len(got.Events) != 0 {
			t.Fatalf("no-op PATCH: %d %+v", st, got)
		}
		var tl struct{ Entries []store.TimelineEntry }
		tg.call("GET", "/api/v1/items/"+it.ID+"/timeline", nil, &tl)
		if len(tl.Entries) != 4 {
			t.Fatalf("timeline %+v", tl.Entries)
		}
		if e := tl.Entries[1]; e.Kind != store.EntryFieldChanged || e.Field != "note" || e.From != "" || e.To != "call back" || e.Actor != "dave" || e.EventID != want[0] {
			t.Fatalf("entry %+v", e)
		}
		if e := tl.Entries[3]; e.Kind != store.EntryResponsibleChanged || e.From != "bob" || e.To != "carol" {
			t.Fatalf("entry %+v", e)
		}
		for _, c := range []struct {
			id     string
			body   any
			status int
			code   string
			says   string
		}{
			{"i_nope", map[string]any{"responsible": "x"}, 404, "not_found", `no item "i_nope"`},
			{it.ID, map[string]any{"fields": map[string]any{"bad key": "x"}}, 422, "bad_patch", "fields.bad key"},
			{it.ID, map[string]any{"responsible": ""}, 422, "bad_patch", "responsible"},
			{it.ID, map[string]any{}, 422, "bad_patch", "nothing to change"},
			{it.ID, map[string]any{"fieldz": map[string]any{}}, 400, "bad_json", "fieldz"},
		} {
			var e apiError
			if st := tg.call("PATCH", "/api/v1/items/"+c.id, c.body, &e); st != c.status || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.says) {
				t.Errorf("PATCH %s %v: %d %+v, want %d %s naming %q", c.id, c.body, st, e, c.status, c.code, c.says)
			}
		}
		// item.* events come from item changes only.
		var e apiError
		if st := tg.call("POST", "/api/v1/events", map[string]any{"id": "x", "type": "item.field_changed", "subject": map[string]string{"item_id": it.ID}}, &e); st != 422 {
			t.Fatalf("posted item.field_changed: %d %+v", st, e)
		}
	})
}

// A PATCH whose field change moves the item to a stage whose action sets
// another field, which moves it on to a stage whose action sets the first
// field again: that would move it back where the chain started, so the
// engine refuses that move (chain_stopped, "action loop stopped"), and the
// chain ends with the item at the second stage.
func TestFieldChangeChainStops(t *testing.T) {
	onBothStores(t, func(t *testing.T, storeYAML string) {
		tg := startItemsGateway(t, storeYAML)
		it := tg.newDeal(nil)
		var got patchItemReply
		if st := tg.call("PATCH", "/api/v1/items/"+it.ID+"?wait=5s", map[string]any{"fields": map[string]string{"status": "qualified"}}, &got); st != 200 ||
			got.Applied == nil || !*got.Applied || len(got.Decisions) != 1 || got.Decisions[0].To != "qualified" {
			t.Fatalf("PATCH: %d %+v", st, got)
		}
		last := tg.waitTimeline(it.ID, func(e store.TimelineEntry) bool { return e.Kind == store.EntryChainStopped })
		if last.Kind != store.EntryChainStopped || last.From != "scored" || last.To != "qualified" || !strings.Contains(last.Message, "loop") {
			t.Fatalf("last timeline entry = %+v", last)
		}
		time.Sleep(200 * time.Millisecond)
		var cur store.Item
		tg.call("GET", "/api/v1/items/"+it.ID, nil, &cur)
		if cur.Stage != "scored" || cur.Fields["score"] != "10" || cur.Fields["status"] != "qualified-again" {
			t.Fatalf("item %+v, want at scored with both fields set", cur)
		}
		var tl struct{ Entries []store.TimelineEntry }
		tg.call("GET", "/api/v1/items/"+it.ID+"/timeline", nil, &tl)
		var kinds []string
		for _, e := range tl.Entries {
			kinds = append(kinds, e.Kind+":"+e.To)
		}
		want := "created:new field_changed:qualified move:qualified action: field_changed:10 move:scored action: field_changed:qualified-again chain_stopped:qualified"
		if strings.Join(kinds, " ") != want {
			t.Fatalf("timeline\n%s\nwant\n%s", strings.Join(kinds, " "), want)
		}
		// responsible.changed moves too.
		if st := tg.call("PATCH", "/api/v1/items/"+it.ID+"?wait=5s", map[string]any{"responsible": "alice"}, &got); st != 200 || len(got.Decisions) != 1 || got.Decisions[0].To != "assigned" {
			t.Fatalf("PATCH responsible: %d %+v", st, got)
		}
	})
}

// The dry run answers what an event would do to each item — one that
// would move, one that would not — and writes nothing: the items keep
// their versions and timelines, the event is not recorded, no action is
// queued.
func TestExplainDryRun(t *testing.T) {
	onBothStores(t, func(t *testing.T, storeYAML string) {
		tg := startItemsGateway(t, storeYAML)
		moves := tg.newDeal(nil)
		stays := tg.newDeal(nil)
		if st := tg.call("POST", "/api/v1/items/"+stays.ID+"/move", map[string]string{"stage": "assigned"}, nil); st != 200 {
			t.Fatalf("move: %d", st)
		}
		explain := func(typ, itemID string, attrs map[string]string) explainReply {
			t.Helper()
			var rep explainReply
			ev := map[string]any{"id": "dry-1", "type": typ, "subject": map[string]string{"item_id": itemID}, "attrs": attrs}
			if st := tg.call("POST", "/api/v1/explain", ev, &rep); st != 200 || len(rep.Items) != 1 || rep.Duplicate {
				t.Fatalf("explain: %d %+v", st, rep)
			}
			return rep
		}
		if d := explain("item.field_changed", moves.ID, map[string]string{"field": "status", "to": "qualified"}).Items[0]; !d.Moved || d.To != "qualified" || d.From != "new" || outcomes(d)["qualified"] != "won" {
			t.Fatalf("would-move verdict %+v", d)
		}
		if d := explain("item.responsible_changed", stays.ID, map[string]string{"to": "alice"}).Items[0]; d.Moved || d.To != "" || outcomes(d)["to alice"] != "not_eligible" {
			t.Fatalf("would-stay verdict %+v", d)
		}
		var rep explainReply
		if st := tg.call("POST", "/api/v1/explain", map[string]any{"type": "crm.invoice_paid", "subject": map[string]string{"email": "who@x.test"}}, &rep); st != 200 || !rep.Unmatched || rep.Event.ID != "api:explain" {
			t.Fatalf("unmatched explain: %d %+v", st, rep)
		}
		var e apiError
		if st := tg.call("POST", "/api/v1/explain", map[string]any{"type": "nope", "subject": map[string]string{"email": "a@b.test"}}, &e); st != 422 {
			t.Fatalf("invalid event: %d %+v", st, e)
		}
		for id, want := range map[string]int64{moves.ID: 1, stays.ID: 2} {
			var it store.Item
			tg.call("GET", "/api/v1/items/"+id, nil, &it)
			var tl struct{ Entries []store.TimelineEntry }
			tg.call("GET", "/api/v1/items/"+id+"/timeline", nil, &tl)
			if it.Version != want || len(tl.Entries) != int(want) {
				t.Fatalf("item %s after explain: version %d, %d timeline entries; want %d", id, it.Version, len(tl.Entries), want)
			}
		}
		if st := tg.call("GET", "/api/v1/events/api:dry-1", nil, nil); st != http.StatusNotFound {
			t.Fatalf("explained event recorded: %d", st)
		}
		var acts struct{ Actions []store.OutboxEntry }
		if tg.call("GET", "/api/v1/actions?item="+moves.ID, nil, &acts); len(acts.Actions) != 0 {
			t.Fatalf("explain queued actions %+v", acts.Actions)
		}
	})
}

func outcomes(d store.ItemDecisions) map[string]string {
	m := map[string]string{}
	for _, x := range d.Decisions {
		m[x.Trigger] = x.Outcome
	}
	return m
}

// GET /api/v1/items pages with a cursor and filters by responsible and
// updated_since; GET /api/v1/contacts finds contacts by email or phone.
func TestListItemsPagesAndContacts(t *testing.T) {
	onBothStores(t, func(t *testing.T, storeYAML string) {
		tg := startItemsGateway(t, storeYAML)
		var ids []string
		for range 5 {
			ids = append(ids, tg.newDeal(nil).ID)
		}
		var mid time.Time
		for i, id := range ids {
			if i == 3 {
				time.Sleep(5 * time.Millisecond)
				mid = time.Now()
				time.Sleep(5 * time.Millisecond)
			}
			if i%2 == 1 || i == 4 {
				if st := tg.call("PATCH", "/api/v1/items/"+id, map[string]any{"responsible": "carol"}, nil); st != 200 {
					t.Fatalf("PATCH: %d", st)
				}
			}
		}
		var got []string
		path := "/api/v1/items?pipeline=deals&limit=2"
		for range 5 {
			var page listItemsReply
			if st := tg.call("GET", path, nil, &page); st != 200 {
				t.Fatalf("list: %d", st)
			}
			for _, it := range page.Items {
				got = append(got, it.ID)
			}
			if page.Next == "" {
				break
			}
			path = "/api/v1/items?pipeline=deals&limit=2&cursor=" + page.Next
		}
		if strings.Join(got, " ") != strings.Join(ids, " ") {
			t.Fatalf("pages %q, want %q", got, ids)
		}
		list := func(q string) []string {
			t.Helper()
			var page listItemsReply
			if st := tg.call("GET", "/api/v1/items?"+q, nil, &page); st != 200 {
				t.Fatalf("list %s: %d", q, st)
			}
			var out []string
			for _, it := range page.Items {
				out = append(out, it.ID)
			}
			return out
		}
		if g := list("responsible=carol"); strings.Join(g, " ") != strings.Join([]string{ids[1], ids[3], ids[4]}, " ") {
			t.Fatalf("responsible=carol: %q", g)
		}
		if g := list("updated_since=" + mid.UTC().Format(time.RFC3339Nano)); strings.Join(g, " ") != strings.Join([]string{ids[3], ids[4]}, " ") {
			t.Fatalf("updated_since: %q", g)
		}
		var e apiError
		if st := tg.call("GET", "/api/v1/items?cursor=nope", nil, &e); st != 400 || e.Error.Code != "bad_cursor" {
			t.Fatalf("bad cursor: %d %+v", st, e)
		}
		if st := tg.call("GET", "/api/v1/items?updated_since=yesterday", nil, &e); st != 400 || e.Error.Code != "bad_filter" {
			t.Fatalf("bad updated_since: %d %+v", st, e)
		}

		var it store.Item
		tg.call("POST", "/api/v1/items", map[string]any{"pipeline": "deals", "contact": map[string]string{"email": "Ann@Client.test", "phone": "+1 555 123 0000"}}, &it)
		var found struct{ Contacts []store.Contact }
		if st := tg.call("GET", "/api/v1/contacts?email=ANN@client.test", nil, &found); st != 200 || len(found.Contacts) != 1 || found.Contacts[0].ID != it.ContactID {
			t.Fatalf("by email: %d %+v", st, found)
		}
		if st := tg.call("GET", "/api/v1/contacts?phone=%2B15551230000&email=ann@client.test", nil, &found); st != 200 || len(found.Contacts) != 1 {
			t.Fatalf("by phone and email: %d %+v", st, found)
		}
		if st := tg.call("GET", "/api/v1/contacts?email=who@x.test", nil, &found); st != 200 || len(found.Contacts) != 0 {
			t.Fatalf("unknown: %d %+v", st, found)
		}
		if st := tg.call("GET", "/api/v1/items?contact_id="+it.ContactID, nil, nil); st != 200 {
			t.Fatalf("by contact: %d", st)
		}
		if g := list("contact=" + it.ContactID); len(g) != 1 || g[0] != it.ID {
			t.Fatalf("contact filter: %q", g)
		}
		if st := tg.call("GET", "/api/v1/contacts", nil, &e); st != 400 {
			t.Fatalf("no filter: %d", st)
		}
		if st := tg.call("GET", "/api/v1/contacts?phone=12", nil, &e); st != 422 {
			t.Fatalf("bad phone: %d %+v", st, e)
		}
	})
}

package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/store"
)

type itemReply struct {
	store.Item
}

// The quick-start story: create an item, post a CRM event, see it moved,
// explained and in the timeline; post it again and nothing changes.
func TestAPIFlow(t *testing.T) {
	tg := startGateway(t, boltStore(t))
	var it itemReply
	st := tg.call("POST", "/api/v1/items", map[string]any{"pipeline": "sales", "responsible": "bob",
		"contact": map[string]string{"email": "Ann@Client.test", "phone": "+1 555 123 0000", "name": "Ann"}}, &it)
	if st != http.StatusCreated || it.Stage != "new" || it.ContactID == "" || it.Closed {
		t.Fatalf("create: %d %+v", st, it)
	}
	ev := map[string]any{"id": "inv-77", "type": "crm.invoice_paid", "subject": map[string]string{"email": "ann@client.test"},
		"attrs": map[string]string{"amount": "10"}}
	var rep postEventReply
	if st := tg.call("POST", "/api/v1/events?wait=5s", ev, &rep); st != http.StatusOK || rep.Duplicate || rep.Applied == nil || !*rep.Applied {
		t.Fatalf("post event: %d %+v", st, rep)
	}
	if len(rep.Decisions) != 1 || rep.Decisions[0].To != "won" || rep.Decisions[0].Decisions[0].Outcome != "won" {
		t.Fatalf("decisions %+v", rep.Decisions)
	}
	var again postEventReply
	if st := tg.call("POST", "/api/v1/events", ev, &again); st != http.StatusAccepted || !again.Duplicate || again.EventID != rep.EventID {
		t.Fatalf("repost: %d %+v", st, again)
	}
	var got itemReply
	tg.call("GET", "/api/v1/items/"+it.ID, nil, &got)
	if got.Stage != "won" || !got.Closed || got.Version != 2 {
		t.Fatalf("item %+v", got)
	}
	var tl struct{ Entries []store.TimelineEntry }
	tg.call("GET", "/api/v1/items/"+it.ID+"/timeline", nil, &tl)
	if len(tl.Entries) != 2 || tl.Entries[1].From != "new" || tl.Entries[1].To != "won" ||
		tl.Entries[1].Trigger != "paid" || tl.Entries[1].EventID != rep.EventID || tl.Entries[1].Actor != "bob" {
		t.Fatalf("timeline %+v", tl.Entries)
	}
	var evr eventReply
	if st := tg.call("GET", "/api/v1/events/"+rep.EventID, nil, &evr); st != http.StatusOK || !evr.Applied || len(evr.Items) != 1 {
		t.Fatalf("get event: %d %+v", st, evr)
	}
	// Manual move back, with its actions.
	var moved itemReply
	if st := tg.call("POST", "/api/v1/items/"+it.ID+"/move", map[string]string{"stage": "engaged", "as_user": "carol"}, &moved); st != 200 || moved.Stage != "engaged" || moved.Closed {
		t.Fatalf("move: %d %+v", st, moved)
	}
	// Actions run from the outbox, soon after the move: wait for the entry.
	last := tg.waitTimeline(it.ID, func(e store.TimelineEntry) bool { return e.Kind == store.EntryAction })
	if last.Kind != store.EntryAction || last.Message != "engaged" || last.Actor != "carol" {
		t.Fatalf("last entry %+v", last)
	}
	var list struct{ Items []store.Item }
	tg.call("GET", "/api/v1/items?pipeline=sales&stage=engaged", nil, &list)
	if len(list.Items) != 1 || list.Items[0].ID != it.ID {
		t.Fatalf("list %+v", list)
	}
	tg.call("GET", "/api/v1/items?pipeline=sales&stage=won", nil, &list)
	if len(list.Items) != 0 {
		t.Fatalf("list won %+v", list)
	}
}

func TestAPIUnmatched(t *testing.T) {
	tg := startGateway(t, boltStore(t))
	var rep postEventReply
	tg.call("POST", "/api/v1/events?wait=5s", map[string]any{"id": "x1", "type": "crm.engaged", "subject": map[string]string{"email": "who@x.test"}}, &rep)
	if !rep.Unmatched || rep.Note == "" {
		t.Fatalf("%+v", rep)
	}
	var um struct{ Events []store.EventRecord }
	tg.call("GET", "/api/v1/unmatched", nil, &um)
	if len(um.Events) != 1 || um.Events[0].Event.ID != rep.EventID {
		t.Fatalf("%+v", um)
	}
}

// Bad input gets a clear JSON error with the right status and changes nothing.
func TestAPIErrors(t *testing.T) {
	tg := startGateway(t, boltStore(t))
	var it itemReply
	tg.call("POST", "/api/v1/items", map[string]any{"pipeline": "sales"}, &it)
	cases := []struct {
		name, token, method, path string
		body                      any
		status                    int
		code                      string
	}{
		{"no token", "", "GET", "/api/v1/items", nil, 401, "unauthorized"},
		{"wrong token", "nope", "GET", "/api/v1/items", nil, 401, "unauthorized"},
		{"malformed json", testToken, "POST", "/api/v1/items", `{"pipeline":`, 400, "bad_json"},
		{"unknown field", testToken, "POST", "/api/v1/items", `{"pipeline":"sales","color":1}`, 400, "bad_json"},
		{"unknown pipeline", testToken, "POST", "/api/v1/items", `{"pipeline":"nope"}`, 422, "unknown_pipeline"},
		{"unknown stage", testToken, "POST", "/api/v1/items", `{"pipeline":"sales","stage":"nope"}`, 422, "unknown_stage"},
		{"bad email", testToken, "POST", "/api/v1/items", `{"pipeline":"sales","contact":{"email":"nope"}}`, 422, "bad_contact"},
		{"unknown item", testToken, "GET", "/api/v1/items/nope", nil, 404, "not_found"},
		{"unknown item move", testToken, "POST", "/api/v1/items/nope/move", `{"stage":"won"}`, 404, "not_found"},
		{"move unknown stage", testToken, "POST", "/api/v1/items/" + it.ID + "/move", `{"stage":"nope"}`, 422, "unknown_stage"},
		{"move same stage", testToken, "POST", "/api/v1/items/" + it.ID + "/move", `{"stage":"new"}`, 409, "same_stage"},
		{"too large", testToken, "POST", "/api/v1/items", `{"pipeline":"` + strings.Repeat("x", 5000) + `"}`, 413, "body_too_large"},
		{"event bad type", testToken, "POST", "/api/v1/events", `{"id":"a","type":"nope","subject":{"email":"a@b.c"}}`, 422, "invalid_event"},
		{"event no subject", testToken, "POST", "/api/v1/events", `{"id":"a","type":"crm.x"}`, 422, "invalid_event"},
		{"event bad id", testToken, "POST", "/api/v1/events", `{"id":"a b","type":"crm.x","subject":{"email":"a@b.c"}}`, 422, "invalid_event"},
		{"event bad wait", testToken, "POST", "/api/v1/events?wait=forever", `{}`, 400, "bad_wait"},
		{"unknown event", testToken, "GET", "/api/v1/events/nope", nil, 404, "not_found"},
		{"unknown route", testToken, "GET", "/api/v1/nope", nil, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e apiError
			st := tg.callToken(c.token, c.method, c.path, c.body, &e)
			if st != c.status || e.Error.Code != c.code || e.Error.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", st, e, c.status, c.code)
			}
		})
	}
	var list struct{ Items []store.Item }
	tg.call("GET", "/api/v1/items", nil, &list)
	if len(list.Items) != 1 || list.Items[0].Stage != "new" || list.Items[0].Version != 1 {
		t.Fatalf("bad input changed something: %+v", list.Items)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	tg := startGateway(t, boltStore(t))
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		if st := tg.callToken("", "GET", path, nil, nil); st != want {
			t.Fatalf("%s: %d", path, st)
		}
	}
	tg.call("POST", "/api/v1/events?wait=5s", map[string]any{"id": "m1", "type": "crm.engaged", "subject": map[string]string{"email": "who@x.test"}}, nil)
	resp, err := http.Get(tg.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := new(strings.Builder)
	_, _ = io.Copy(buf, resp.Body)
	for _, want := range []string{`stagegate_events_received_total{connector="api"} 1`, `stagegate_events_applied_total{result="unmatched"} 1`, "stagegate_intake_lag_seconds_bucket"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

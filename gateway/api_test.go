package gateway

import (
	"encoding/json"
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

// rawCall sends a request with the Authorization header auth (as given)
// and returns the status, the headers and the decoded JSON error.
func (tg *testGW) rawCall(auth, method, path, body string) (int, http.Header, apiError, string) {
	tg.t.Helper()
	req, _ := http.NewRequest(method, tg.base+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tg.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	checkContract(tg.t, method, path, req.Header, []byte(body), resp.StatusCode, resp.Header, data)
	var e apiError
	_ = json.Unmarshal(data, &e)
	return resp.StatusCode, resp.Header, e, string(data)
}

// Errors a new user meets trying the API by hand: each says what is wrong
// in plain words, with the right status, and never shows a Go type name.
func TestAPIErrorsPolish(t *testing.T) {
	tg := startGateway(t, boltStore(t))
	var it itemReply
	tg.call("POST", "/api/v1/items", map[string]any{"pipeline": "sales"}, &it)
	bearer := "Bearer " + testToken
	cases := []struct {
		name, auth, method, path, body string
		status                         int
		code                           string
		msg                            []string // substrings of the message
		allow                          string
	}{
		{"lower-case scheme", "bearer " + testToken, "GET", "/api/v1/items", "", 200, "", nil, ""},
		{"upper-case scheme", "BEARER  " + testToken, "GET", "/api/v1/items/" + it.ID, "", 200, "", nil, ""},
		{"basic scheme", "Basic " + testToken, "GET", "/api/v1/items", "", 401, "unauthorized", nil, ""},
		{"wrong method", bearer, "DELETE", "/api/v1/items/" + it.ID, "", 405, "method_not_allowed", []string{"DELETE", "GET"}, "GET, HEAD, PATCH"},
		{"wrong method list", bearer, "PUT", "/api/v1/items", "", 405, "method_not_allowed", nil, "GET, HEAD, POST"},
		{"wrong method public", "", "POST", "/healthz", "", 405, "method_not_allowed", nil, "GET, HEAD"},
		{"unknown api route", bearer, "GET", "/api/v1/nope", "", 404, "not_found", []string{"/api/v1/nope"}, ""},
		{"unknown public path", "", "GET", "/nope", "", 404, "not_found", []string{"/nope"}, ""},
		{"unknown item", bearer, "GET", "/api/v1/items/i_nope", "", 404, "not_found", []string{`item "i_nope"`}, ""},
		{"unknown item timeline", bearer, "GET", "/api/v1/items/i_nope/timeline", "", 404, "not_found", []string{`item "i_nope"`}, ""},
		{"unknown item move", bearer, "POST", "/api/v1/items/i_nope/move", `{"stage":"won"}`, 404, "not_found", []string{`item "i_nope"`}, ""},
		{"unknown event", bearer, "GET", "/api/v1/events/api:nope", "", 404, "not_found", []string{`event "api:nope"`}, ""},
		{"unknown contact", bearer, "GET", "/api/v1/contacts/c_nope", "", 404, "not_found", []string{`contact "c_nope"`}, ""},
		{"unknown action", bearer, "GET", "/api/v1/actions/ac_nope", "", 404, "not_found", []string{`action "ac_nope"`}, ""},
		{"move unknown stage", bearer, "POST", "/api/v1/items/" + it.ID + "/move", `{"stage":"nope"}`, 422, "unknown_stage",
			[]string{`"nope"`, "new, contacted, engaged, won"}, ""},
		{"create unknown stage", bearer, "POST", "/api/v1/items", `{"pipeline":"sales","stage":"nope"}`, 422, "unknown_stage",
			[]string{`"nope"`, "new, contacted, engaged, won"}, ""},
		{"no pipeline", bearer, "POST", "/api/v1/items", `{}`, 422, "missing_pipeline", []string{"pipeline is required"}, ""},
		{"unknown pipeline", bearer, "POST", "/api/v1/items", `{"pipeline":"nope"}`, 422, "unknown_pipeline", []string{`"nope"`, "sales"}, ""},
		{"array for object", bearer, "POST", "/api/v1/items/" + it.ID + "/move", `[]`, 400, "bad_json", []string{"object"}, ""},
		{"number for string", bearer, "POST", "/api/v1/items", `{"pipeline":5}`, 400, "bad_json", []string{"pipeline", "string"}, ""},
		{"unknown field", bearer, "POST", "/api/v1/items", `{"pipeline":"sales","color":1}`, 400, "bad_json", []string{`"color"`}, ""},
		{"empty body", bearer, "POST", "/api/v1/items", ``, 400, "bad_json", []string{"empty"}, ""},
		{"bad time", bearer, "POST", "/api/v1/events", `{"id":"t1","type":"crm.x","subject":{"email":"a@b.test"},"occurred_at":"yesterday"}`,
			400, "bad_json", []string{"occurred_at", "RFC 3339", `"yesterday"`}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, h, e, raw := tg.rawCall(c.auth, c.method, c.path, c.body)
			if st != c.status || e.Error.Code != c.code {
				t.Fatalf("got %d %s, want %d %s", st, raw, c.status, c.code)
			}
			if st < 400 {
				return
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			for _, m := range c.msg {
				if !strings.Contains(e.Error.Message, m) {
					t.Errorf("message %q lacks %q", e.Error.Message, m)
				}
			}
			for _, leak := range []string{"Go value", "gateway.", "normalize.", "2006-01-02", "json:"} {
				if strings.Contains(e.Error.Message, leak) {
					t.Errorf("message %q shows %q", e.Error.Message, leak)
				}
			}
			if c.allow != "" && h.Get("Allow") != c.allow {
				t.Errorf("Allow %q, want %q", h.Get("Allow"), c.allow)
			}
		})
	}
}

package actions

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/engine"
)

// portalToken is the secret part of the fake portal's inbound webhook URL.
const portalToken = "k3y0fth3p0rta1"

// fakePortal emulates a Bitrix24 portal's inbound webhook: it accepts only
// POST /rest/1/<token>/<method> with a JSON body and answers like Bitrix24
// ({"result": …, "time": …}, or {"error": …, "error_description": …}).
type fakePortal struct {
	t      *testing.T
	srv    *httptest.Server
	calls  []portalCall
	answer func(method string, params map[string]any) (int, any)
}

type portalCall struct {
	method string
	params map[string]any
	header http.Header
}

func newPortal(t *testing.T) *fakePortal {
	p := &fakePortal{t: t}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, ok := strings.CutPrefix(r.URL.Path, "/rest/1/"+portalToken+"/")
		if !ok || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"})
			return
		}
		var params map[string]any
		if err := json.NewDecoder(r.Body).Decode(&params); err != nil {
			t.Errorf("portal: body is not JSON: %v", err)
		}
		p.calls = append(p.calls, portalCall{method, params, r.Header.Clone()})
		code, body := http.StatusOK, any(map[string]any{"result": true, "time": map[string]any{"start": 1.0}})
		if p.answer != nil {
			code, body = p.answer(method, params)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakePortal) url() string { return p.srv.URL + "/rest/1/" + portalToken + "/" }

// The requests are the documented REST calls: crm.item.update with
// entityTypeId, id and fields.stageId; crm.automation.trigger with target
// TYPENAME_ID and code.
func TestBitrix24Requests(t *testing.T) {
	p := newPortal(t)
	r := newRunner(t, Config{AllowPrivate: true}, nil)
	update := engine.ActionSpec{Type: "bitrix24", Settings: &Bitrix24{WebhookURL: p.url(), EntityTypeID: 2, StageMap: map[string]string{"won": "C1:WON", "lost": "C1:LOSE"}}}
	if err := r.RunAction(t.Context(), input(ann, update)); err != nil {
		t.Fatal(err)
	}
	smart := engine.ActionSpec{Type: "bitrix24", Settings: &Bitrix24{WebhookURL: p.url(), EntityTypeID: 1032, StageID: "DT1032_7:SUCCESS", IDField: "b24"}}
	item := ann
	item.Fields = map[string]string{"b24": " 77 "}
	if err := r.RunAction(t.Context(), input(item, smart)); err != nil {
		t.Fatal(err)
	}
	trigger := engine.ActionSpec{Type: "bitrix24", Settings: &Bitrix24{WebhookURL: p.url(), Mode: "trigger", EntityTypeID: 2, Code: "nwly5"}}
	if err := r.RunAction(t.Context(), input(ann, trigger)); err != nil {
		t.Fatal(err)
	}
	lead := engine.ActionSpec{Type: "bitrix24", Settings: &Bitrix24{WebhookURL: p.url(), Mode: "trigger", TargetType: "LEAD", Code: "x1"}}
	if err := r.RunAction(t.Context(), input(ann, lead)); err != nil {
		t.Fatal(err)
	}
	want := []portalCall{
		{method: "crm.item.update", params: map[string]any{"entityTypeId": 2.0, "id": 123.0, "fields": map[string]any{"stageId": "C1:WON"}}},
		{method: "crm.item.update", params: map[string]any{"entityTypeId": 1032.0, "id": 77.0, "fields": map[string]any{"stageId": "DT1032_7:SUCCESS"}}},
		{method: "crm.automation.trigger", params: map[string]any{"target": "DEAL_123", "code": "nwly5"}},
		{method: "crm.automation.trigger", params: map[string]any{"target": "LEAD_123", "code": "x1"}},
	}
	if len(p.calls) != len(want) {
		t.Fatalf("%d calls, want %d", len(p.calls), len(want))
	}
	for i, w := range want {
		got := p.calls[i]
		if got.method != w.method || !reflect.DeepEqual(got.params, w.params) {
			t.Errorf("call %d = %s %v, want %s %v", i, got.method, got.params, w.method, w.params)
		}
		if got.header.Get("Idempotency-Key") == "" {
			t.Errorf("call %d has no Idempotency-Key", i)
		}
	}
}

// Bitrix24's answers: its "not now" errors are retried, others fail for
// good; an item without a Bitrix24 id fails for good without a call; no
// message shows the webhook's secret token.
func TestBitrix24Failures(t *testing.T) {
	p := newPortal(t)
	r := newRunner(t, Config{AllowPrivate: true}, nil)
	spec := engine.ActionSpec{Type: "bitrix24", Settings: &Bitrix24{WebhookURL: p.url(), EntityTypeID: 2, StageID: "WON"}}
	for _, tc := range []struct {
		name      string
		code      int
		body      any
		retry     bool
		wantInMsg string
	}{
		{"limit", 503, map[string]string{"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}, true, "QUERY_LIMIT_EXCEEDED"},
		{"not found", 400, map[string]string{"error": "NOT_FOUND", "error_description": "Not found"}, false, "NOT_FOUND: Not found"},
		{"denied", 401, map[string]string{"error": "ACCESS_DENIED", "error_description": "Access denied"}, false, "ACCESS_DENIED"},
		{"bad gateway", 502, "<html>bad gateway</html>", true, "502 Bad Gateway"},
		{"no result", 200, map[string]string{}, true, "without a result"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.answer = func(string, map[string]any) (int, any) { return tc.code, tc.body }
			err := r.RunAction(t.Context(), input(ann, spec))
			if err == nil || permanent(err) == tc.retry || !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Fatalf("error = %v; want retry %v, saying %q", err, tc.retry, tc.wantInMsg)
			}
			if strings.Contains(err.Error(), portalToken) {
				t.Fatalf("error shows the webhook token: %v", err)
			}
		})
	}
	n := len(p.calls)
	item := ann
	item.Fields = nil
	err := r.RunAction(t.Context(), input(item, spec))
	if !permanent(err) || !strings.Contains(err.Error(), `no Bitrix24 id in field "bitrix24_id"`) || len(p.calls) != n {
		t.Fatalf("item without id: %v (%d calls)", err, len(p.calls)-n)
	}
}

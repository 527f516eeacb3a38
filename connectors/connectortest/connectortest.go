// Package connectortest is the contract suite every push (HTTP) connector
// runs, in the spirit of store/storetest: one file per connector package
// calls RunPush with a Setup that says how to build the connector and how
// to make a valid input, plus flags for the differences its README
// documents (the pixel that always answers its GIF, Twilio's bodyless 204).
//
// The suite checks what connectors.Push and the intake promise the sender
// (the contract in the connectors package documentation):
//
//   - an accepted input answers AcceptStatus once its events are durable,
//     and each of its events reaches the intake exactly once;
//   - the same input again (a sender's retry) is a duplicate: the same
//     answer, "duplicate": true unless NoDuplicateFlag, nothing new recorded;
//   - while the intake is unavailable the input gets 503 with Retry-After
//     and an "unavailable" error, nothing is recorded, and the sender's
//     retry once the intake is back is accepted and its events recorded once
//     (AlwaysAnswers: the answer stays AcceptStatus, the rest holds);
//   - a body over MaxBody gets 413 (declared or streamed), is counted as a
//     refusal and submits nothing (not for NoBody inputs);
//   - another method gets 405 with Allow and submits nothing.
//
// The intake is the shared fake of internal/testutil/fakes; connectors'
// own tests use the same one.
package connectortest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/testutil/fakes"
)

// Setup describes one push connector to RunPush.
type Setup struct {
	// New builds a fresh connector whose events go to in, and returns the
	// handler the inputs are served by: the connector itself for an
	// HTTPConnector (paths relative to /in/{name}), a mux with its
	// PublicRoutes for a RouteConnector. Each subtest calls it once.
	New func(t *testing.T, in connectors.Intake) http.Handler
	// Input returns valid input n for a handler New built: the same n is
	// the same input (a sender's retry), different n are different inputs.
	// Input is called after New, once per request.
	Input func(t *testing.T, n int) *http.Request

	// AcceptStatus is the status of an accepted input; 0 means 200.
	AcceptStatus int
	// Events is how many events an accepted input makes; 0 means 1.
	Events int
	// NoDuplicateFlag: the accepted answer has no JSON body with
	// event_id and duplicate (a 204, a GIF, a redirect).
	NoDuplicateFlag bool
	// AlwaysAnswers: the connector answers AcceptStatus whatever happens
	// (the open pixel is always the GIF), so the unavailable intake is not
	// visible in the answer; only in what is recorded.
	AlwaysAnswers bool
	// NoBody: inputs have no body (GET), so there is no body limit to test.
	NoBody bool
	// MaxBody is the connector's body limit (max_body); required unless NoBody.
	MaxBody int64
	// WrongMethods are methods the input's route does not take; nil means
	// GET, PUT, DELETE and PATCH, without the input's own method.
	WrongMethods []string
}

// RunPush runs the push-connector contract against s.
func RunPush(t *testing.T, s Setup) {
	t.Helper()
	if s.AcceptStatus == 0 {
		s.AcceptStatus = http.StatusOK
	}
	if s.Events == 0 {
		s.Events = 1
	}
	if !s.NoBody && s.MaxBody <= 0 {
		t.Fatal("connectortest: Setup.MaxBody is required for inputs with a body")
	}
	t.Run("Accepted", func(t *testing.T) { testAccepted(t, s) })
	t.Run("Replay", func(t *testing.T) { testReplay(t, s) })
	t.Run("Distinct", func(t *testing.T) { testDistinct(t, s) })
	t.Run("Unavailable", func(t *testing.T) { testUnavailable(t, s) })
	if !s.NoBody {
		t.Run("BodyLimit", func(t *testing.T) { testBodyLimit(t, s) })
	}
	t.Run("WrongMethod", func(t *testing.T) { testWrongMethod(t, s) })
}

func start(t *testing.T, s Setup) (http.Handler, *fakes.Intake) {
	in := &fakes.Intake{}
	return s.New(t, in), in
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// accepted checks an answer of an accepted input: its status and, unless
// NoDuplicateFlag, its JSON "duplicate" field (dup nil: either value).
func accepted(t *testing.T, s Setup, w *httptest.ResponseRecorder, dup *bool) {
	t.Helper()
	if w.Code != s.AcceptStatus {
		t.Fatalf("status %d, want %d; body %s", w.Code, s.AcceptStatus, w.Body)
	}
	if s.NoDuplicateFlag {
		return
	}
	var a struct {
		Duplicate *bool `json:"duplicate"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("accepted answer is not JSON: %v; body %s", err, w.Body)
	}
	if a.Duplicate == nil {
		t.Fatalf("no duplicate field in the answer; body %s", w.Body)
	}
	if dup != nil && *a.Duplicate != *dup {
		t.Fatalf("duplicate = %v, want %v; body %s", *a.Duplicate, *dup, w.Body)
	}
}

var (
	isNew = new(bool)
	isDup = func() *bool { b := true; return &b }()
)

// recorded checks that the intake holds want events with distinct ids,
// each submitted once.
func recorded(t *testing.T, in *fakes.Intake, want int) {
	t.Helper()
	evs := in.Events()
	if len(evs) != want {
		t.Fatalf("intake holds %d events (%v), want %d", len(evs), in.IDs(), want)
	}
	for _, ev := range evs {
		if ev.ID == "" || ev.Type == "" || ev.Connector == "" {
			t.Fatalf("event without id, type or connector: %+v", ev)
		}
	}
}

func testAccepted(t *testing.T, s Setup) {
	h, in := start(t, s)
	accepted(t, s, serve(h, s.Input(t, 1)), isNew)
	recorded(t, in, s.Events)
	if n := in.Submits(); n != s.Events {
		t.Fatalf("%d Submit calls for one input, want %d", n, s.Events)
	}
	if r := in.Rejects(); len(r) != 0 {
		t.Fatalf("an accepted input counted refusals %v", r)
	}
}

func testReplay(t *testing.T, s Setup) {
	h, in := start(t, s)
	accepted(t, s, serve(h, s.Input(t, 1)), isNew)
	ids := in.IDs()
	for range 2 {
		accepted(t, s, serve(h, s.Input(t, 1)), isDup)
	}
	recorded(t, in, s.Events)
	if got := in.IDs(); !slices.Equal(got, ids) {
		t.Fatalf("a replay changed what was recorded: %v, then %v", ids, got)
	}
}

func testDistinct(t *testing.T, s Setup) {
	h, in := start(t, s)
	accepted(t, s, serve(h, s.Input(t, 1)), isNew)
	accepted(t, s, serve(h, s.Input(t, 2)), isNew)
	recorded(t, in, 2*s.Events)
}

func testUnavailable(t *testing.T, s Setup) {
	h, in := start(t, s)
	in.SetDown(true)
	w := serve(h, s.Input(t, 1))
	if s.AlwaysAnswers {
		if w.Code != s.AcceptStatus {
			t.Fatalf("status %d while the intake is down, want %d (AlwaysAnswers)", w.Code, s.AcceptStatus)
		}
	} else {
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d while the intake is down, want 503; body %s", w.Code, w.Body)
		}
		if ra := w.Header().Get("Retry-After"); ra != strconv.Itoa(int(connectors.RetryAfter.Seconds())) {
			t.Fatalf("Retry-After %q, want %v in seconds", ra, connectors.RetryAfter)
		}
		if code := errorCode(w); code != "unavailable" {
			t.Fatalf("error code %q, want unavailable; body %s", code, w.Body)
		}
	}
	recorded(t, in, 0)
	in.SetDown(false)
	// The sender retries the same input: it is accepted now and its events
	// are recorded once. Whether the answer says duplicate is the
	// connector's (a telephony callback was durable before the intake
	// failed: it had been received, its events had not).
	accepted(t, s, serve(h, s.Input(t, 1)), nil)
	recorded(t, in, s.Events)
}

func testBodyLimit(t *testing.T, s Setup) {
	for _, declared := range []bool{true, false} {
		name := "Streamed"
		if declared {
			name = "Declared"
		}
		t.Run(name, func(t *testing.T) {
			h, in := start(t, s)
			r := s.Input(t, 1)
			big := bytes.Repeat([]byte("a"), int(s.MaxBody)+1)
			r.Body = io.NopCloser(bytes.NewReader(big))
			r.ContentLength = -1
			if declared {
				r.ContentLength = int64(len(big))
			}
			w := serve(h, r)
			if w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d for %d bytes over a limit of %d, want 413; body %s", w.Code, len(big), s.MaxBody, w.Body)
			}
			if code := errorCode(w); code != "body_too_large" {
				t.Fatalf("error code %q, want body_too_large; body %s", code, w.Body)
			}
			if n := in.Submits(); n != 0 {
				t.Fatalf("%d Submit calls for a body over the limit", n)
			}
			if r := in.Rejects(); len(r) != 1 || !strings.HasSuffix(r[0], "/body_too_large") {
				t.Fatalf("refusals counted %v, want one body_too_large", r)
			}
		})
	}
}

func testWrongMethod(t *testing.T, s Setup) {
	h, in := start(t, s)
	methods := s.WrongMethods
	if methods == nil {
		own := s.Input(t, 1).Method
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			if m != own {
				methods = append(methods, m)
			}
		}
	}
	for _, m := range methods {
		r := s.Input(t, 1)
		r.Method = m
		w := serve(h, r)
		if w.Code != http.StatusMethodNotAllowed {
			t.Fatalf("%s: status %d, want 405; body %s", m, w.Code, w.Body)
		}
		if w.Header().Get("Allow") == "" {
			t.Fatalf("%s: 405 without Allow", m)
		}
	}
	if n := in.Submits(); n != 0 {
		t.Fatalf("%d Submit calls for wrong methods", n)
	}
}

// errorCode is the code of a JSON error answer, "" for another body.
func errorCode(w *httptest.ResponseRecorder) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	return e.Error.Code
}

package actions

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// fakeResolver answers from a table; other names do not exist.
type fakeResolver map[string][]netip.Addr

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if ips, ok := r[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// newRunner builds a runner on cfg (defaults set) with a fake resolver.
func newRunner(t *testing.T, cfg Config, st store.Store) *Runner {
	t.Helper()
	cfg.SetDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	r, err := New(cfg, Options{Store: st, Now: func() time.Time { return t0 },
		Resolver: fakeResolver{"internal.test": {netip.MustParseAddr("10.0.0.5")}}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// input is an action run of spec for item it, entering stage won from new.
func input(it store.Item, spec engine.ActionSpec) engine.ActionInput {
	entry := store.TimelineEntry{ID: "ev:hooks:msg-1", ItemID: it.ID, Kind: store.EntryMove, From: "new", To: "won",
		Trigger: "paid", EventID: "hooks:msg-1", Actor: "bob", At: t0}
	ev := &normalize.Event{ID: "hooks:msg-1", Type: "crm.invoice_paid", Connector: "hooks",
		Subject: normalize.Subject{Email: "ann@client.test"}, Attrs: map[string]string{"amount": "10"}, OccurredAt: t0, ReceivedAt: t0}
	in := engine.ActionInput{
		Item: it, From: "new", Stage: engine.Stage{ID: "won", Final: "success"}, Action: spec, Index: 1,
		Entry: entry, Event: ev, Attempt: 1,
	}
	in.ID = engine.ActionID(in.Key())
	in.Data = engine.ActionData{
		ID: in.ID, IdempotencyKey: in.Key(), Type: "stage.entered", Action: engine.ActionRef{Type: spec.Type, Index: 1},
		Pipeline: "sales", Stage: engine.StageRef{ID: "won", Final: "success"}, PreviousStage: "new", Trigger: "paid",
		Actor: "bob", EnteredAt: t0, Item: it, Event: *ev,
		Contact: store.Contact{ID: "c1", Name: "Ann", Identities: []store.Identity{{Kind: "email", Value: "ann@client.test"}}},
	}
	return in
}

var ann = store.Item{ID: "i-1", Pipeline: "sales", Stage: "won", ContactID: "c1", Responsible: "bob",
	Fields: map[string]string{"bitrix24_id": "123"}, Version: 3, CreatedAt: t0, UpdatedAt: t0}

// recorder is an HTTP target that records requests and answers with the
// queued handlers in turn (then 200).
type recorder struct {
	mu    sync.Mutex
	reqs  []recorded
	plan  []http.HandlerFunc
	srv   *httptest.Server
	calls chan recorded
}

type recorded struct {
	method, path string
	header       http.Header
	body         []byte
	at           time.Time
}

func newRecorder(t *testing.T, plan ...http.HandlerFunc) *recorder {
	rec := &recorder{plan: plan, calls: make(chan recorded, 100)}
	rec.srv = httptest.NewServer(rec)
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	got := recorded{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body, at: time.Now()}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, got)
	var h http.HandlerFunc
	if len(rec.plan) > 0 {
		h, rec.plan = rec.plan[0], rec.plan[1:]
	}
	rec.mu.Unlock()
	rec.calls <- got
	if h != nil {
		h(w, r)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (rec *recorder) requests() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]recorded(nil), rec.reqs...)
}

func status(code int, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
	}
}

// permanent reports whether err is a permanent action error.
func permanent(err error) bool {
	var ae *engine.ActionError
	return errors.As(err, &ae) && ae.Permanent
}

// openStore opens a bolt store in a temp dir.
func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := bolt.Open(store.Config{Path: filepath.Join(t.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

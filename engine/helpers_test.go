package engine

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
	"gopkg.in/yaml.v3"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// testPipelines is the pipeline most tests use, written as in a config file.
const testPipelines = `
- id: sales
  stages:
    - id: new
      triggers:
        - {type: crm.reset, name: reset, allow_back: true}
    - id: contacted
      triggers:
        - {type: email.incoming, name: mail}
        - {type: call.inbound, name: call-main, line: "+1 (555) 000-1111"}
        - {type: webhook.received, name: hook-a, code: a}
    - id: engaged
      actions:
        - {type: log, message: engaged!}
      triggers:
        - {type: email.clicked, name: pricing, url: "https://example.com/pricing"}
        - {type: chat.text, name: price, text: price, allow_back: true, as_user: alice}
        - {type: webhook.received, name: hook-a2, code: a}
        - {type: webhook.received, name: hook-b, code: b}
    - id: proposal
      actions:
        - {type: log}
    - id: won
      final: success
      triggers:
        - {type: crm.invoice_paid, name: paid, attrs: {status: paid}}
        - {type: form.submitted, name: form-any}
      actions:
        - {type: log, message: won}
    - id: lost
      final: failure
      triggers:
        - {type: crm.lost, name: lost}
        - {type: crm.revive, name: revive-never}
- id: support
  stages:
    - id: open
      triggers:
        - {type: email.sent, name: sent-support}
    - id: answered
      triggers:
        - {type: email.incoming, name: support-mail}
`

type clock struct{ ns atomic.Int64 }

func newClock() *clock               { c := &clock{}; c.ns.Store(t0.UnixNano()); return c }
func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }

type fixture struct {
	t     *testing.T
	st    store.Store
	eng   *Engine
	clock *clock
	ctx   context.Context
}

func parsePipelines(t *testing.T, src string) []Pipeline {
	t.Helper()
	var ps []Pipeline
	if err := yaml.Unmarshal([]byte(src), &ps); err != nil {
		t.Fatal(err)
	}
	if errs := ValidatePipelines(ps, LogAction{}.Kinds()); len(errs) > 0 {
		t.Fatal(errs)
	}
	return ps
}

func newFixture(t *testing.T, create map[string]CreateSpec) *fixture {
	t.Helper()
	c := newClock()
	st, err := bolt.Open(store.Config{Path: filepath.Join(t.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := New(Options{Store: st, Pipelines: parsePipelines(t, testPipelines), Create: create, Now: c.now, DefaultRegion: "US"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, st: st, eng: eng, clock: c, ctx: context.Background()}
}

// item creates an item for a new contact with the given email at stage.
func (f *fixture) item(pipeline, stage, email string) store.Item {
	f.t.Helper()
	c, _, err := f.st.EnsureContact(f.ctx, store.Contact{ID: "c-" + email, CreatedAt: t0},
		[]store.Identity{{Kind: store.IdentityEmail, Value: email}})
	if err != nil {
		f.t.Fatal(err)
	}
	it, err := f.eng.CreateItem(f.ctx, store.Item{ID: "it-" + pipeline + "-" + email, Pipeline: pipeline, Stage: stage,
		ContactID: c.ID, Responsible: "bob"}, "")
	if err != nil {
		f.t.Fatal(err)
	}
	return it
}

var evSeq atomic.Int64

// event builds an event of type typ for the subject email with attrs as k, v pairs.
func event(typ, email string, kv ...string) *normalize.Event {
	attrs := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		attrs[kv[i]] = kv[i+1]
	}
	n := evSeq.Add(1)
	return &normalize.Event{
		ID: normalize.MakeID("test", typ, email, string(rune('a'+n%26)), time.Duration(n).String()), Type: normalize.Type(typ),
		Connector: "test", Subject: normalize.Subject{Email: email}, Attrs: attrs, OccurredAt: t0, ReceivedAt: t0,
	}
}

// apply applies ev and returns the verdict for the single item it reached.
func (f *fixture) apply(ev *normalize.Event) store.ItemDecisions {
	f.t.Helper()
	res, err := f.eng.Apply(f.ctx, ev)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(res.Items) != 1 {
		f.t.Fatalf("event %s reached %d items (note %q), want 1", ev.ID, len(res.Items), res.Note)
	}
	return res.Items[0]
}

// deliver runs the actions that are due (the outbox worker, synchronously)
// and fails unless there were n.
func (f *fixture) deliver(n int) {
	f.t.Helper()
	got, err := f.eng.DeliverDue(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	if got != n {
		f.t.Fatalf("ran %d due actions, want %d", got, n)
	}
}

func (f *fixture) stage(id string) string {
	f.t.Helper()
	it, err := f.st.GetItem(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return it.Stage
}

func outcomes(d store.ItemDecisions) map[string]string {
	m := map[string]string{}
	for _, x := range d.Decisions {
		m[x.Trigger] = x.Outcome
	}
	return m
}

package telephony

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

// linePipelines has one trigger per line, each written differently from
// how the providers write the numbers, and a missed-call trigger.
const linePipelines = `
- id: sales
  stages:
    - id: new
    - id: main_called
      triggers:
        - {type: call.inbound, name: main, line: "+1 (555) 000-1111"}
    - id: support_called
      triggers:
        - {type: call.inbound, name: support, line: "555.000.2222"}
    - id: support_missed
      triggers:
        - {type: call.missed, name: support-missed, line: "(555) 000 2222"}
`

// lineEngine is a real engine over a real bolt store; unknown callers of
// connector "tel" become leads at sales/new.
func lineEngine(t *testing.T) (*engine.Engine, store.Store) {
	t.Helper()
	st, err := bolt.Open(store.Config{Path: filepath.Join(t.TempDir(), "sg.db"), DedupWindow: time.Hour}, bolt.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var ps []engine.Pipeline
	if err := yaml.Unmarshal([]byte(linePipelines), &ps); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Store: st, Pipelines: ps, DefaultRegion: "US",
		Create: map[string]engine.CreateSpec{"tel": {Pipeline: "sales", Stage: "new"}},
		Now:    func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return eng, st
}

// applyAll applies events and returns the stage each subject's item ends at.
func applyAll(t *testing.T, eng *engine.Engine, st store.Store, evs []*normalize.Event) map[string]string {
	t.Helper()
	ctx := context.Background()
	stages := map[string]string{}
	for _, ev := range evs {
		res, err := eng.Apply(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Items) != 1 {
			t.Fatalf("%s: %d items (%s)", ev.ID, len(res.Items), res.Note)
		}
		it, err := st.GetItem(ctx, res.Items[0].ItemID)
		if err != nil {
			t.Fatal(err)
		}
		stages[ev.Subject.Phone] = it.Stage
		for _, d := range res.Items[0].Decisions {
			t.Logf("%s → %s: %s %s %s", ev.ID, it.Stage, d.Trigger, d.Outcome, d.Reason)
		}
	}
	return stages
}

// TestLineFilter: calls to two lines, written in other formats by the
// providers than in the triggers; each trigger moves only its line's calls,
// and unknown callers become leads.
func TestLineFilter(t *testing.T) {
	eng, st := lineEngine(t)

	// A PBX (generic) reports a call to the support line as "555-000-2222".
	g := newEnv(t, ProviderGeneric, nil)
	for i, body := range []string{
		`{"call_id":"pbx-1","direction":"inbound","from":"202-555-0123","to":"555-000-2222","status":"ringing"}`,
		`{"call_id":"pbx-1","direction":"inbound","from":"202-555-0123","to":"555-000-2222","status":"no-answer"}`,
	} {
		if w := serve(g.c, genericRequest("m"+string(rune('0'+i)), t0, body)); w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	// Twilio reports a call to the main line in E.164.
	tl := newEnv(t, ProviderTwilio, nil)
	tl.postTwilio(t, tweak(in("ringing", 0), "From", "+1 202 555 0199"))

	evs := append(g.in.Events(), tl.in.Events()...)
	for _, ev := range evs {
		if ev.Attrs["line"] != lineSupport && ev.Attrs["line"] != lineMain {
			t.Fatalf("event %s: line %q is not E.164", ev.ID, ev.Attrs["line"])
		}
	}
	stages := applyAll(t, eng, st, evs)
	if stages["+12025550123"] != "support_missed" || stages["+12025550199"] != "main_called" {
		t.Fatalf("stages %v", stages)
	}
}

// TestLineFilterIgnoresOtherLine: a trigger for one line does not fire
// for a call to another.
func TestLineFilterIgnoresOtherLine(t *testing.T) {
	eng, st := lineEngine(t)
	e := newEnv(t, ProviderTwilio, nil)
	e.postTwilio(t, tw("CA900", "", "inbound", customer, "+15550003333", "ringing", 0))
	evs := e.in.Events()
	if len(evs) != 1 || evs[0].Attrs["line"] != "+15550003333" {
		t.Fatalf("events %+v", evs)
	}
	res, err := eng.Apply(context.Background(), evs[0])
	if err != nil || len(res.Items) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	d := res.Items[0]
	if d.Moved {
		t.Fatalf("moved to %s", d.To)
	}
	for _, dec := range d.Decisions {
		if dec.Outcome != engine.OutcomeNotMet {
			t.Errorf("decision %+v", dec)
		}
	}
	if it, _ := st.GetItem(context.Background(), d.ItemID); it.Stage != "new" {
		t.Errorf("item at %s", it.Stage)
	}
}

// tweak sets parameters of a Twilio callback.
func tweak(v url.Values, kv ...string) url.Values {
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

package telephony

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
	"github.com/stagegate/stagegate/store/redis"
)

// benchStatuses are the callbacks of one benchmarked call, in order.
var benchStatuses = []string{"ringing", "in-progress", "completed"}

// benchCallback returns callback i: call i/3, status i%3, signed for
// sigURL.
func benchCallback(i int, sigURL string) (string, string) {
	p := url.Values{
		"AccountSid": {"AC0123456789abcdef0123456789abcdef"}, "ApiVersion": {"2010-04-01"},
		"CallSid": {fmt.Sprintf("CA%032d", i/3)}, "CallStatus": {benchStatuses[i%3]},
		"Direction": {"inbound"}, "From": {"+12025550123"}, "To": {"+15550001111"},
		"Called": {"+15550001111"}, "Caller": {"+12025550123"}, "CallbackSource": {"call-progress-events"},
		"SequenceNumber": {fmt.Sprint(i % 3)}, "Timestamp": {"Sun, 01 Mar 2026 10:15:30 +0000"},
	}
	if i%3 == 2 {
		p.Set("CallDuration", "42")
	}
	return p.Encode(), TwilioSignature(testToken, sigURL, p)
}

func benchRequest(body, sig string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set(TwilioSignatureHeader, sig)
	return r
}

// BenchmarkTwilioHandler measures one signed Twilio status callback through
// the handler: verification, parsing, the callback list, the fold, the
// intake (a no-op) and the call write, on in-memory records. Calls have
// three callbacks each (ringing, in-progress, completed); the first of
// each emits call.inbound.
func BenchmarkTwilioHandler(b *testing.B) {
	e := newEnv(b, ProviderTwilio, nil)
	e.c.Push, _ = connectors.NewPush("telephony", connectors.Base{Name: "tel"}, connectors.Deps{Intake: nopIntake{}}, DefaultMaxBody)
	bodies, sigs := make([]string, b.N), make([]string, b.N)
	for i := range b.N {
		bodies[i], sigs[i] = benchCallback(i, e.sigBase)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		w := httptest.NewRecorder()
		e.c.ServeHTTP(w, benchRequest(bodies[i], sigs[i]))
		if w.Code != http.StatusNoContent {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkTwilioHandlerRedis is BenchmarkTwilioHandler over the Redis
// driver's records, from parallel clients (the signing is in the loop).
func BenchmarkTwilioHandlerRedis(b *testing.B) {
	srv := redisserver.Start(b)
	rs, err := redis.Open(context.Background(), store.Config{URL: srv.URL(), Prefix: "sgbench"}, redis.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rs.Close() })
	rec, ok := any(rs).(store.Records)
	if !ok {
		b.Skip("store/redis does not implement store.Records")
	}
	e := newEnvWith(b, "tel", ProviderTwilio, rec, nil)
	e.c.Push, _ = connectors.NewPush("telephony", connectors.Base{Name: "tel"}, connectors.Deps{Intake: nopIntake{}}, DefaultMaxBody)
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(n.Add(1))
			body, sig := benchCallback(i, e.sigBase)
			w := httptest.NewRecorder()
			e.c.ServeHTTP(w, benchRequest(body, sig))
			if w.Code != http.StatusNoContent {
				b.Errorf("%d %s", w.Code, w.Body)
				return
			}
		}
	})
}

// boltIntake is the gateway's intake reduced to what the connector sees,
// over a real bolt store: Submit appends, SubmitWithPut puts the events
// with the call (store.EventsPutter).
type boltIntake struct{ st *bolt.Store }

func (b boltIntake) Submit(ctx context.Context, ev *normalize.Event) (connectors.Result, error) {
	r, err := b.st.Append(ctx, ev)
	if err != nil {
		return connectors.Result{}, fmt.Errorf("%w: %w", connectors.ErrUnavailable, err)
	}
	return connectors.Result{EventID: ev.ID, Duplicate: r.Duplicate}, nil
}

func (b boltIntake) SubmitWithPut(ctx context.Context, evs []*normalize.Event, a store.ListAppend, p store.RecordPut) (connectors.PutResult, error) {
	r, err := b.st.AppendListPutRecordEvents(ctx, a, p, evs)
	out := connectors.PutResult{Seq: r.Seq, Duplicate: r.Duplicate, Version: r.Version}
	if err != nil {
		return out, err
	}
	for i, ev := range evs {
		out.Events = append(out.Events, connectors.Result{EventID: ev.ID, Duplicate: r.Events[i].Duplicate})
	}
	return out, nil
}

func (boltIntake) Reject(string, string) {}

func (boltIntake) CanPut() bool { return true }

// BenchmarkTwilioHandlerBolt is BenchmarkTwilioHandler on a real bolt
// file from about 64 goroutines, the three callbacks of a call sent by
// different goroutines at once (as wrk sends them in make bench), the
// events put with the call as the gateway's intake does on bolt. It
// reports what each callback costs the file (pages/callback) and how
// many share a commit.
func BenchmarkTwilioHandlerBolt(b *testing.B) {
	st, err := bolt.Open(store.Config{Path: filepath.Join(b.TempDir(), "sg.db")}, bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	e := newEnvWith(b, "tel", ProviderTwilio, st, nil)
	e.c.Push, _ = connectors.NewPush("telephony", connectors.Base{Name: "tel"}, connectors.Deps{Intake: boltIntake{st}}, DefaultMaxBody)
	bodies, sigs := make([]string, b.N), make([]string, b.N)
	for i := range b.N {
		bodies[i], sigs[i] = benchCallback(i, e.sigBase)
	}
	var n atomic.Int64
	before := st.WriteStats()
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(n.Add(1)) - 1
			w := httptest.NewRecorder()
			e.c.ServeHTTP(w, benchRequest(bodies[i], sigs[i]))
			if w.Code != http.StatusNoContent {
				b.Errorf("%d %s", w.Code, w.Body)
				return
			}
		}
	})
	b.StopTimer()
	after := st.WriteStats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "callbacks/s")
	b.ReportMetric(float64(after.Pages-before.Pages)/float64(b.N), "pages/callback")
	b.ReportMetric(float64(e.c.refolds.Load())/float64(b.N), "refolds/callback")
	if c := after.Commits - before.Commits; c > 0 {
		b.ReportMetric(float64(b.N)/float64(c), "callbacks/commit")
	}
}

// BenchmarkFold measures the state machine alone: a call's three callbacks.
func BenchmarkFold(b *testing.B) {
	nums := newNumbers("US")
	var cbs []*Callback
	for i := range 3 {
		body, _ := benchCallback(i, "")
		p, _ := url.ParseQuery(body)
		cb, err := ParseTwilio(p, []byte(body), t0, nums)
		if err != nil {
			b.Fatal(err)
		}
		cbs = append(cbs, cb)
	}
	o := FoldOptions{Connector: "tel", Provider: ProviderTwilio, VoicemailIsMissed: true}
	b.ReportAllocs()
	for b.Loop() {
		c := Call{ID: cbs[0].CallID}
		for _, cb := range cbs {
			c, _, _ = Fold(c, cb, t0, o)
		}
	}
}

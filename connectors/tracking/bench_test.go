package tracking

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// nopIntake accepts everything and keeps nothing.
type nopIntake struct{}

func (nopIntake) Submit(_ context.Context, ev *normalize.Event) (connectors.Result, error) {
	return connectors.Result{EventID: ev.ID}, nil
}

func (nopIntake) Reject(string, string) {}

// nopRecords stores nothing: a benchmark on it measures the connector.
type nopRecords struct{ seq atomic.Int64 }

func (*nopRecords) GetRecord(context.Context, string) (store.Record, error) {
	return store.Record{}, store.ErrNotFound
}

func (*nopRecords) PutRecord(context.Context, string, []byte, int64, time.Duration) (int64, error) {
	return 1, nil
}

func (*nopRecords) DeleteRecord(context.Context, string, int64) error { return nil }

func (r *nopRecords) AppendList(context.Context, string, string, []byte, time.Duration) (int64, bool, error) {
	return r.seq.Add(1), false, nil
}

func (*nopRecords) ReadList(context.Context, string, int64, int) ([]store.ListElem, error) {
	return nil, nil
}

// benchTracker builds a tracker on recs and intake, with one prepared
// message; it returns the pixel and first click tokens.
func benchTracker(b *testing.B, recs store.Records, in connectors.Intake) (*Tracker, string, string) {
	b.Helper()
	cfg := NewConfig()
	cfg.Keys = []string{testKey}
	cfg.MaxHits = 1 << 30 // record every hit
	deps := connectors.Deps{Logger: slog.New(slog.DiscardHandler), Intake: in, Now: time.Now, PublicURL: testPublic, Records: recs}
	tr, err := New(connectors.Base{Name: "track", Type: "tracking"}, cfg, deps)
	if err != nil {
		b.Fatal(err)
	}
	p, err := tr.prepareMsg(context.Background(), &MessageRequest{ItemID: "i_1", From: "bob@seller.test", To: AddressList{"ann@client.test"},
		Subject: "x", HTML: `<a href="https://example.com/pricing">p</a>`})
	if err != nil {
		b.Fatal(err)
	}
	tr.msgs.Get(mustParse2(b, p.ID)) // cached, as after the first hit
	return tr, path(p.PixelURL)[len("/t/o/"):], path(p.Links[0].ClickURL)[len("/t/c/"):]
}

func mustParse2(b *testing.B, s string) MsgID {
	id, ok := parseMsgID(s)
	if !ok {
		b.Fatalf("bad id %q", s)
	}
	return id
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler, not a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

func runHandler(b *testing.B, h http.HandlerFunc, tok string) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "/t/x/"+tok, nil)
		r.Header.Set("User-Agent", humanUA)
		r.SetPathValue("token", tok)
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			h(w, r)
		}
	})
}

// BenchmarkPixel: the pixel handler on a store and intake that keep
// nothing: the connector's own cost (token check, scoring, hit encoding,
// caches) per request.
func BenchmarkPixel(b *testing.B) {
	tr, pixel, _ := benchTracker(b, &nopRecords{}, nopIntake{})
	runHandler(b, tr.servePixel, pixel)
}

// BenchmarkClick: the click handler, same setup.
func BenchmarkClick(b *testing.B) {
	tr, _, click := benchTracker(b, &nopRecords{}, nopIntake{})
	runHandler(b, tr.serveClick, click)
}

// BenchmarkPixelBadToken: a flood of forged tokens.
func BenchmarkPixelBadToken(b *testing.B) {
	tr, pixel, _ := benchTracker(b, &nopRecords{}, nopIntake{})
	runHandler(b, tr.servePixel, pixel[:len(pixel)-2]+"AA")
}

package tracking

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
	"github.com/stagegate/stagegate/store/redis"
)

// realStores opens each store driver's Records for a test.
func realStores() map[string]func(t *testing.T, now func() time.Time) store.Records {
	return map[string]func(t *testing.T, now func() time.Time) store.Records{
		"bolt": func(t *testing.T, now func() time.Time) store.Records {
			st, err := bolt.Open(store.Config{Driver: "bolt", Path: filepath.Join(t.TempDir(), "sg.db")}, bolt.Options{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		"redis": func(t *testing.T, _ func() time.Time) store.Records {
			srv := redisserver.Start(t)
			st, err := redis.Open(context.Background(), store.Config{Driver: "redis", URL: srv.URL(), Prefix: "trk"}, redis.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
}

// TestRealStores runs the message, hit, catch-up and visitor paths on the
// bolt and Redis drivers.
func TestRealStores(t *testing.T) {
	for name, open := range realStores() {
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			recs := open(t, clk.Now)
			e := newEnvClock(t, clk, recs, func(c *Config) {
				c.Site = Site{Enabled: true, AllowedOrigins: []string{"*"}, ReturnGap: defaultReturnGap, Identify: true}
			})
			p := e.prepare(`{"item_id":"i_1","from":"bob@seller.test","to":"ann@client.test","subject":"x",
				"html":"<a href=\"https://e.test/1\">1</a><a href=\"https://e.test/2\">2</a>"}`)
			if ref, err := store.GetMessageRef(context.Background(), recs, p.MessageID); err != nil || ref.ItemID != "i_1" {
				t.Fatalf("message ref %+v %v", ref, err)
			}
			clk.Add(time.Hour)
			if a := e.do("POST", "/api/v1/messages/"+p.ID+"/sent", "", nil); a.code != 200 {
				t.Fatalf("sent: %d %s", a.code, a.body)
			}
			clk.Add(time.Hour)
			checkGIF(t, e.do("GET", path(p.PixelURL), "", nil), false)
			// A second process clicks link 1; this one clicks link 2 a second later.
			other := newEnvClock(t, clk, recs, nil)
			other.tr.Push = e.tr.Push // one intake for both processes
			other.do("GET", path(p.Links[0].ClickURL), "", nil)
			clk.Add(time.Second)
			e.do("GET", path(p.Links[1].ClickURL), "", nil)
			ids := e.in.IDs()
			want := []string{sentEventID("track", p.ID), openEventID("track", p.ID, false),
				clickEventID("track", p.ID, 1, false), clickEventID("track", p.ID, 2, true)}
			if len(ids) != len(want) {
				t.Fatalf("events %q, want %q", ids, want)
			}
			for i := range want {
				if ids[i] != want[i] {
					t.Fatalf("events %q, want %q", ids, want)
				}
			}
			a := e.do("GET", "/api/v1/messages/"+p.ID, "", nil)
			var rep msgReport
			if err := json.Unmarshal([]byte(a.body), &rep); err != nil || len(rep.Hits) != 3 || rep.Message.SentAt.IsZero() ||
				rep.Opens.Human != 1 || rep.Links[1].Clicks.Machine != 1 {
				t.Fatalf("report %d %s", a.code, a.body)
			}
			// Visitors: anonymous, then identified, then returning.
			v := `{"v":"0f9a1c2e-7b5d-4e21-9a3c-1d2e3f4a5b6c","u":"https://www.seller.test/"`
			e.do("POST", "/t/v", v+`}`, nil)
			e.do("POST", "/t/v", v+`,"e":"ann@client.test"}`, nil)
			clk.Add(2 * time.Hour)
			if a := e.do("POST", "/t/v", v+`}`, nil); a.code != 204 {
				t.Fatalf("view: %d %s", a.code, a.body)
			}
			ids = e.in.IDs()
			if len(ids) != 6 || ids[5] != "track:return:0f9a1c2e-7b5d-4e21-9a3c-1d2e3f4a5b6c:2026-03-01" {
				t.Fatalf("visit events %q", ids[4:])
			}
		})
	}
}

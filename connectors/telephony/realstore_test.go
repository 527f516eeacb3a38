package telephony

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
	"github.com/stagegate/stagegate/store/redis"
)

// realStores opens each driver's store; a driver that does not implement
// store.Records yet is skipped.
func realStores(t *testing.T) map[string]store.Records {
	t.Helper()
	out := map[string]store.Records{}
	b, err := bolt.Open(store.Config{Path: filepath.Join(t.TempDir(), "sg.db")}, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if r, ok := any(b).(store.Records); ok {
		out["bolt"] = r
	} else {
		t.Log("store/bolt does not implement store.Records: skipped")
	}
	srv := redisserver.Start(t)
	rs, err := redis.Open(context.Background(), store.Config{URL: srv.URL(), Prefix: "sgtel" + fmt.Sprint(time.Now().UnixNano())}, redis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	if r, ok := any(rs).(store.Records); ok {
		out["redis"] = r
	} else {
		t.Log("store/redis does not implement store.Records: skipped")
	}
	return out
}

// TestRealStores runs sequences, concurrent callbacks, the sweeper and the
// calls API over each real driver.
func TestRealStores(t *testing.T) {
	for name, rec := range realStores(t) {
		t.Run(name, func(t *testing.T) { eachIntake(t, func(t *testing.T, m intakeMode) { realStoreOn(t, rec, m) }) })
	}
}

// realStoreOn is TestRealStores on one store with intakes of mode m; its
// connectors' names carry the mode, so that the modes' calls do not meet.
func realStoreOn(t *testing.T, rec store.Records, m intakeMode) {
	for _, tc := range sequences {
		if !slices.Contains([]string{"two_legs_one_agent_answers", "missed_waits_settle", "outbound_answered",
			"same_callback_five_times", "generic_pbx_double_hangup"}, tc.name) {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			provider := ProviderTwilio
			if tc.steps[0].gen != "" {
				provider = ProviderGeneric
			}
			e := m.on(newEnvWith(t, "tel-"+m.String()+"-"+tc.name, provider, rec, nil))
			o := foldOptions(tc)
			e.c.opts.Settle = o.Settle
			if got := types(runHTTP(t, e, tc)); !slices.Equal(got, tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("concurrent", func(t *testing.T) { concurrentOn(t, rec, m) })
}

func concurrentOn(t *testing.T, rec store.Records, m intakeMode) {
	name := "tel-conc-" + m.String()
	e := m.on(newEnvWith(t, name, ProviderTwilio, rec, func(c *Config) { c.Settle = DefaultSettle }))
	var all []url.Values
	for range 3 {
		all = append(all, in("ringing", 0), in("completed", 1, "CallDuration", "80"),
			child("CA201", agentA, "ringing", 0), child("CA201", agentA, "in-progress", 1),
			child("CA201", agentA, "completed", 2, "CallDuration", "70"),
			child("CA202", agentB, "ringing", 0), child("CA202", agentB, "no-answer", 1))
	}
	postAllThenSettle(t, e, all)
	if got := types(e.in.Events()); !slices.Equal(got, []normalize.Type{inbound}) {
		t.Errorf("events %v", got)
	}
	cbs, err := rec.ReadList(context.Background(), callbacksKey(name, "CA100"), 0, 100)
	if err != nil || len(cbs) != 7 {
		t.Errorf("%d callbacks stored (%v), want 7", len(cbs), err)
	}
}

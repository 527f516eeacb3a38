package redis_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/store"
	redisstore "github.com/stagegate/stagegate/store/redis"
)

// layoutFixture opens a store on a fresh prefix, appends event id, reads
// its log entry and creates item i-1 at "new".
func layoutFixture(t *testing.T, id string) (*redisserver.Server, *redisstore.Store, *redis.Client, string, []store.LogEntry) {
	t.Helper()
	srv := redisserver.Start(t)
	prefix := newPrefix()
	s := open(t, srv, prefix, time.Second)
	mustAppend(t, s, id)
	es := readUntil(t, s, "c1", 1, 5*time.Second)
	if _, _, err := s.CreateItem(t.Context(), store.Item{ID: "i-1", Pipeline: "sales", Stage: "new"}, store.TimelineEntry{}); err != nil {
		t.Fatal(err)
	}
	return srv, s, rawClient(t, srv), prefix, es
}

// moveI1 is the write that moves item i-1 from version 1 to "won".
func moveI1() store.ItemWrite {
	return store.ItemWrite{ItemID: "i-1", ExpectVersion: 1, Decisions: store.ItemDecisions{ItemID: "i-1", Moved: true},
		Move: &store.ItemMove{To: "won", Entry: store.TimelineEntry{ID: "m1", Kind: store.EntryMove}}}
}

// A move's applied marker and decisions live in the event's record: the
// event costs no keys of its own beyond its record and dedup key.
func TestAppliedMarkerInEventRecord(t *testing.T) {
	srv, s, raw, prefix, es := layoutFixture(t, "form:rec")
	ctx := t.Context()
	move := moveI1()
	res, err := s.ApplyBatch(ctx, time.Now(), []store.BatchEntry{{Entry: es[0], Writes: []store.ItemWrite{move}}})
	if err != nil || !res.Acked[0] || res.Writes[0][0] != store.WriteOK {
		t.Fatalf("ApplyBatch = %+v, %v", res, err)
	}
	for _, k := range []string{"applied:form:rec", "decisions:form:rec"} {
		if n := raw.Exists(ctx, prefix+k).Val(); n != 0 {
			t.Errorf("key %s exists: the marker belongs in the record", k)
		}
	}
	h := raw.HGetAll(ctx, prefix+"event:form:rec").Val()
	if h["a:i-1"] != "1" || h["d:i-1"] == "" {
		t.Fatalf("record fields %v lack a:i-1 and d:i-1", h)
	}
	if ttl := raw.PTTL(ctx, prefix+"event:form:rec").Val(); ttl <= 0 && srv.Real() {
		t.Fatalf("record TTL %v: it must keep expiring with the dedup window", ttl)
	}
	// Applying it again (a redelivery) changes nothing.
	move.ExpectVersion = 2
	res, err = s.ApplyBatch(ctx, time.Now(), []store.BatchEntry{{Entry: store.LogEntry{Event: es[0].Event}, Writes: []store.ItemWrite{move}}})
	if err != nil || res.Writes[0][0] != store.WriteAlreadyApplied {
		t.Fatalf("second ApplyBatch = %+v, %v; want already applied", res, err)
	}
	_, ds, err := s.GetEvent(ctx, "form:rec")
	if err != nil || len(ds) != 1 || ds[0].ItemID != "i-1" || !ds[0].Moved {
		t.Fatalf("GetEvent decisions = %+v, %v", ds, err)
	}
}

// A gateway from before the record layout kept the marker and decisions in
// hashes of their own: an event it applied is not applied again after the
// upgrade, and its decisions still read back.
func TestLegacyAppliedMarkerHonoured(t *testing.T) {
	_, s, raw, prefix, es := layoutFixture(t, "form:old")
	ctx := t.Context()
	// What the old layout left: the marker and decisions for i-1, and a
	// verdict without a move for i-2.
	d1, _ := json.Marshal(store.ItemDecisions{ItemID: "i-1", Moved: true})
	d2, _ := json.Marshal(store.ItemDecisions{ItemID: "i-2"})
	raw.HSet(ctx, prefix+"applied:form:old", "i-1", "1")
	raw.HSet(ctx, prefix+"decisions:form:old", "i-1", d1, "i-2", d2)
	raw.PExpire(ctx, prefix+"applied:form:old", time.Hour)
	raw.PExpire(ctx, prefix+"decisions:form:old", time.Hour)

	res, err := s.ApplyBatch(ctx, time.Now(), []store.BatchEntry{{Entry: es[0], Writes: []store.ItemWrite{moveI1()}}})
	if err != nil || res.Writes[0][0] != store.WriteAlreadyApplied {
		t.Fatalf("ApplyBatch = %+v, %v; want already applied", res, err)
	}
	if _, err := s.Move(ctx, store.MoveRequest{ItemID: "i-1", ExpectVersion: 1, To: "won", EventID: "form:old"}); err == nil {
		t.Fatal("Move of an event applied under the old layout succeeded")
	}
	// The first verdict wins, wherever it is kept.
	if err := s.RecordDecisions(ctx, "form:old", store.ItemDecisions{ItemID: "i-2", Moved: true}); err != nil {
		t.Fatal(err)
	}
	_, ds, err := s.GetEvent(ctx, "form:old")
	if err != nil || len(ds) != 2 || ds[0].ItemID != "i-1" || !ds[0].Moved || ds[1].ItemID != "i-2" || ds[1].Moved {
		t.Fatalf("GetEvent decisions = %+v, %v", ds, err)
	}
	it, err := s.GetItem(ctx, "i-1")
	if err != nil || it.Stage != "new" || it.Version != 1 {
		t.Fatalf("item = %+v, %v; want untouched at new", it, err)
	}
}

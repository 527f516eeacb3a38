package tracking

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/stagegate/stagegate/connectors/tracking/botscore"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// Catch-up with hits other gateway processes recorded: at most one read
// per message per catchUpEvery, catchUpPage elements a read.
const (
	catchUpEvery = 50 * time.Millisecond
	catchUpPage  = 256
)

// observe scores one hit with what is known of the message, records it in
// the message's hit list (with the hits of concurrent requests, in one
// store write: hitWriter) and submits the events it makes: the open or
// click of its class, and, for a human click, the open it implies. Store
// and intake failures are counted and logged; they never change the
// answer to the client.
func (t *Tracker) observe(ctx context.Context, f *hitFacts, st *msgState, kind string, link int) {
	now := f.at
	if kind == kindClick {
		t.catchUp(ctx, st, now)
	}
	l, _ := st.msg.link(link)
	h := scoredHit{At: now, Kind: kind, Link: link, Method: f.method, UA: f.ua, IP: f.ip}
	id := strconv.FormatUint(rand.Uint64(), 36)

	st.mu.Lock()
	since := now.Sub(st.sentAt)
	v := t.scorer.Score(botscore.Facts{
		Click: kind == kindClick, Link: link, Honeypot: l.Honeypot, Method: h.Method, UA: h.UA,
		Client: botscore.ClientKey(h.IP, h.UA), At: now, Since: since, Links: st.msg.trackedLinks(), Recent: st.recent,
	})
	h.SinceS = float64(since.Milliseconds()) / 1000
	h.Score, h.Machine, h.Reasons = v.Score, v.Machine, v.Reasons
	st.remember(recentOf(st.msg, &h))
	overCap := st.maxSeq >= int64(t.cfg.MaxHits)
	st.mu.Unlock()

	if h.Machine {
		t.stats.machine.Add(1)
	}
	if overCap {
		t.stats.overCap.Add(1)
	} else {
		// id is random and a hit is never retried: Unique spares the
		// store the id's lookup and index.
		res := t.hits.append(ctx, store.ListAppend{Key: st.hitsKey, ID: id, Value: appendHit(make([]byte, 0, 256), &h), TTL: t.cfg.Retention, Unique: true})
		if res.Err != nil {
			t.lost(res.Err, st.msg.ID)
		} else {
			t.stats.recorded.Add(1)
			st.appended(res.Seq)
		}
	}
	if l.Honeypot {
		return // a honeypot click is never a customer action
	}
	switch kind {
	case kindOpen:
		t.fire(ctx, st, st.openID(h.Machine), func() *normalize.Event { return normalizeOpen(t.Name(), st.msg, &h, "", now, now) })
	case kindClick:
		t.fire(ctx, st, st.clickID(link, h.Machine), func() *normalize.Event { return normalizeClick(t.Name(), st.msg, &h, now) })
		if !h.Machine {
			t.fire(ctx, st, st.openID(false), func() *normalize.Event { return normalizeOpen(t.Name(), st.msg, &h, inferredClick, now, now) })
		}
	}
}

// fire submits the event id (built by ev only when needed) unless this
// process already knows it durable: the intake would answer "duplicate",
// and skipping it saves a store round trip.
func (t *Tracker) fire(ctx context.Context, st *msgState, id string, ev func() *normalize.Event) {
	if st.isFired(id) {
		return
	}
	if _, err := t.Intake().Submit(ctx, ev()); err != nil {
		t.stats.eventsLost.Add(1)
		t.warn("tracking event lost: intake unavailable", "event_id", id, "err", err)
		return
	}
	st.markFired(id)
}

// catchUp reads the hits recorded since the last catch-up (by any gateway
// process sharing the store) into the message's recent hits, so a burst of
// clicks spread over processes is still seen. Hits of this process are
// already remembered and skipped. A failure leaves the local view.
func (t *Tracker) catchUp(ctx context.Context, st *msgState, now time.Time) {
	if !st.sync.TryLock() {
		return // another request of this message is reading right now
	}
	defer st.sync.Unlock()
	st.mu.Lock()
	after, fresh := st.lastSeq, now.Sub(st.syncedAt) < catchUpEvery && !st.syncedAt.IsZero()
	st.mu.Unlock()
	if fresh {
		return
	}
	key := st.hitsKey
	for range 4 {
		els, err := t.records.ReadList(ctx, key, after, catchUpPage)
		if err != nil {
			t.warn("tracking: reading recent hits failed", "message", st.msg.ID, "err", err)
			return
		}
		st.mu.Lock()
		for _, el := range els {
			after = el.Seq
			if st.own[el.Seq] {
				delete(st.own, el.Seq)
				continue
			}
			var h scoredHit
			if json.Unmarshal(el.Value, &h) == nil {
				st.remember(recentOf(st.msg, &h))
			}
		}
		st.lastSeq, st.syncedAt, st.maxSeq = after, now, max(st.maxSeq, after)
		st.mu.Unlock()
		if len(els) < catchUpPage {
			return
		}
	}
}

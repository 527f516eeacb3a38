package tracking

import "sync/atomic"

// statsReport are the connector's counters since it started (GET
// /api/v1/tracking/stats). Refusals and lost hits are also counted by the
// gateway's stagegate_events_rejected_total{reason=…} through Intake.Reject.
type statsReport struct {
	Opens          int64 `json:"opens"`               // pixel hits with a valid token
	Clicks         int64 `json:"clicks"`              // click hits with a valid token
	MachineHits    int64 `json:"machine_hits"`        // of those, scored machine-made
	HitsRecorded   int64 `json:"hits_recorded"`       // stored in the message's hit list
	HitsOverCap    int64 `json:"hits_over_cap"`       // not stored: max_hits reached (still scored)
	HitsLost       int64 `json:"hits_lost"`           // not stored: the store failed
	AnsweredFirst  int64 `json:"hits_answered_first"` // answered before they were stored (pending_hits)
	HitsPending    int64 `json:"hits_pending"`        // of those, not yet stored now
	EventsLost     int64 `json:"events_lost"`         // events the intake refused (store down)
	BadTokens      int64 `json:"bad_tokens"`          // tokens naming nothing (pixel or click)
	UnknownLinks   int64 `json:"unknown_links"`       // well-formed tokens of no stored link
	UnsignedClicks int64 `json:"unsigned_clicks"`     // bad signature, known link: redirected, not recorded
	StoreDown      int64 `json:"store_down"`          // clicks answered 503: link not cached, store down
	SiteViewsKnown int64 `json:"site_views_known"`
	SiteViewsAnon  int64 `json:"site_views_anonymous"`
}

// stats holds the counters.
type stats struct {
	opens, clicks, machine, recorded, overCap, hitsLost, eventsLost     atomic.Int64
	answeredFirst                                                       atomic.Int64
	badTokens, unknownLinks, unsigned, storeDown, viewsKnown, viewsAnon atomic.Int64
}

func (s *stats) snapshot() statsReport {
	return statsReport{
		Opens: s.opens.Load(), Clicks: s.clicks.Load(), MachineHits: s.machine.Load(),
		HitsRecorded: s.recorded.Load(), HitsOverCap: s.overCap.Load(), HitsLost: s.hitsLost.Load(),
		AnsweredFirst: s.answeredFirst.Load(),
		EventsLost:    s.eventsLost.Load(), BadTokens: s.badTokens.Load(), UnknownLinks: s.unknownLinks.Load(),
		UnsignedClicks: s.unsigned.Load(), StoreDown: s.storeDown.Load(),
		SiteViewsKnown: s.viewsKnown.Load(), SiteViewsAnon: s.viewsAnon.Load(),
	}
}

// statsNow returns the connector's counters.
func (t *Tracker) statsNow() statsReport {
	r := t.stats.snapshot()
	r.HitsPending = int64(t.later.pending())
	return r
}

// warn logs a store or intake failure without flooding.
func (t *Tracker) warn(msg string, args ...any) {
	if ok, q := t.limit.Allow(t.Now()); ok {
		t.Logger().Warn(msg, append(args, "quieted_since_last", q)...)
		return
	}
	t.Logger().Debug(msg, args...)
}

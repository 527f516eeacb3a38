package tracking

import (
	"net/http"
	"strconv"
	"time"
)

// Weights of the scoring signals (user-agent weights come from the agent
// list). A hit's score is their sum, capped at 100; from the threshold
// (default 50) the hit is machine-made.
const (
	weightHoneypot = 100 // a link no human can see was followed
	weightBurst    = 80  // several links of the message clicked within burst_window
	weightHead     = 80  // HEAD: link checkers, never a mail client or a browser
	weightNoUA     = 60  // no User-Agent at all
	weightQuick    = 60  // within `quick` of sending: delivery-time scanners and prefetchers
	weightFlagged  = 60  // same address and user agent as a hit already scored ≥ flagScore
	flagScore      = 80  // a hit scoring this much flags its client for flagWindow
	flagWindow     = 10 * time.Minute
	maxScore       = 100
	minBurstLinks  = 3 // distinct links in a burst, unless the message has fewer
)

// recentHit is what scoring needs to remember of an earlier hit. It holds
// no pointers, so remembering one costs no write barrier.
type recentHit struct {
	at       int64 // UnixNano
	click    bool
	link     int
	honeypot bool
	client   uint64 // clientKey of IP and user agent
	score    int
}

// facts are what scoring knows of one hit.
type facts struct {
	Kind     string
	Link     int
	Honeypot bool
	Method   string
	UA       string
	Client   uint64
	At       time.Time
	Since    time.Duration // since the message was sent (or prepared)
	Links    int           // links of the message a human can see
	Recent   []recentHit   // earlier hits of the message, in any order
}

// scorer turns facts into a score with reasons. It is pure: everything,
// the time included, comes in the facts.
type scorer struct {
	threshold int
	quick     time.Duration
	burst     time.Duration
	agents    *agentList
}

// verdict is a scored hit.
type verdict struct {
	Score   int
	Machine bool
	Reasons []string
}

// score rates a hit: 0 looks human, 100 is surely a machine.
func (s *scorer) score(f facts) verdict {
	var v verdict
	add := func(w int, reason string) {
		v.Score += w
		v.Reasons = append(v.Reasons, reason)
	}
	if f.Honeypot {
		add(weightHoneypot, "honeypot")
	}
	if f.Method == http.MethodHead {
		add(weightHead, "head_request")
	}
	if f.UA == "" {
		add(weightNoUA, "no_user_agent")
	}
	for _, m := range s.agents.match(f.UA) {
		add(m.weight, "ua:"+m.name)
	}
	if f.Since >= 0 && f.Since < s.quick {
		add(weightQuick, "quick:"+strconv.FormatFloat(f.Since.Seconds(), 'f', 1, 64)+"s")
	}
	if f.Kind == kindClick && !f.Honeypot {
		if n := s.burstLinks(f); n > 0 {
			add(weightBurst, "burst:"+strconv.Itoa(n)+"_links")
		}
	}
	if flagged(f) {
		add(weightFlagged, "flagged_client")
	}
	v.Score = min(v.Score, maxScore)
	v.Machine = v.Score >= s.threshold
	return v
}

// burstLinks returns how many distinct links (this one included) were
// clicked within the burst window, when that is a burst: at least two,
// and all the message's links or at least minBurstLinks. Else 0.
func (s *scorer) burstLinks(f facts) int {
	if s.burst <= 0 {
		return 0
	}
	seen := map[int]bool{f.Link: true}
	from, to := f.At.Add(-s.burst).UnixNano(), f.At.UnixNano()
	for _, h := range f.Recent {
		if h.click && !h.honeypot && h.at >= from && h.at <= to {
			seen[h.link] = true
		}
	}
	n := len(seen)
	if n >= 2 && (n >= f.Links || n >= minBurstLinks) {
		return n
	}
	return 0
}

// flagged reports whether the same client made a hit scored ≥ flagScore on
// this message within flagWindow.
func flagged(f facts) bool {
	from := f.At.Add(-flagWindow).UnixNano()
	for _, h := range f.Recent {
		if h.client == f.Client && h.score >= flagScore && h.at >= from {
			return true
		}
	}
	return false
}

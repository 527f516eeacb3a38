// Package botscore rates a tracking hit (an open, a click) as human or
// machine-made, from its request and the message's recent hits: user
// agents of known scanners and proxies (data/agents.txt, plus the
// configured ones), HEAD requests, hits right after sending, bursts of
// clicks, honeypot links and clients already flagged. It is pure: every
// fact, the time included, comes from the caller.
package botscore

import (
	"hash/maphash"
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
	flagScore      = 80  // a hit scoring this much flags its client for FlagWindow
	maxScore       = 100
	minBurstLinks  = 3 // distinct links in a burst, unless the message has fewer
)

// FlagWindow is how long a hit scored 80 or more flags its client
// (address and user agent) on the message: its next hits score higher.
const FlagWindow = 10 * time.Minute

// Recent is what scoring needs to remember of an earlier hit. It holds
// no pointers, so remembering one costs no write barrier.
type Recent struct {
	At       int64 // UnixNano
	Click    bool
	Link     int
	Honeypot bool
	Client   uint64 // ClientKey of IP and user agent
	Score    int
}

// Facts are what scoring knows of one hit.
type Facts struct {
	Click    bool // a click (else an open)
	Link     int
	Honeypot bool
	Method   string
	UA       string
	Client   uint64
	At       time.Time
	Since    time.Duration // since the message was sent (or prepared)
	Links    int           // links of the message a human can see
	Recent   []Recent      // earlier hits of the message, in any order
}

// Scorer turns facts into a score with reasons. It is pure: everything,
// the time included, comes in the facts.
type Scorer struct {
	threshold int
	quick     time.Duration
	burst     time.Duration
	agents    *agentList
}

// New returns a scorer: hits scoring threshold or more are machine-made,
// hits within quick of sending are suspect, burst is the window of a click
// burst, agents are rules added to the built-in list (see CheckAgentRule).
func New(threshold int, quick, burst time.Duration, agents []string) (*Scorer, error) {
	l, err := newAgentList(agents)
	if err != nil {
		return nil, err
	}
	return &Scorer{threshold: threshold, quick: quick, burst: burst, agents: l}, nil
}

// Verdict is a scored hit.
type Verdict struct {
	Score   int
	Machine bool
	Reasons []string
}

// Score rates a hit: 0 looks human, 100 is surely a machine.
func (s *Scorer) Score(f Facts) Verdict {
	var v Verdict
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
	if f.Click && !f.Honeypot {
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
func (s *Scorer) burstLinks(f Facts) int {
	if s.burst <= 0 {
		return 0
	}
	seen := map[int]bool{f.Link: true}
	from, to := f.At.Add(-s.burst).UnixNano(), f.At.UnixNano()
	for _, h := range f.Recent {
		if h.Click && !h.Honeypot && h.At >= from && h.At <= to {
			seen[h.Link] = true
		}
	}
	n := len(seen)
	if n >= 2 && (n >= f.Links || n >= minBurstLinks) {
		return n
	}
	return 0
}

// flagged reports whether the same client made a hit scored ≥ flagScore on
// this message within FlagWindow.
func flagged(f Facts) bool {
	from := f.At.Add(-FlagWindow).UnixNano()
	for _, h := range f.Recent {
		if h.Client == f.Client && h.Score >= flagScore && h.At >= from {
			return true
		}
	}
	return false
}

// clientSeed keys client hashes; they never leave the process.
var clientSeed = maphash.MakeSeed()

// ClientKey identifies a client (address and user agent) by a hash.
func ClientKey(ip, ua string) uint64 {
	var h maphash.Hash
	h.SetSeed(clientSeed)
	h.WriteString(ip)
	h.WriteByte(0)
	h.WriteString(ua)
	return h.Sum64()
}

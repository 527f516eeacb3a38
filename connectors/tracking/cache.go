package tracking

import (
	"strconv"
	"sync"
	"time"

	"github.com/stagegate/stagegate/connectors/tracking/botscore"
	"github.com/stagegate/stagegate/normalize"
)

// maxRecent bounds the hits a message remembers for scoring.
const maxRecent = 64

// msgState is a cached message with what the hit paths remember of it.
// msg never changes once loaded; the rest is guarded by mu.
type msgState struct {
	msg      *msgRecord
	idPrefix string    // "<connector>:<message>:" of its event ids
	openIDs  [2]string // openEventID, human and machine
	hitsKey  string    // key of the message's hit list

	sync sync.Mutex // held by the one request catching up with the store

	mu       sync.Mutex
	sentAt   time.Time         // send time, else the time prepared
	recent   []botscore.Recent // a ring of at most maxRecent hits
	next     int               // where the ring writes once full
	lastSeq  int64             // catch-up cursor: hits up to it are in recent
	syncedAt time.Time         // last catch-up
	maxSeq   int64             // highest sequence seen: the list's length, at least
	own      map[int64]bool    // sequences of hits this process appended past lastSeq
	fired    map[string]bool   // event ids known durable
}

func newMsgState(connector, hitsKey string, m *msgRecord) *msgState {
	s := &msgState{msg: m, idPrefix: normalize.MakeID(connector, m.ID) + ":", hitsKey: hitsKey,
		sentAt: m.SentAt, own: map[int64]bool{}, fired: map[string]bool{}}
	s.openIDs = [2]string{s.idPrefix + "open:" + class(false), s.idPrefix + "open:" + class(true)}
	if s.sentAt.IsZero() {
		s.sentAt = m.CreatedAt
	}
	return s
}

// remember adds a hit; the caller holds mu.
func (s *msgState) remember(h botscore.Recent) {
	if len(s.recent) < maxRecent {
		s.recent = append(s.recent, h)
		return
	}
	s.recent[s.next] = h
	s.next = (s.next + 1) % maxRecent
}

// recentOf converts a stored hit for scoring.
func recentOf(m *msgRecord, h *scoredHit) botscore.Recent {
	l, _ := m.link(h.Link)
	return botscore.Recent{At: h.At.UnixNano(), Click: h.Kind == kindClick, Link: h.Link, Honeypot: l.Honeypot,
		Client: botscore.ClientKey(h.IP, h.UA), Score: h.Score}
}

// maxOwn bounds msgState.own; past it the set is dropped (a few hits may
// then be remembered twice, which only makes scoring more suspicious).
const maxOwn = 64

// appended notes that this process stored a hit (already remembered) at
// seq: the catch-up cursor moves over it when nothing else came between,
// else catch-up will skip it.
func (s *msgState) appended(seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxSeq = max(s.maxSeq, seq)
	switch {
	case seq == s.lastSeq+1:
		s.lastSeq = seq
		for s.own[s.lastSeq+1] {
			delete(s.own, s.lastSeq+1)
			s.lastSeq++
		}
	case seq > s.lastSeq:
		if len(s.own) >= maxOwn {
			clear(s.own)
		}
		s.own[seq] = true
	}
}

// openID is openEventID of the message, and clickID clickEventID: the
// same strings (their other parts are always safe id characters), built
// without MakeID's checks on the hot path.
func (s *msgState) openID(machine bool) string {
	if machine {
		return s.openIDs[1]
	}
	return s.openIDs[0]
}

func (s *msgState) clickID(link int, machine bool) string {
	return s.idPrefix + "click:" + strconv.Itoa(link) + ":" + class(machine)
}

// isFired reports whether event id is known to be durable; markFired
// records that it is.
func (s *msgState) isFired(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fired[id]
}

func (s *msgState) markFired(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fired[id] = true
}

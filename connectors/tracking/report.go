package tracking

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/stagegate/stagegate/internal/httpx"
)

// msgReport is the answer of GET /api/v1/messages/{id}: the message, counts
// of its opens and clicks by class, and every stored hit with its score.
type msgReport struct {
	Message msgRecord    `json:"message"`
	Opens   hitCounts    `json:"opens"`
	Links   []linkReport `json:"links"`
	Hits    []storedHit  `json:"hits"`
	// Truncated is true when the message has more hits than were read.
	Truncated bool `json:"truncated,omitempty"`
}

// hitCounts counts hits by class, with the first human one.
type hitCounts struct {
	Human        int        `json:"human"`
	Machine      int        `json:"machine"`
	FirstHumanAt *time.Time `json:"first_human_at,omitempty"`
}

// linkReport is one link with its clicks.
type linkReport struct {
	ID       string    `json:"id"`
	Index    int       `json:"index"`
	URL      string    `json:"url,omitempty"`
	Honeypot bool      `json:"honeypot,omitempty"`
	Clicks   hitCounts `json:"clicks"`
}

// storedHit is a hit with its place in the message's hit list.
type storedHit struct {
	Seq int64 `json:"seq"`
	scoredHit
}

// maxReportHits bounds the hits one report reads.
const maxReportHits = 10000

// serveMessage answers GET /api/v1/messages/{id} ({id}: the tracked
// message id or its Message-ID).
func (t *Tracker) serveMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := t.pathMessage(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 4*t.cfg.StoreTimeout)
	defer cancel()
	m, err := t.loadMessage(ctx, id)
	if err != nil {
		t.writeErr(w, r, err)
		return
	}
	rep, err := t.report(ctx, m)
	if err != nil {
		t.writeErr(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, rep)
}

// report reads the message's hits and counts them.
func (t *Tracker) report(ctx context.Context, m *msgRecord) (*msgReport, error) {
	rep := &msgReport{Message: *m, Hits: []storedHit{}, Links: make([]linkReport, len(m.Links))}
	for i, l := range m.Links {
		rep.Links[i] = linkReport{ID: linkID(m.ID, i+1), Index: i + 1, URL: l.URL, Honeypot: l.Honeypot}
	}
	var after int64
	for len(rep.Hits) < maxReportHits {
		els, err := t.records.ReadList(ctx, t.hitsKey(m.ID), after, 1000)
		if err != nil {
			return nil, err
		}
		for _, el := range els {
			after = el.Seq
			var h scoredHit
			if json.Unmarshal(el.Value, &h) != nil {
				continue
			}
			rep.Hits = append(rep.Hits, storedHit{Seq: el.Seq, scoredHit: h})
			c := &rep.Opens
			if h.Kind == kindClick {
				if h.Link < 1 || h.Link > len(rep.Links) {
					continue
				}
				c = &rep.Links[h.Link-1].Clicks
			}
			c.count(h)
		}
		if len(els) < 1000 {
			return rep, nil
		}
	}
	rep.Truncated = true
	return rep, nil
}

func (c *hitCounts) count(h scoredHit) {
	if h.Machine {
		c.Machine++
		return
	}
	c.Human++
	if c.FirstHumanAt == nil || h.At.Before(*c.FirstHumanAt) {
		at := h.At
		c.FirstHumanAt = &at
	}
}

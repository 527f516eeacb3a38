package board

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/store"
)

// maxCards is how many items of one pipeline the board shows (the store's
// list limit); a response says when there were more.
const maxCards = 1000

// enrichWorkers bounds the store reads of one board request running at
// once (on Redis each is a round trip).
const enrichWorkers = 8

// Card is one item as the board shows it.
type Card struct {
	ID          string `json:"id"`
	Pipeline    string `json:"pipeline"`
	Stage       string `json:"stage"`
	Closed      bool   `json:"closed"`
	ContactID   string `json:"contact_id,omitempty"`
	ContactName string `json:"contact_name,omitempty"`
	// Identity is the contact's first email, phone or visitor id: what the
	// card shows when the contact has no name.
	Identity    string `json:"identity,omitempty"`
	Responsible string `json:"responsible,omitempty"`
	// EnteredAt is when the item entered its stage (its last move, else its
	// creation).
	EnteredAt time.Time `json:"entered_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   int64     `json:"version"`
	// LastEvent is the event of the item's latest timeline entry that has
	// one (its last move by a trigger, or its creation from an event).
	LastEvent *EventRef `json:"last_event,omitempty"`
}

// EventRef names an event and where it came from.
type EventRef struct {
	ID        string    `json:"id"`
	Type      string    `json:"type,omitempty"`
	Connector string    `json:"connector,omitempty"`
	Channel   string    `json:"channel,omitempty"`
	At        time.Time `json:"at,omitzero"`
}

// cardCache keeps each item's card for its version, so that a board
// request reads only what changed since the last one.
type cardCache struct {
	mu    sync.Mutex
	cards map[string]Card
}

func newCardCache() *cardCache { return &cardCache{cards: map[string]Card{}} }

func (c *cardCache) get(it store.Item) (Card, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cd, ok := c.cards[it.ID]
	return cd, ok && cd.Version == it.Version
}

// keep stores the cards of a pipeline and forgets that pipeline's cards
// that are no longer listed.
func (c *cardCache) keep(pipeline string, cards []Card) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]bool, len(cards))
	for _, cd := range cards {
		c.cards[cd.ID] = cd
		seen[cd.ID] = true
	}
	for id, cd := range c.cards {
		if cd.Pipeline == pipeline && !seen[id] {
			delete(c.cards, id)
		}
	}
}

// boardResponse is the answer of GET /api/v1/board.
type boardResponse struct {
	Pipelines []pipelineRef `json:"pipelines"`
	Pipeline  pipelineView  `json:"pipeline"`
	Items     []Card        `json:"items"`
	Truncated bool          `json:"truncated"`
	At        time.Time     `json:"at"`
}

type pipelineRef struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// apiBoard answers GET /api/v1/board?pipeline=: the pipeline's stages
// (with their triggers and actions in words) and its items as cards. The
// first pipeline is the default.
func (b *Board) apiBoard(w http.ResponseWriter, r *http.Request) {
	ps := b.pipelines()
	if len(ps) == 0 {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no pipelines are configured")
		return
	}
	want := r.URL.Query().Get("pipeline")
	var p *engine.Pipeline
	resp := boardResponse{At: b.now().UTC()}
	var ids []string
	for i := range ps {
		resp.Pipelines = append(resp.Pipelines, pipelineRef{ID: ps[i].ID, Name: ps[i].Name})
		ids = append(ids, ps[i].ID)
		if p == nil && (want == "" || ps[i].ID == want) {
			p = &ps[i]
		}
	}
	if p == nil {
		httpx.WriteError(w, http.StatusUnprocessableEntity, "unknown_pipeline",
			"unknown pipeline "+want+" (one of: "+strings.Join(ids, ", ")+")")
		return
	}
	resp.Pipeline = describePipeline(p)
	items, err := b.st.ListItems(r.Context(), store.ItemFilter{Pipeline: p.ID, Limit: maxCards})
	if err != nil {
		b.storeError(w, r, err)
		return
	}
	resp.Truncated = len(items) == maxCards
	if resp.Items, err = b.cardsOf(r.Context(), items); err != nil {
		b.storeError(w, r, err)
		return
	}
	b.cards.keep(p.ID, resp.Items)
	httpx.WriteJSON(w, http.StatusOK, resp)
}

// cardsOf returns the cards of items, in their order, reading the store
// only for items the cache does not hold at their version.
func (b *Board) cardsOf(ctx context.Context, items []store.Item) ([]Card, error) {
	cards := make([]Card, len(items))
	var todo []int
	for i, it := range items {
		if cd, ok := b.cards.get(it); ok {
			cards[i] = cd
			continue
		}
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return cards, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan int)
	errc := make(chan error, enrichWorkers)
	var wg sync.WaitGroup
	for range min(enrichWorkers, len(todo)) {
		wg.Go(func() {
			for i := range work {
				cd, err := b.card(ctx, items[i])
				if err != nil {
					errc <- err
					cancel()
					return
				}
				cards[i] = cd
			}
		})
	}
feed:
	for _, i := range todo {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return cards, nil
}

// card reads what a card shows of one item: its contact, and from its
// timeline when it entered its stage and the last event that changed it.
func (b *Board) card(ctx context.Context, it store.Item) (Card, error) {
	cd := Card{
		ID: it.ID, Pipeline: it.Pipeline, Stage: it.Stage, Closed: it.Closed, ContactID: it.ContactID,
		Responsible: it.Responsible, EnteredAt: it.CreatedAt, UpdatedAt: it.UpdatedAt, Version: it.Version,
	}
	if it.ContactID != "" {
		c, err := b.st.GetContact(ctx, it.ContactID)
		switch {
		case err == nil:
			cd.ContactName = c.Name
			if len(c.Identities) > 0 {
				cd.Identity = c.Identities[0].Value
			}
		case !errors.Is(err, store.ErrNotFound):
			return Card{}, err
		}
	}
	tl, err := b.st.Timeline(ctx, it.ID)
	if err != nil {
		return Card{}, err
	}
	entered, last := false, ""
	for i := len(tl) - 1; i >= 0 && (!entered || last == ""); i-- {
		e := tl[i]
		if !entered && (e.Kind == store.EntryMove || e.Kind == store.EntryCreated) {
			cd.EnteredAt, entered = e.At, true
		}
		if last == "" && e.EventID != "" {
			last = e.EventID
			cd.LastEvent = &EventRef{ID: e.EventID, At: e.At}
		}
	}
	if cd.LastEvent != nil {
		rec, _, err := b.st.GetEvent(ctx, cd.LastEvent.ID)
		switch {
		case err == nil:
			cd.LastEvent.Type = string(rec.Event.Type)
			cd.LastEvent.Connector = rec.Event.Connector
			cd.LastEvent.Channel = rec.Event.Channel
		case !errors.Is(err, store.ErrNotFound):
			return Card{}, err
		}
	}
	return cd, nil
}

// storeError answers for an error of the store, as the REST API does.
func (b *Board) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		httpx.WriteError(w, http.StatusNotFound, "not_found", "not found: "+r.URL.Path)
	case errors.Is(err, store.ErrUnavailable):
		httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "store unavailable, try again")
	case errors.Is(err, context.Canceled):
		// the client went away
	default:
		b.log.Error("board: internal error", "path", r.URL.Path, "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

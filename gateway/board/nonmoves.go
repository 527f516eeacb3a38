package board

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/store"
)

// nonMoveTTL is how long an item's list of events that did not move it is
// kept after its last addition (the store's default dedup window).
const nonMoveTTL = 30 * 24 * time.Hour

// nonMoveQueue bounds the events waiting to be indexed; when the engine is
// faster than the index, the newest are dropped (and logged): the list is
// an aid for the operator, the decisions themselves stay in the store.
const nonMoveQueue = 4096

// NonMove is an event that reached an item and did not move it.
type NonMove struct {
	EventID   string    `json:"event_id"`
	Type      string    `json:"type"`
	Connector string    `json:"connector,omitempty"`
	Channel   string    `json:"channel,omitempty"`
	Stage     string    `json:"stage"` // the item's stage then
	Note      string    `json:"note,omitempty"`
	At        time.Time `json:"at"`
}

// nonMoveIndex keeps, per item, the events that reached it without moving
// it — which its timeline does not show — so that the drawer can explain
// them. The timeline already names every event that moved an item. It is
// fed by the engine observer of the process that applied the event and
// written to the store (a list per item), so every process sees it.
type nonMoveIndex struct {
	st     store.Store
	log    *slog.Logger
	notify *notifier
	closed <-chan struct{}
	queue  chan string
	start  sync.Once

	mu       sync.Mutex
	dropped  int       // events not indexed since the last warning
	warnedAt time.Time // when the last warning was logged
}

// dropWarnEvery bounds the warnings about a full queue to one per period.
const dropWarnEvery = 10 * time.Second

func newNonMoveIndex(st store.Store, log *slog.Logger, n *notifier, closed <-chan struct{}) *nonMoveIndex {
	return &nonMoveIndex{st: st, log: log, notify: n, closed: closed, queue: make(chan string, nonMoveQueue)}
}

func nonMoveKey(itemID string) string { return "board/item/" + itemID + "/nonmoves" }

// add queues an applied event for indexing; it never blocks the engine.
func (x *nonMoveIndex) add(eventID string) {
	x.start.Do(func() { go x.run() })
	select {
	case x.queue <- eventID:
	default:
		x.mu.Lock()
		defer x.mu.Unlock()
		x.dropped++
		if now := time.Now(); now.Sub(x.warnedAt) >= dropWarnEvery {
			x.log.Warn("board: non-move index queue full, events not indexed", "dropped", x.dropped, "last_event_id", eventID)
			x.dropped, x.warnedAt = 0, now
		}
	}
}

func (x *nonMoveIndex) run() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-x.closed
		cancel()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-x.queue:
			if err := x.index(ctx, id); err != nil && ctx.Err() == nil {
				x.log.Warn("board: index event", "event_id", id, "err", err)
			}
		}
	}
}

// index reads the decisions of an applied event and adds the event to the
// list of each item it did not move.
func (x *nonMoveIndex) index(ctx context.Context, eventID string) error {
	rec, items, err := x.st.GetEvent(ctx, eventID)
	if err != nil {
		return err
	}
	added := false
	for _, d := range items {
		if d.Moved {
			continue
		}
		v, err := json.Marshal(NonMove{
			EventID: eventID, Type: string(rec.Event.Type), Connector: rec.Event.Connector,
			Channel: rec.Event.Channel, Stage: d.From, Note: d.Note, At: d.At,
		})
		if err != nil {
			return err
		}
		if _, _, err := x.st.AppendList(ctx, nonMoveKey(d.ItemID), eventID, v, nonMoveTTL); err != nil {
			return err
		}
		added = true
	}
	if added {
		x.notify.poke(changeItems)
	}
	return nil
}

// maxNonMoves is how many of an item's latest non-moves the route returns.
const maxNonMoves = 50

// apiItemEvents answers GET /api/v1/board/items/{id}/events: the latest
// events that reached the item and did not move it, newest first.
func (b *Board) apiItemEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := b.st.GetItem(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			httpx.WriteError(w, http.StatusNotFound, "not_found", `no item "`+id+`"`)
			return
		}
		b.storeError(w, r, err)
		return
	}
	var all []NonMove
	var after int64
	for {
		els, err := b.st.ReadList(r.Context(), nonMoveKey(id), after, 1000)
		if err != nil {
			b.storeError(w, r, err)
			return
		}
		for _, el := range els {
			var nm NonMove
			if json.Unmarshal(el.Value, &nm) == nil {
				all = append(all, nm)
			}
			after = el.Seq
		}
		if len(els) < 1000 {
			break
		}
	}
	out := make([]NonMove, 0, min(len(all), maxNonMoves))
	for i := len(all) - 1; i >= 0 && len(out) < maxNonMoves; i-- {
		out = append(out, all[i])
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"events": out})
}

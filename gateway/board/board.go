// Package board serves the operator's board: a web page at /ui/ (plain
// HTML, CSS and JavaScript embedded in the binary, nothing fetched from
// elsewhere) that shows every pipeline as a live kanban, and the few read
// routes under /api/v1/board it needs beyond the REST API.
//
// Live updates go through the store's Broadcaster: the engine's observer
// calls reach the board of the process that applied an event or ran an
// action, which publishes a small "something changed" message on one topic
// (coalesced, at most one per notifyDelay); every process sharing the store
// hands it to its open streams, and the browsers fetch what they show
// again. So a move applied by one gateway appears on boards served by any
// other gateway on the same Redis.
package board

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/store"
)

//go:embed assets
var assets embed.FS

// Options configure a Board.
type Options struct {
	// Store is the gateway's store: items, contacts, timelines, events and
	// the Broadcaster the live updates travel on.
	Store store.Store
	// Pipelines returns the configured pipelines (with their defaults
	// filled in); it is called on every board request, so it may be set
	// before the engine exists.
	Pipelines func() []engine.Pipeline
	Logger    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Board is the operator's board of one gateway process. Create it with New.
type Board struct {
	st        store.Store
	pipelines func() []engine.Pipeline
	log       *slog.Logger
	now       func() time.Time
	notify    *notifier
	hub       *hub
	cards     *cardCache
	nonMoves  *nonMoveIndex

	closeOnce sync.Once
	closed    chan struct{}
}

// New builds a board. It starts nothing: its streams and its background
// work begin with the first request or engine notification, and Close ends
// them.
func New(o Options) *Board {
	b := &Board{st: o.Store, pipelines: o.Pipelines, log: o.Logger, now: o.Now, closed: make(chan struct{})}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.notify = newNotifier(o.Store, b.log, b.closed)
	b.hub = newHub(o.Store, b.log)
	b.cards = newCardCache()
	b.nonMoves = newNonMoveIndex(o.Store, b.log, b.notify, b.closed)
	return b
}

// Routes mounts the page on mux (GET /ui/…, no auth: the page itself asks
// for a token) and the board's read routes on api (which the gateway puts
// behind its bearer-token auth).
func (b *Board) Routes(mux, api *http.ServeMux) {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	files := http.FileServerFS(sub)
	mux.Handle("GET /ui/", pageHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/ui/")
		if name == "" {
			name = "index.html"
		}
		if fi, err := fs.Stat(sub, name); err != nil || fi.IsDir() {
			httpx.WriteError(w, http.StatusNotFound, "not_found", "no such page: "+r.URL.Path)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = "/"+strings.TrimPrefix(r.URL.Path, "/ui/"), ""
		files.ServeHTTP(w, r2)
	})))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	api.HandleFunc("GET /api/v1/board", b.apiBoard)
	api.HandleFunc("GET /api/v1/board/stream", b.apiStream)
	api.HandleFunc("GET /api/v1/board/items/{id}/events", b.apiItemEvents)
}

// Close ends the open streams and the background work; the gateway calls
// it when its HTTP server shuts down (streams would otherwise keep the
// shutdown waiting).
func (b *Board) Close() {
	b.closeOnce.Do(func() { close(b.closed) })
}

// pageHeaders sets the headers of the page's files: a strict content
// security policy (only the gateway's own scripts, styles and API), no
// framing, no caching of stale code across upgrades.
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// ctx returns a context that ends with parent or when the board closes.
func (b *Board) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-b.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

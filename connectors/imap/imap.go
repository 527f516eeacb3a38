package imap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/internal/httpx"
	"github.com/stagegate/stagegate/store"
)

// Kind is the connector kind "imap".
var Kind = connectors.NewKind("imap", NewConfig, New)

// Lease timing: a folder's lease lives leaseTTL and is renewed every
// leaseRenew, so a dead holder's folders are taken over within about a
// minute.
const (
	defaultLeaseTTL   = 45 * time.Second
	defaultLeaseRenew = 15 * time.Second
	quarantineTTL     = 90 * 24 * time.Hour
	messageRefTTL     = 365 * 24 * time.Hour
)

// Connector watches the folders of one mail account. It is a
// connectors.Service (Run) and an APIConnector (status and quarantine).
type Connector struct {
	name    string
	cfg     *Config
	log     *slog.Logger
	intake  connectors.Intake
	records store.Records
	now     func() time.Time
	rules   Rules
	holder  string // this process's lease holder id
	// single: the store is opened by one process only (bolt), so no other
	// gateway can watch the folders and they are not leased.
	single  bool
	metrics *metrics

	leaseTTL, leaseRenew time.Duration
	keepLease            atomic.Bool // tests: do not release leases on stop, as after a crash

	workers []*worker // set by New, read-only afterwards
}

var (
	_ connectors.Service          = (*Connector)(nil)
	_ connectors.APIConnector     = (*Connector)(nil)
	_ connectors.HealthConnector  = (*Connector)(nil)
	_ connectors.MetricsConnector = (*Connector)(nil)
)

// New builds an imap connector from its validated config.
func New(base connectors.Base, cfg *Config, deps connectors.Deps) (*Connector, error) {
	if deps.Intake == nil {
		return nil, fmt.Errorf("imap %s: no intake", base.Name)
	}
	if deps.Records == nil {
		return nil, fmt.Errorf("imap %s: the store keeps no records (cursors need store.Records)", base.Name)
	}
	own, err := NewOwn(cfg.OwnAddresses, cfg.Username)
	if err != nil {
		return nil, fmt.Errorf("imap %s: own_addresses: %w", base.Name, err)
	}
	c := &Connector{
		name: base.Name, cfg: cfg, log: deps.Logger, intake: deps.Intake, records: deps.Records, now: deps.Now,
		rules:    Rules{Own: own, AcceptLists: cfg.AcceptLists, ExcerptChars: DefaultExcerptChars},
		holder:   randomID(),
		leaseTTL: defaultLeaseTTL, leaseRenew: defaultLeaseRenew,
	}
	if sp, ok := deps.Records.(interface{ SingleProcess() bool }); ok {
		c.single = sp.SingleProcess()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.metrics = newMetrics(c)
	for _, f := range cfg.Folders.Incoming {
		c.workers = append(c.workers, newWorker(c, f, false))
	}
	if s := cfg.SentFolder(); s != SentNone {
		c.workers = append(c.workers, newWorker(c, s, true))
	}
	return c, nil
}

// Name returns the connector's instance name.
func (c *Connector) Name() string { return c.name }

// Run watches every folder until ctx is done. A failing folder (server
// down, bad password) is retried with backoff and shown in Status; it
// never stops the other folders or the gateway, so Run returns nil.
func (c *Connector) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, w := range c.workers {
		wg.Go(func() { w.run(ctx) })
	}
	wg.Wait()
	return nil
}

// APIRoutes serves GET /api/v1/imap/{name}/status (the state of each
// folder) and GET /api/v1/imap/{name}/quarantine (mail that could not be
// fetched or read, newest last).
func (c *Connector) APIRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/imap/"+c.name+"/status", func(w http.ResponseWriter, _ *http.Request) {
		ok, folders := c.Health()
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"connector": c.name, "ok": ok, "folders": folders})
	})
	mux.HandleFunc("GET /api/v1/imap/"+c.name+"/quarantine", func(w http.ResponseWriter, r *http.Request) {
		list, err := c.Quarantine(r.Context(), 1000)
		if err != nil {
			httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the store did not answer")
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"connector": c.name, "entries": list})
	})
}

// key returns the Records key of one of this connector's records.
func (c *Connector) key(kind, folder string) string {
	return fmt.Sprintf("imap/%s/%s/%s/%s/%s", c.name, kind, c.cfg.Host, c.cfg.Username, folder)
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

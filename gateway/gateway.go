// Package gateway wires a whole Stagegate together from its config — store,
// engine, connectors, REST API, health and metrics — behind one HTTP
// listener, so that the binary and tests can start a complete gateway (tests
// on 127.0.0.1:0).
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/stagegate/stagegate/actions"
	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/connectors/tracking"
	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/gateway/board"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// Options are what the config file does not say.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Instance names this process among gateways sharing one store
	// (the log consumer name). Default: hostname-pid.
	Instance string
	// ShutdownTimeout bounds the graceful shutdown. Default 15s.
	ShutdownTimeout time.Duration
	// Resolver looks up the hosts of action targets; nil means the
	// system's (tests give a fake one).
	Resolver actions.Resolver
	// Version and ConfigPath are shown in the start-up log line.
	Version    string
	ConfigPath string
}

// Gateway is one running Stagegate. Build it with New, then Run it.
type Gateway struct {
	cfg      *config.Config
	log      *slog.Logger
	now      func() time.Time
	st       store.Store
	eng      *engine.Engine
	m        *metrics
	intake   *intake
	services []connectors.Service
	health   []connectors.HealthConnector
	tracker  *tracking.Tracker            // the tracking connector, if any
	sentBox  map[string]actions.SentSaver // imap connectors, for send_email's save_to
	handler  http.Handler
	board    *board.Board
	maxBody  int64
	shutdown time.Duration

	version, configPath string // for the start-up log
	outage              *outageLog

	mu sync.Mutex
	ln net.Listener
}

// New opens the store and builds the engine and every connector. Close the
// gateway by cancelling the context given to Run (or call Close if Run is
// never called).
func New(ctx context.Context, cfg *config.Config, o Options) (*Gateway, error) {
	g := &Gateway{cfg: cfg, log: o.Logger, now: o.Now, m: newMetrics(), maxBody: cfg.Limits.MaxBody, shutdown: o.ShutdownTimeout,
		version: o.Version, configPath: o.ConfigPath}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	// Every component logs through the outage handler: a store outage is
	// one warning, a reminder a minute and one "recovered" line.
	g.outage = newOutageLog(g.log, g.now)
	g.log = slog.New(g.outage.wrap(g.log.Handler()))
	if g.shutdown == 0 {
		g.shutdown = 15 * time.Second
	}
	if g.maxBody <= 0 {
		g.maxBody = 1 << 20
	}
	instance := o.Instance
	if instance == "" {
		host, _ := os.Hostname()
		instance = host + "-" + strconv.Itoa(os.Getpid())
	}
	st, err := openStore(ctx, cfg.Store, g.log.With("component", "store"), g.now)
	if err != nil {
		return nil, err
	}
	g.st = st
	g.outage.ping = st.Ping
	g.intake = &intake{st: st, m: g.m, log: g.log.With("component", "intake")}
	create := map[string]engine.CreateSpec{}
	for _, c := range cfg.Connectors {
		if c.Create != nil {
			create[c.Name] = engine.CreateSpec{Pipeline: c.Create.Pipeline, Stage: c.Create.Stage, Responsible: c.Create.Responsible}
		}
	}
	runner, err := actions.New(cfg.Actions, actions.Options{
		Store: st, Logger: g.log.With("component", "actions"), Now: g.now, Resolver: o.Resolver,
		SMTP: cfg.SMTP, Submit: g.submit,
	})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.board = board.New(board.Options{
		Store: st, Pipelines: func() []engine.Pipeline { return g.eng.Pipelines() },
		Logger: g.log.With("component", "board"), Now: g.now,
	})
	aopts := g.actionOptions()
	aopts.Observer = g.board.ActionObserver(aopts.Observer)
	g.eng, err = engine.New(engine.Options{
		Store: st, Pipelines: cfg.Pipelines, Create: create, DefaultRegion: cfg.Engine.DefaultRegion,
		Logger: g.log.With("component", "engine"), Now: g.now, Observer: g.board.Observer(g.m),
		BatchSize: cfg.Engine.BatchSize, Consumer: instance,
		Actions: runner, ActionOptions: aopts, EventActions: cfg.EventActions(),
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	g.m.watchOutbox(st)
	mux, api := http.NewServeMux(), http.NewServeMux()
	if err := g.mountConnectors(mux, api); err != nil {
		st.Close()
		return nil, err
	}
	if g.tracker != nil {
		runner.UseMailBuilder(trackingMail{g.tracker})
	}
	for name, s := range g.sentBox {
		runner.UseMailbox(name, s)
	}
	g.routes(mux, api)
	g.board.Routes(mux, api) // the operator's board at /ui/
	g.handler = mux
	return g, nil
}

// submit records an event an action emits through the intake, as a
// connector's.
func (g *Gateway) submit(ctx context.Context, ev *normalize.Event) error {
	_, err := g.intake.Submit(ctx, ev)
	return err
}

// Handler returns the gateway's HTTP handler (for tests and embedding).
func (g *Gateway) Handler() http.Handler { return g.handler }

// Listen opens the listener on the configured address ("127.0.0.1:0" picks
// a free port) and returns its address.
func (g *Gateway) Listen() (net.Addr, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		return g.ln.Addr(), nil
	}
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen %s: %w", g.cfg.Listen, err)
	}
	g.ln = ln
	return ln.Addr(), nil
}

// Run serves until ctx is done, then shuts down gracefully: it stops taking
// input, lets requests in flight finish, applies what was accepted, lets
// running actions finish (the rest stay in the outbox), and closes the
// store.
func (g *Gateway) Run(ctx context.Context) error {
	if _, err := g.Listen(); err != nil {
		g.st.Close()
		return err
	}
	srv := &http.Server{
		Handler: g.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(g.board.Close) // ends the board's streams
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEngine()
	svcCtx, stopServices := context.WithCancel(ctx)
	defer stopServices()

	errc := make(chan error, 3+len(g.services))
	var wg sync.WaitGroup
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	engineDone := make(chan struct{})
	go func() {
		defer close(engineDone)
		if err := g.eng.Run(engCtx); err != nil {
			errc <- fmt.Errorf("engine: %w", err)
		}
	}()
	actCtx, stopActions := context.WithCancel(context.WithoutCancel(ctx))
	defer stopActions()
	actionsDone := make(chan struct{})
	go func() {
		defer close(actionsDone)
		if err := g.eng.RunActions(actCtx); err != nil {
			errc <- fmt.Errorf("actions: %w", err)
		}
	}()
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		g.outage.run(watchCtx) // pings the store during an outage, to log its end
	}()
	for _, s := range g.services {
		run("connector "+s.Name(), func() error { return s.Run(svcCtx) })
	}
	run("http", func() error {
		if err := srv.Serve(g.ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.logStartup(g.ln.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		g.log.Error("stopping after failure", "err", runErr)
	}
	g.log.Info("shutting down: no new input, finishing accepted events")
	sctx, cancel := context.WithTimeout(context.Background(), g.shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		g.log.Warn("http shutdown", "err", err)
	}
	stopServices()
	if err := g.eng.Drain(sctx); err != nil {
		g.log.Warn("engine drain incomplete; the rest stays in the log", "err", err)
	}
	stopEngine()
	<-engineDone
	stopActions() // running actions get a grace period, then are due again
	<-actionsDone
	wg.Wait()
	stopWatch()
	<-watchDone
	if err := g.st.Close(); err != nil {
		g.log.Warn("store close", "err", err)
	}
	g.log.Info("stopped")
	return runErr
}

// Close releases the store of a gateway that was never Run.
func (g *Gateway) Close() error { return g.st.Close() }

// Store returns the gateway's store (for tests and tools).
func (g *Gateway) Store() store.Store { return g.st }

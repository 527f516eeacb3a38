// Package gatewaytest starts a whole gateway in-process for the tests of
// other packages (connectors' end-to-end tests): built from a parsed
// config, listening on its address (127.0.0.1:0 picks a free port), and
// shut down gracefully when the test ends.
package gatewaytest

import (
	"context"
	"testing"

	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/gateway"
)

// Running is a gateway started by Start.
type Running struct {
	*gateway.Gateway
	// Addr is the listener's host:port; Base is "http://" + Addr.
	Addr, Base string
	stop       func()
}

// Start builds a gateway from cfg with o, runs it, and registers its
// graceful shutdown (checked for errors) with t.Cleanup.
func Start(t testing.TB, cfg *config.Config, o gateway.Options) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	addr, err := g.Listen()
	if err != nil {
		cancel()
		g.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	stopped := false
	r := &Running{Gateway: g, Addr: addr.String(), Base: "http://" + addr.String()}
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway run: %v", err)
		}
	}
	t.Cleanup(r.stop)
	return r
}

// Stop shuts the gateway down now (a restart test); cleanup then does
// nothing more.
func (r *Running) Stop() { r.stop() }

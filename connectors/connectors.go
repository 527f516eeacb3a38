// Package connectors holds the contract every channel connector implements,
// and the dependencies the gateway hands to each. One sub-package per kind
// (webhook, imap, tracking, telephony, livechat) implements it; the gateway
// wires them in one map from kind to constructor.
//
// # Lifecycle
//
// The gateway drives every connector through the same steps, in order:
//
//  1. Config: Kind.NewConfig, YAML decoding into it, UseSecrets (a
//     SecretsUser) and Validate. `stagegate check` stops here.
//  2. New: Kind.New once per configured instance, with the validated config
//     and Deps, while the gateway is being built: the store is open, nothing
//     listens yet. New checks its Deps and builds state; it starts no
//     goroutine and opens no connection (that is Run's), and returns an
//     error that names the connector for anything it cannot work with —
//     the gateway then does not start.
//  3. Mounting, right after New and before anything is served: an
//     HTTPConnector is mounted under /in/{name}/, PublicRoutes and APIRoutes
//     are called once each to register handlers (nothing else), a
//     MetricsConnector's Collector is registered, a HealthConnector is
//     listed for /readyz.
//  4. Serving: the listener and every Service's Run start together, with
//     no order between them: ServeHTTP (and the registered handlers) may be
//     called before Run begins and concurrently with it, from many
//     goroutines at once. A connector whose HTTP part needs Run (the live
//     chat's broadcasts) must still answer correctly without it. Health may
//     be called at any time and must not block.
//  5. Shutdown: the listener stops first and requests in flight finish
//     (connections a handler hijacked, such as websockets, are the
//     connector's: Run's end closes them); then Run's context is cancelled,
//     and the gateway waits for every Run to return. The intake and the
//     store stay usable until all of them have returned, so what a
//     connector submits while stopping is still recorded. There is no Close:
//     whatever New holds is released when Run returns, or by the garbage
//     collector for a gateway that was built but never run (tests).
//
// # What a connector may assume about the intake
//
// Deps.Intake is safe for concurrent use and outlives the connector's Run.
// Submit returns once the event is durable (or known: Duplicate), and only
// then may the source be acknowledged. An error wrapping ErrUnavailable is
// an outage: answer 503 with Retry-After (Push.Submit does), leave the
// source unacknowledged, and expect the sender's retry, which Submit takes
// as new because nothing was recorded. Any other error is not retryable in
// the same form (500). Submit deduplicates on Event.ID, so ids must be
// derived from the source (a retry has the same id) and never be random; a
// connector does not keep its own dedup for correctness. Submit may keep the
// event: do not change it afterwards. Reject only counts a refused input
// for metrics and never fails.
//
// The push connectors' shared answers (413 over max_body, 405 with Allow,
// 503 with Retry-After, 200 {"event_id","duplicate"}) come from Push; the
// suite in connectors/connectortest checks every push connector keeps them.
package connectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/validate"
)

// ErrUnavailable is returned by Intake.Submit when the event could not be
// made durable; the connector must not acknowledge its source (HTTP 503).
var ErrUnavailable = errors.New("intake unavailable")

// Result tells a connector what Intake did with an event.
type Result struct {
	EventID   string
	Duplicate bool
}

// Intake records events durably and deduplicated. A nil error means the
// event is durable (or was already): only then may the source be
// acknowledged. See the package documentation for what a connector may
// assume about it.
type Intake interface {
	Submit(ctx context.Context, ev *normalize.Event) (Result, error)
	// Reject counts an input refused before it became an event (bad
	// signature, bad body), for metrics.
	Reject(connector, reason string)
}

// BatchIntake is an Intake that also records many events in one call, in
// as few store writes as it can (the gateway's does). A connector that
// holds several events at once (the mails of one IMAP FETCH) calls the
// SubmitBatch function below, which uses it when the intake has it.
//
// SubmitBatch returns one Result per event, in the order of evs, and a nil
// error only when every event is durable (or was already: Duplicate).
// With an error no result may be relied on: some events may be durable,
// others not, and the caller acknowledges none of them; submitting the
// same events again is safe, since every one is deduplicated on its ID as
// by Submit (ErrUnavailable has the same meaning). The events of one batch
// are recorded with no order between them: events that must reach the log
// in order go in successive calls. The same id twice in one batch is
// recorded once (one of the two results says Duplicate). SubmitBatch may
// keep the events, as Submit does.
type BatchIntake interface {
	Intake
	SubmitBatch(ctx context.Context, evs []*normalize.Event) ([]Result, error)
}

// SubmitBatch records evs through in: in one BatchIntake.SubmitBatch when
// in has it, else one Submit per event, all at once, so that a store that
// groups concurrent writes still commits them together. Its answer is
// BatchIntake.SubmitBatch's.
func SubmitBatch(ctx context.Context, in Intake, evs []*normalize.Event) ([]Result, error) {
	if bi, ok := in.(BatchIntake); ok {
		return bi.SubmitBatch(ctx, evs)
	}
	return SubmitEach(ctx, in, evs)
}

// SubmitEach submits every event of evs with its own in.Submit, all
// concurrently, and waits for them all; it returns the results in the
// order of evs and the first error (by position). It is SubmitBatch for
// an intake without one, and a BatchIntake built on a store whose
// concurrent writes share a commit may use it as its SubmitBatch.
func SubmitEach(ctx context.Context, in Intake, evs []*normalize.Event) ([]Result, error) {
	res := make([]Result, len(evs))
	if len(evs) == 1 {
		r, err := in.Submit(ctx, evs[0])
		res[0] = r
		return res, err
	}
	errs := make([]error, len(evs))
	var wg sync.WaitGroup
	for i, ev := range evs {
		wg.Go(func() { res[i], errs[i] = in.Submit(ctx, ev) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// PutIntake is an Intake that records events in the same store step as an
// append-and-put on the connectors' Records (store.EventsPutter): the
// events are recorded if and only if the put passes its version check. A
// connector may then derive events from a state it cached rather than
// read: the check proves that state was the stored one. The gateway's
// intake is one; whether it can do it depends on its store (bolt can).
//
// SubmitWithPut returns the append's and the put's results and one Result
// per event (deduplicated on its ID as by Submit), in the order of evs. A
// lost check is an error wrapping store.ErrConflict: the append stands,
// no event was recorded. An error wrapping ErrUnavailable means nothing
// was written. errors.ErrUnsupported means the store cannot do this and
// nothing was written: make the steps one by one instead.
type PutIntake interface {
	Intake
	SubmitWithPut(ctx context.Context, evs []*normalize.Event, a store.ListAppend, p store.RecordPut) (PutResult, error)
	// CanPut reports whether SubmitWithPut works with this intake's store
	// (when false it answers errors.ErrUnsupported).
	CanPut() bool
}

// PutResult is the answer of PutIntake.SubmitWithPut.
type PutResult struct {
	Seq       int64 // the append's, as Records.AppendList returns it
	Duplicate bool  // the append's
	Version   int64 // the record's new version; 0 when the check was lost
	Events    []Result
}

// CanPut reports whether in is a PutIntake whose SubmitWithPut works.
func CanPut(in Intake) bool {
	pi, ok := in.(PutIntake)
	return ok && pi.CanPut()
}

// SubmitWithPut is in's PutIntake.SubmitWithPut when in has one, else
// errors.ErrUnsupported with nothing written.
func SubmitWithPut(ctx context.Context, in Intake, evs []*normalize.Event, a store.ListAppend, p store.RecordPut) (PutResult, error) {
	if pi, ok := in.(PutIntake); ok {
		return pi.SubmitWithPut(ctx, evs, a, p)
	}
	return PutResult{}, errors.ErrUnsupported
}

// Create says where a connector creates a contact and an item when an event
// matches nothing.
type Create struct {
	Pipeline    string `yaml:"pipeline" json:"pipeline"`
	Stage       string `yaml:"stage" json:"stage"`
	Responsible string `yaml:"responsible" json:"responsible,omitempty"`
}

// Base is the part of a connector's config section common to all kinds.
type Base struct {
	Name   string  `yaml:"name"`
	Type   string  `yaml:"type"`
	Create *Create `yaml:"create"`
}

// Deps are what the gateway gives a connector.
type Deps struct {
	Logger    *slog.Logger // already scoped with the connector's name
	Intake    Intake
	Now       func() time.Time
	PublicURL string // base URL of the gateway as seen from outside
	// Records is the store's generic connector state (call state, cursors,
	// tracked messages). Keys must start with "<kind>/<connector name>/".
	Records store.Records
	// Broadcast carries messages between gateway processes sharing a store.
	Broadcast store.Broadcaster
	// Region is the default region for phone numbers (engine.default_region).
	Region string
	// Items looks up CRM items, for connectors that take an item id from a
	// caller (a tracked message is prepared for an existing item). Nil in
	// tests that build a connector alone: such ids are then not checked.
	Items ItemGetter
	// Finder finds the items of the contact a subject's identities belong
	// to (the live chat console shows a visitor's items). Nil: none shown.
	Finder ItemFinder
}

// ItemFinder returns the open items of the contact that subject's email,
// phone or visitor id belongs to, without creating anything.
type ItemFinder interface {
	ItemsFor(ctx context.Context, subject normalize.Subject) ([]store.Item, error)
}

// ItemGetter looks up an item by id; an unknown id is store.ErrNotFound.
// store.Store implements it.
type ItemGetter interface {
	GetItem(ctx context.Context, id string) (store.Item, error)
}

// Connector is one configured connector instance. The optional interfaces
// below add what the gateway mounts or runs; each implementation states the
// ones it means with compile-time guards (var _ connectors.Service =
// (*Connector)(nil)), so a changed signature fails the build instead of
// silently dropping the part.
type Connector interface {
	// Name is the instance name from the config (Base.Name).
	Name() string
}

// HTTPConnector is a connector that receives requests under /in/{name}/.
// The gateway strips that prefix: the handler sees "/" or "/sub/path".
// ServeHTTP is called concurrently, possibly before Run (lifecycle, step 4).
// A push connector embeds Push for its answers: a method its routes do not
// take is 405 with Allow, a body over max_body 413, an unavailable intake
// 503 with Retry-After.
type HTTPConnector interface {
	Connector
	http.Handler
}

// RouteConnector is a connector that also serves public routes outside
// /in/{name}/ (the tracking pixel at /t/o/{token}). Patterns are
// http.ServeMux patterns with methods, such as "GET /t/o/{token}", and
// must be the kind's Kind.Routes. PublicRoutes is called once, after New,
// and only registers handlers.
type RouteConnector interface {
	Connector
	PublicRoutes(mux *http.ServeMux)
}

// APIConnector is a connector that adds routes to the REST API (for example
// GET /api/v1/calls/{id}). The gateway mounts them behind bearer-token
// auth; patterns start with "/api/v1/". APIRoutes is called once, after
// New, and only registers handlers.
type APIConnector interface {
	Connector
	APIRoutes(mux *http.ServeMux)
}

// HealthConnector reports the state of a connector's sources (an IMAP
// account that cannot log in). /readyz shows the detail; a connector that
// is not ok makes readiness "degraded", not failed, so one broken mailbox
// does not take the instance out of rotation. Health is called by every
// /readyz request, concurrently and at any time after New: it reads state
// the connector keeps, and never waits for a source.
type HealthConnector interface {
	Connector
	Health() (ok bool, detail any)
}

// MetricsConnector exposes its own Prometheus collector, registered with
// the gateway's /metrics once, after New. Two connectors' collectors must
// not describe the same metric with the same labels.
type MetricsConnector interface {
	Connector
	Collector() prometheus.Collector
}

// Service is a connector with a long-running part (a poller, a listener).
// The gateway calls Run once, in its own goroutine, when it starts serving
// (lifecycle, step 4). Run returns nil after ctx is done and everything it
// started has stopped (its goroutines, its connections, hijacked ones
// included). A non-nil error means the connector cannot go on: it stops
// the whole gateway (gracefully), so a source that fails for a while (a
// mailbox that refuses the login) is reported through Health and retried,
// not returned.
type Service interface {
	Connector
	Run(ctx context.Context) error
}

// Config is a kind's config section. Decoding fills it from YAML (unknown
// keys are rejected by the config loader); Validate returns problems with
// paths relative to the connector's section.
type Config interface {
	Validate() validate.Errors
}

// SharedSecrets are the config file's top-level secrets section, offered to
// a kind's config before it is validated.
type SharedSecrets struct {
	// TrackingKeys sign tracking tokens: the first signs, all verify.
	TrackingKeys []string
}

// SecretsUser is a Config that takes defaults from the shared secrets (the
// tracking connector's keys default to secrets.tracking_keys).
type SecretsUser interface {
	Config
	UseSecrets(s SharedSecrets)
}

// NewKind builds a Kind from a kind's typed constructors, so that no kind
// writes the assertion from Config to its own config type by hand.
func NewKind[C Config, K Connector](kind string, newConfig func() C, build func(Base, C, Deps) (K, error)) Kind {
	return Kind{
		NewConfig: func() Config { return newConfig() },
		New: func(base Base, cfg Config, deps Deps) (Connector, error) {
			c, ok := cfg.(C)
			if !ok {
				return nil, fmt.Errorf("%s %s: config is %T, want %T", kind, base.Name, cfg, c)
			}
			return build(base, c, deps)
		},
	}
}

// Kind describes one connector kind.
type Kind struct {
	// NewConfig returns a pointer to a config value with defaults set.
	NewConfig func() Config
	// New builds the connector from its validated config (lifecycle,
	// step 2: no goroutine, no connection).
	New func(base Base, cfg Config, deps Deps) (Connector, error)
	// Routes are the fixed http.ServeMux patterns outside /in/{name}/ that
	// every connector of the kind serves (its PublicRoutes and APIRoutes).
	// The config check reports two connectors whose routes conflict, so
	// that `stagegate check` refuses what the gateway could not mount.
	Routes []string
}

// WithRoutes returns k declaring the fixed routes its connectors serve.
func (k Kind) WithRoutes(patterns ...string) Kind {
	k.Routes = patterns
	return k
}

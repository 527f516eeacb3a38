// Package connectors holds the contract every channel connector implements,
// and the dependencies the gateway hands to each. One sub-package per kind
// (webhook, imap, tracking, telephony, livechat) implements it; the gateway
// wires them in one map from kind to constructor.
package connectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
// event is durable (or was already): only then may the source be acknowledged.
type Intake interface {
	Submit(ctx context.Context, ev *normalize.Event) (Result, error)
	// Reject counts an input refused before it became an event (bad
	// signature, bad body), for metrics.
	Reject(connector, reason string)
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
}

// ItemGetter looks up an item by id; an unknown id is store.ErrNotFound.
// store.Store implements it.
type ItemGetter interface {
	GetItem(ctx context.Context, id string) (store.Item, error)
}

// Connector is one configured connector instance.
type Connector interface {
	Name() string
}

// HTTPConnector is a connector that receives requests under /in/{name}/.
// The gateway strips that prefix: the handler sees "/" or "/sub/path".
type HTTPConnector interface {
	Connector
	http.Handler
}

// RouteConnector is a connector that also serves public routes outside
// /in/{name}/ (the tracking pixel at /t/o/{token}). Patterns are
// http.ServeMux patterns with methods, such as "GET /t/o/{token}".
type RouteConnector interface {
	Connector
	PublicRoutes(mux *http.ServeMux)
}

// APIConnector is a connector that adds routes to the REST API (for example
// GET /api/v1/calls/{id}). The gateway mounts them behind bearer-token
// auth; patterns start with "/api/v1/".
type APIConnector interface {
	Connector
	APIRoutes(mux *http.ServeMux)
}

// HealthConnector reports the state of a connector's sources (an IMAP
// account that cannot log in). /readyz shows the detail; a connector that
// is not ok makes readiness "degraded", not failed, so one broken mailbox
// does not take the instance out of rotation.
type HealthConnector interface {
	Connector
	Health() (ok bool, detail any)
}

// MetricsConnector exposes its own Prometheus collector, registered with
// the gateway's /metrics.
type MetricsConnector interface {
	Connector
	Collector() prometheus.Collector
}

// Service is a connector with a long-running part (a poller, a listener).
// Run returns when ctx is done, or with an error that stops the gateway.
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
	// New builds the connector from its validated config.
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

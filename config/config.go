// Package config loads the gateway's YAML config file. It expands ${NAME}
// environment references, rejects unknown keys, decodes every section
// (including each connector kind's own settings), applies defaults and
// reports every problem at once, each with its path in the file, such as
// "pipelines[0].stages[2].triggers[0].url: required".
package config

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/actions"
	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/validate"
)

// Config is the whole config file.
type Config struct {
	// Listen is the host:port of the HTTP listener. Default DefaultListen.
	Listen string `yaml:"listen"`
	// PublicURL is the base of tracking links, an absolute http(s) URL
	// without a trailing slash. Default "http://" + Listen.
	PublicURL string         `yaml:"public_url"`
	Store     store.Config   `yaml:"store"`
	API       API            `yaml:"api"`
	Secrets   Secrets        `yaml:"secrets"`
	Log       Log            `yaml:"log"`
	Engine    Engine         `yaml:"engine"`
	Limits    Limits         `yaml:"limits"`
	Actions   actions.Config `yaml:"actions"`
	// SMTP are the mail accounts the send_email action submits through.
	SMTP       actions.SMTPAccounts `yaml:"smtp"`
	Pipelines  []engine.Pipeline    `yaml:"pipelines"`
	Connectors []Connector          `yaml:"connectors"`

	// publicURLDefault says PublicURL was not in the file but made from
	// Listen, so that SetListen makes it again.
	publicURLDefault bool
}

// API is the REST API section.
type API struct {
	// Tokens are the accepted bearer tokens; at least one is required.
	Tokens []string `yaml:"tokens"`
}

// Secrets holds keys that are not tied to one connector.
type Secrets struct {
	// TrackingKeys sign tracking tokens: the first signs, all verify.
	TrackingKeys []string `yaml:"tracking_keys"`
}

// Log is the logging section.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn or error
	Format string `yaml:"format"` // auto (default), text or json
}

// Engine tunes the stage engine.
type Engine struct {
	// BatchSize bounds how many log entries the engine applies in one
	// batch (one store write). Default and maximum 256.
	BatchSize int `yaml:"batch_size"`
	// Workers is accepted for configs written before events were applied
	// in batches, and ignored.
	Workers int `yaml:"workers"`
	// DefaultRegion is the region of phone numbers written without a
	// country code, upper-cased. Default "US".
	DefaultRegion string `yaml:"default_region"`
}

// Limits bounds what the gateway accepts.
type Limits struct {
	// MaxBody is the largest request body in bytes. Default 1 MiB.
	MaxBody int64 `yaml:"max_body"`
}

// Connector is one entry of the connectors section: the keys common to all
// kinds, and the kind's own settings decoded from the same mapping.
type Connector struct {
	connectors.Base `yaml:",inline"`
	// Settings is the value kinds[Type].NewConfig returned, decoded and
	// validated; nil when the kind has no NewConfig.
	Settings connectors.Config `yaml:"-"`
}

// Defaults and limits applied by Parse.
const (
	DefaultListen        = "127.0.0.1:8080"
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "auto"
	DefaultBatchSize     = 256
	DefaultRegion        = "US"
	DefaultMaxBody       = 1 << 20
	MinTokenLength       = 8  // characters of an API token
	MinTrackingKeyLength = 16 // bytes of a tracking key
)

// Load reads the file at path and parses it with Parse. An error reading the
// file is returned as is; every other problem as validate.Errors.
func Load(path string, kinds map[string]connectors.Kind, actionTypes map[string]engine.ActionKind, getenv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, kinds, actionTypes, getenv)
}

// Parse decodes and checks a config file. kinds are the connector kinds by
// type name, actionTypes the stage action types the engine can run (their
// settings are decoded from each action's mapping), and
// getenv looks up ${NAME} references (os.LookupEnv when nil). On any
// problem it returns a nil Config and a validate.Errors listing every
// problem, in file order.
func Parse(data []byte, kinds map[string]connectors.Kind, actionTypes map[string]engine.ActionKind, getenv func(string) (string, bool)) (*Config, error) {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	root, extra, err := parseDocument(data)
	if err != nil {
		return nil, validate.Errors{{Message: err.Error()}}
	}
	if root != nil && root.Kind != yaml.MappingNode {
		return nil, validate.Errors{{Message: "the top level must be a mapping of sections (listen, store, pipelines, ...), not " + shape(root)}}
	}

	// Structural problems: they make values unusable, so later checks at
	// the same paths are dropped.
	var structural validate.Errors
	expandEnv(root, "", getenv, &structural)
	w := walker{extend: func(t reflect.Type, n *yaml.Node) []reflect.Type {
		switch t {
		case connectorType:
			return connectorExtension(kinds, n)
		case actionType:
			return actionExtension(actionTypes, n)
		}
		return nil
	}}
	w.walk("", root, reflect.TypeFor[Config]())
	if w.steps >= maxSteps {
		return nil, validate.Errors{{Message: errTooComplex}}
	}
	structural = append(structural, w.errs...)

	var cfg Config
	if root != nil {
		if err := root.Decode(&cfg); err != nil && len(structural) == 0 {
			structural.Add("", "%s", yamlMessage(err))
		}
	}
	checks := cfg.check(kinds, actionTypes, connectorNodes(root), len(structural) > 0)
	checks = append(checks, extra...)
	if errs := order(root, structural, checks); len(errs) > 0 {
		return nil, errs
	}
	return &cfg, nil
}

// parseDocument parses data into the root node of its only document (nil
// for an empty file). extra reports a second document.
func parseDocument(data []byte) (root *yaml.Node, extra validate.Errors, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		return nil, nil, errors.New(yamlMessage(err))
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		extra.Add("", "%s", yamlMessage(err))
	default:
		extra.Add("", "only one YAML document is allowed (another starts at line %d)", next.Line)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0], extra, nil
	}
	return nil, extra, nil
}

// yamlMessage is err's text without yaml's "yaml: " and "unmarshal errors"
// framing; a type error keeps its line numbers. A syntax error of yaml's
// parser (not its scanner) names the line before the problem — yaml.v3
// adds one to the 0-based line for scanner errors only — so its line is
// put right.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := parserErrorLine.FindStringSubmatch(msg); m != nil {
		if n, cerr := strconv.Atoi(m[1]); cerr == nil {
			return "line " + strconv.Itoa(n+1) + ": " + m[2]
		}
	}
	return msg
}

// parserErrorLine matches the problems yaml.v3's parser reports (see
// parserc.go), as opposed to its scanner's, whose lines are right.
var parserErrorLine = regexp.MustCompile(`^line (\d+): ((?:did not find expected |found duplicate %|found incompatible YAML document|found undefined tag handle).*)$`)

var connectorType = reflect.TypeFor[Connector]()

// connectorExtension returns the type of the settings of the connector kind
// named by n's type key, whose keys n may also hold; when the kind is
// unknown every key is allowed (the unknown type is reported instead).
func connectorExtension(kinds map[string]connectors.Kind, n *yaml.Node) []reflect.Type {
	kind, ok := kinds[scalarValue(n, "type")]
	if !ok {
		return []reflect.Type{anyType}
	}
	if kind.NewConfig == nil {
		return nil
	}
	return []reflect.Type{reflect.TypeOf(kind.NewConfig())}
}

var actionType = reflect.TypeFor[engine.ActionSpec]()

// actionExtension returns the settings types of every action kind, the
// kind named by n's type key last (so that its fields win): a key of
// another kind is reported by the engine as not a setting of this one, a
// key of none as unknown, whatever the type.
func actionExtension(kinds map[string]engine.ActionKind, n *yaml.Node) []reflect.Type {
	var out []reflect.Type
	for _, name := range slices.Sorted(maps.Keys(kinds)) {
		if k := kinds[name]; k.NewSettings != nil {
			out = append(out, reflect.TypeOf(k.NewSettings()))
		}
	}
	if own, ok := kinds[scalarValue(n, "type")]; ok && own.NewSettings != nil {
		out = append(out, reflect.TypeOf(own.NewSettings()))
	}
	return out
}

// connectorNodes returns the items of the top-level connectors list.
func connectorNodes(root *yaml.Node) []*yaml.Node {
	n := mappingValue(root, "connectors")
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, item := range n.Content {
		items[i] = resolveAlias(item)
	}
	return items
}

package config

import (
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/actions"
	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/validate"
)

var connectorName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// check applies defaults and checks the decoded config as a whole. nodes
// are the connector items of the file, for decoding each kind's settings;
// decodeFailed says structural errors were already reported.
func (c *Config) check(kinds map[string]connectors.Kind, actionTypes map[string]engine.ActionKind, nodes []*yaml.Node, decodeFailed bool) validate.Errors {
	var errs validate.Errors
	c.checkHTTP(&errs)
	c.Store.SetDefaults()
	errs.Merge("store", c.Store.Validate())

	if len(c.API.Tokens) == 0 {
		errs.Add("api.tokens", "at least one token is required")
	}
	for i, t := range c.API.Tokens {
		path := validate.Index("api.tokens", i)
		if t == "" {
			errs.Add(path, "empty token (is its environment variable set?)")
		} else if utf8.RuneCountInString(t) < MinTokenLength {
			errs.Add(path, "must be at least %d characters", MinTokenLength)
		}
	}
	for i, k := range c.Secrets.TrackingKeys {
		path := validate.Index("secrets.tracking_keys", i)
		if k == "" {
			errs.Add(path, "empty key (is its environment variable set?)")
		} else if len(k) < MinTrackingKeyLength {
			errs.Add(path, "must be at least %d bytes", MinTrackingKeyLength)
		}
	}

	c.Log.Level = oneOf(&errs, "log.level", c.Log.Level, DefaultLogLevel, "debug", "info", "warn", "error")
	c.Log.Format = oneOf(&errs, "log.format", c.Log.Format, DefaultLogFormat, "auto", "text", "json")
	switch {
	case c.Engine.BatchSize == 0:
		c.Engine.BatchSize = DefaultBatchSize
	case c.Engine.BatchSize < 0 || c.Engine.BatchSize > DefaultBatchSize:
		errs.Add("engine.batch_size", "must be from 1 to %d", DefaultBatchSize)
	}
	if c.Engine.Workers < 0 {
		errs.Add("engine.workers", "must be positive")
	}
	if c.Engine.DefaultRegion == "" {
		c.Engine.DefaultRegion = DefaultRegion
	}
	c.Engine.DefaultRegion = strings.ToUpper(c.Engine.DefaultRegion)
	if phonenumbers.GetCountryCodeForRegion(c.Engine.DefaultRegion) == 0 {
		errs.Add("engine.default_region", "unknown region %q (want a two-letter code such as US)", c.Engine.DefaultRegion)
	}
	switch {
	case c.Limits.MaxBody == 0:
		c.Limits.MaxBody = DefaultMaxBody
	case c.Limits.MaxBody < 0:
		errs.Add("limits.max_body", "must be positive")
	}

	c.Actions.SetDefaults()
	errs.Merge("actions", c.Actions.Validate())

	c.SMTP.SetDefaults()
	errs.Merge("smtp", c.SMTP.Validate())

	errs = append(errs, engine.ValidatePipelines(c.Pipelines, actionTypes)...)
	c.checkConnectors(&errs, kinds, nodes, decodeFailed)
	c.checkSendEmail(&errs)
	return errs
}

// checkSendEmail checks what send_email actions name elsewhere in the
// file: an smtp account, a tracking connector when they track, an imap
// connector for save_to.
func (c *Config) checkSendEmail(errs *validate.Errors) {
	byType := map[string][]string{}
	kindOf := map[string]string{}
	for _, cn := range c.Connectors {
		byType[cn.Type] = append(byType[cn.Type], cn.Name)
		kindOf[cn.Name] = cn.Type
	}
	var accounts []string
	for _, a := range c.SMTP {
		if !slices.Contains(accounts, a.Name) {
			accounts = append(accounts, a.Name)
		}
	}
	check := func(path string, s *actions.SendEmail) {
		if _, ok := c.SMTP.Get(s.SMTP); s.SMTP != "" && !ok {
			errs.Add(path+".smtp", "unknown smtp account %q (the smtp section has: %s)", s.SMTP, listOrNone(accounts))
		}
		if s.Tracked() && len(byType["tracking"]) == 0 {
			errs.Add(path+".track", "needs a connector of type tracking (or set track: false)")
		}
		if s.SaveTo != "" && kindOf[s.SaveTo] != "imap" {
			errs.Add(path+".save_to", "must name an imap connector (the file has: %s)", listOrNone(byType["imap"]))
		}
	}
	for i, p := range c.Pipelines {
		for j, st := range p.Stages {
			for k, a := range st.Actions {
				if s, ok := a.Settings.(*actions.SendEmail); ok {
					check(validate.Index(validate.Index(validate.Index("pipelines", i)+".stages", j)+".actions", k), s)
				}
			}
		}
	}
	// A forms connector's autoreplies (forms[].autoreply).
	for i, cn := range c.Connectors {
		fc, ok := cn.Settings.(interface {
			AutoreplyPaths() map[string]*actions.SendEmail
		})
		if !ok {
			continue
		}
		paths := fc.AutoreplyPaths()
		for _, p := range slices.Sorted(maps.Keys(paths)) {
			check(validate.Join(validate.Index("connectors", i), p), paths[p])
		}
	}
}

// EventActions lists the event actions of the connectors (a forms
// connector's autoreplies), for engine.Options.EventActions.
func (c *Config) EventActions() []engine.EventAction {
	var out []engine.EventAction
	for _, cn := range c.Connectors {
		if ea, ok := cn.Settings.(interface {
			EventActions(name string) []engine.EventAction
		}); ok {
			out = append(out, ea.EventActions(cn.Name)...)
		}
	}
	return out
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// checkHTTP checks listen and public_url and fills their defaults.
func (c *Config) checkHTTP(errs *validate.Errors) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if n, perr := strconv.Atoi(port); err != nil {
		errs.Add("listen", "must be host:port, not %q", c.Listen)
	} else if perr != nil || n < 0 || n > 65535 {
		errs.Add("listen", "port must be a number from 0 to 65535, not %q", port)
	} else if c.PublicURL == "" {
		if host == "" {
			host = "localhost"
		}
		c.PublicURL = "http://" + net.JoinHostPort(host, port)
		c.publicURLDefault = true
	}
	if c.PublicURL == "" {
		return // no default from a bad listen
	}
	u, err := url.Parse(c.PublicURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		errs.Add("public_url", "must be an absolute http or https URL, not %q", c.PublicURL)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		errs.Add("public_url", "must have no user, query or fragment")
	default:
		c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	}
}

// SetListen replaces the listen address of a checked config (serve's
// -listen flag). A public_url the file did not set follows the new address;
// one it set is kept. A bad address is a validate.Errors at "listen".
func (c *Config) SetListen(addr string) error {
	old, oldURL, oldDefault := c.Listen, c.PublicURL, c.publicURLDefault
	c.Listen = addr
	if c.publicURLDefault {
		c.PublicURL, c.publicURLDefault = "", false
	}
	var errs validate.Errors
	c.checkHTTP(&errs)
	if len(errs) > 0 {
		c.Listen, c.PublicURL, c.publicURLDefault = old, oldURL, oldDefault
		return errs
	}
	return nil
}

// checkConnectors checks names, types and create targets, and decodes and
// validates each connector's kind settings.
func (c *Config) checkConnectors(errs *validate.Errors, kinds map[string]connectors.Kind, nodes []*yaml.Node, decodeFailed bool) {
	known := slices.Sorted(maps.Keys(kinds))
	names := map[string]int{}
	for i := range c.Connectors {
		cn := &c.Connectors[i]
		path := validate.Index("connectors", i)
		switch first, dup := names[cn.Name]; {
		case cn.Name == "":
			errs.Add(path+".name", "required")
		case !connectorName.MatchString(cn.Name):
			errs.Add(path+".name", "connector name %q must be 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit", cn.Name)
		case dup:
			errs.Add(path+".name", "duplicate connector name %q (first used by connectors[%d])", cn.Name, first)
		default:
			names[cn.Name] = i
		}

		kind, ok := kinds[cn.Type]
		switch {
		case cn.Type == "":
			errs.Add(path+".type", "required")
		case !ok:
			list := strings.Join(known, ", ")
			if list == "" {
				list = "none"
			}
			errs.Add(path+".type", "unknown connector type %q (known: %s)", cn.Type, list)
		case kind.NewConfig != nil:
			cn.Settings = kind.NewConfig()
			if i < len(nodes) {
				if err := nodes[i].Decode(cn.Settings); err != nil && !decodeFailed {
					errs.Add(path, "%s", yamlMessage(err))
				}
			}
			if su, ok := cn.Settings.(connectors.SecretsUser); ok {
				su.UseSecrets(connectors.SharedSecrets{TrackingKeys: c.Secrets.TrackingKeys})
			}
			errs.Merge(path, cn.Settings.Validate())
		}
		c.checkCreate(errs, path+".create", cn.Create)
	}
	c.checkRoutes(errs, kinds)
}

// checkRoutes reports a connector whose kind's fixed routes (Kind.Routes)
// conflict with those of an earlier connector — two tracking connectors
// would both claim /t/o/{token}. The gateway could not mount them; here it
// is a config error at the later connector's type, naming both.
func (c *Config) checkRoutes(errs *validate.Errors, kinds map[string]connectors.Kind) {
	for i := range c.Connectors {
		ki := kinds[c.Connectors[i].Type]
		if len(ki.Routes) == 0 {
			continue
		}
		for j := range i {
			kj := kinds[c.Connectors[j].Type]
			if len(kj.Routes) == 0 {
				continue
			}
			if p, q, ok := routesConflict(kj.Routes, ki.Routes); ok {
				errs.Add(validate.Index("connectors", i)+".type",
					"connector %q (type %s) serves %q, which conflicts with %q of %s (%q, type %s): configure one such connector per gateway",
					c.Connectors[i].Name, c.Connectors[i].Type, q, p,
					validate.Index("connectors", j), c.Connectors[j].Name, c.Connectors[j].Type)
				break
			}
		}
	}
}

// routesConflict reports the first pattern of b that http.ServeMux refuses
// after the patterns of a (it panics on a conflict), and the pattern of a
// it conflicts with.
func routesConflict(a, b []string) (pa, pb string, conflict bool) {
	nop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, q := range b {
		for _, p := range a {
			if mustConflict(nop, p, q) {
				return p, q, true
			}
		}
	}
	return "", "", false
}

// mustConflict reports whether registering q after p panics.
func mustConflict(h http.Handler, p, q string) (conflict bool) {
	mux := http.NewServeMux()
	mux.Handle(p, h)
	defer func() {
		if recover() != nil {
			conflict = true
		}
	}()
	mux.Handle(q, h)
	return false
}

// checkCreate checks that a connector's create names an existing pipeline
// and stage; an empty stage becomes the pipeline's first stage.
func (c *Config) checkCreate(errs *validate.Errors, path string, cr *connectors.Create) {
	if cr == nil {
		return
	}
	if cr.Pipeline == "" {
		errs.Add(path+".pipeline", "required")
		return
	}
	i := slices.IndexFunc(c.Pipelines, func(p engine.Pipeline) bool { return p.ID == cr.Pipeline })
	if i < 0 {
		errs.Add(path+".pipeline", "unknown pipeline %q", cr.Pipeline)
		return
	}
	stages := c.Pipelines[i].Stages
	if cr.Stage == "" {
		if len(stages) > 0 {
			cr.Stage = stages[0].ID
		}
		return
	}
	if !slices.ContainsFunc(stages, func(s engine.Stage) bool { return s.ID == cr.Stage }) {
		errs.Add(path+".stage", "unknown stage %q in pipeline %q", cr.Stage, cr.Pipeline)
	}
}

// oneOf returns v, or def when v is empty, and reports a value that is not
// one of allowed.
func oneOf(errs *validate.Errors, path, v, def string, allowed ...string) string {
	if v == "" {
		return def
	}
	if !slices.Contains(allowed, v) {
		last := len(allowed) - 1
		errs.Add(path, "must be %s or %s, not %q", strings.Join(allowed[:last], ", "), allowed[last], v)
	}
	return v
}

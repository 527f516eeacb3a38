package gateway

import (
	"net/url"

	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/connectors/tracking"
	"github.com/stagegate/stagegate/connectors/webhook"
)

// logStartup writes what an operator needs to find the gateway: one line
// with the version, the config file, the address, the public URL and the
// store, then one line per connector with the URLs it answers (public_url
// + path; {token} and {id} are placeholders).
func (g *Gateway) logStartup(addr string) {
	g.log.Info("stagegate listening",
		"version", g.version, "config", g.configPath, "addr", addr, "public_url", g.cfg.PublicURL,
		"store", g.cfg.Store.Driver, "store_at", storeLocation(g.cfg),
		"pipelines", len(g.cfg.Pipelines), "connectors", len(g.cfg.Connectors))
	for _, c := range g.cfg.Connectors {
		paths := connectorPaths(c)
		urls := make([]string, len(paths))
		for i, p := range paths {
			urls[i] = g.cfg.PublicURL + p
		}
		g.log.Info("connector", "name", c.Name, "type", c.Type, "urls", urls)
	}
}

// storeLocation is the bolt file, or the Redis URL without its password,
// and the key prefix.
func storeLocation(cfg *config.Config) string {
	if cfg.Store.Driver != "redis" {
		return cfg.Store.Path
	}
	loc := cfg.Store.URL
	if u, err := url.Parse(cfg.Store.URL); err == nil {
		loc = u.Redacted()
	}
	return loc + " prefix " + cfg.Store.Prefix
}

// connectorPaths lists the paths a connector answers, the pages a person
// opens first: every form of a forms connector, the live chat's demo page
// and console, the tracking routes, a connector's own API routes.
func connectorPaths(c config.Connector) []string {
	in := "/in/" + c.Name
	switch c.Type {
	case "forms":
		fc, ok := c.Settings.(*webhook.FormsConfig)
		if !ok {
			return []string{in + "/{form_id}"}
		}
		paths := make([]string, 0, len(fc.Forms))
		for _, f := range fc.Forms {
			paths = append(paths, in+"/"+url.PathEscape(f.ID))
		}
		return paths
	case "livechat":
		return []string{in + "/demo", in + "/agent", in + "/widget.js", in + "/ws", in + "/agent/ws"}
	case "tracking":
		paths := []string{"/t/o/{token}", "/t/c/{token}", "/api/v1/messages"}
		if tc, ok := c.Settings.(*tracking.Config); ok && tc.Site.Enabled {
			paths = append(paths, "/t/v.js")
		}
		return paths
	case "telephony":
		return []string{in, "/api/v1/calls/{id}"}
	case "imap":
		return []string{"/api/v1/imap/" + c.Name + "/status", "/api/v1/imap/" + c.Name + "/quarantine"}
	default: // webhook, and any kind mounted under /in/{name}
		return []string{in}
	}
}

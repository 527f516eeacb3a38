package livechat

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"time"
)

// The widget, the demo page and the agent console are plain files,
// embedded in the binary: no build step, nothing to deploy beside it.
//
//go:embed assets
var assets embed.FS

// asset is one embedded file with its validator.
type asset struct {
	data  []byte
	ctype string
	etag  string
	cache string
}

func loadAssets() (map[string]asset, error) {
	files := map[string]asset{
		"widget.js":    {ctype: "text/javascript; charset=utf-8", cache: "public, max-age=300"},
		"demo.html":    {ctype: "text/html; charset=utf-8", cache: "no-cache"},
		"console.html": {ctype: "text/html; charset=utf-8", cache: "no-cache"},
	}
	for name, a := range files {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		a.data, a.etag = b, `"`+hex.EncodeToString(sum[:8])+`"`
		files[name] = a
	}
	return files, nil
}

func (c *Connector) serveAsset(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := c.files[name]
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("Cache-Control", a.cache)
		h.Set("ETag", a.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if name == "console.html" {
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.data))
	}
}

package livechat

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The widget, the demo page and the agent console are plain files,
// embedded in the binary: no build step, nothing to deploy beside it.
//
//go:embed assets
var assets embed.FS

// asset is one embedded file with its validator, and its gzip-compressed
// copy (made once, at start-up) with a validator of its own.
type asset struct {
	data   []byte
	gz     []byte
	ctype  string
	etag   string
	gzEtag string
	cache  string
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
			return nil, fmt.Errorf("read asset %s: %w", name, err)
		}
		var gz bytes.Buffer
		zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		if err != nil {
			return nil, fmt.Errorf("compress asset %s: %w", name, err)
		}
		if _, err := zw.Write(b); err != nil {
			return nil, fmt.Errorf("compress asset %s: %w", name, err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("compress asset %s: %w", name, err)
		}
		sum := sha256.Sum256(b)
		tag := hex.EncodeToString(sum[:8])
		a.data, a.etag = b, `"`+tag+`"`
		a.gz, a.gzEtag = gz.Bytes(), `"`+tag+`-gz"`
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
		h.Set("Vary", "Accept-Encoding")
		h.Set("X-Content-Type-Options", "nosniff")
		if name == "console.html" {
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
		}
		body, etag := a.data, a.etag
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			body, etag = a.gz, a.gzEtag
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("ETag", etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	}
}

// acceptsGzip reports whether Accept-Encoding allows gzip: named (or
// "*") with a q-value above 0 (RFC 9110 §12.5.3).
func acceptsGzip(values []string) bool {
	star := false
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "x-gzip" && coding != "*" {
				continue
			}
			ok := true
			for p := range strings.SplitSeq(params, ";") {
				k, val, found := strings.Cut(strings.TrimSpace(p), "=")
				if found && strings.EqualFold(strings.TrimSpace(k), "q") {
					q, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					ok = err == nil && q > 0
				}
			}
			if coding == "*" {
				star = star || ok
				continue
			}
			return ok
		}
	}
	return star
}

package livechat

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"testing"
)

// widget.js (and the pages) are served gzip-compressed to clients that
// accept it, identical once decompressed, with Vary: Accept-Encoding and
// a validator of their own; other clients get the plain bytes.
func TestAssetsGzip(t *testing.T) {
	h := newHarness(t, nil)
	get := func(path, accept, inm string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", h.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept) // set by hand: the client does not decompress
		}
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		tr := &http.Transport{DisableCompression: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	for _, path := range []string{"/widget.js", "/demo", "/agent"} {
		plainResp, plain := get(path, "", "")
		if plainResp.Header.Get("Content-Encoding") != "" || plainResp.Header.Get("Vary") != "Accept-Encoding" {
			t.Fatalf("%s plain: Content-Encoding %q, Vary %q", path, plainResp.Header.Get("Content-Encoding"), plainResp.Header.Get("Vary"))
		}
		for _, accept := range []string{"gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.8"} {
			resp, body := get(path, accept, "")
			if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Fatalf("%s %q: Content-Encoding %q, Vary %q", path, accept, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
			}
			if len(body) >= len(plain) {
				t.Fatalf("%s: gzip %d bytes, plain %d", path, len(body), len(plain))
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			un, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(un, plain) {
				t.Fatalf("%s: decompressed differs (%v)", path, err)
			}
			if resp.Header.Get("ETag") == plainResp.Header.Get("ETag") {
				t.Fatalf("%s: one ETag for both encodings", path)
			}
			if r, _ := get(path, accept, resp.Header.Get("ETag")); r.StatusCode != http.StatusNotModified {
				t.Fatalf("%s gzip revalidation: %d", path, r.StatusCode)
			}
		}
		for _, accept := range []string{"identity", "gzip;q=0", "br"} {
			if resp, _ := get(path, accept, ""); resp.Header.Get("Content-Encoding") != "" {
				t.Fatalf("%s %q: Content-Encoding %q", path, accept, resp.Header.Get("Content-Encoding"))
			}
		}
	}
}

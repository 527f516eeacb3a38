package livechat

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The connector contract: a route of the connector asked with another
// method is 405 with Allow; an unknown path is 404.
func TestWrongMethodIs405(t *testing.T) {
	c := newHarness(t, nil).c
	for _, path := range []string{"/ws", "/agent/ws", "/widget.js", "/demo", "/agent"} {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader("{}")))
		if w.Code != http.StatusMethodNotAllowed || !strings.Contains(w.Header().Get("Allow"), "GET") {
			t.Errorf("POST %s: %d, Allow %q; want 405 with GET allowed", path, w.Code, w.Header().Get("Allow"))
		}
	}
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/nowhere", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("POST /nowhere: %d, want 404", w.Code)
	}
}

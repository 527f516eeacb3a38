package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer for a logger written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the JSON log records written so far.
func (l *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, rec)
	}
	return out
}

// startLogged starts a gateway on src with a debug JSON logger writing to
// the returned buffer, and options edited by edit.
func startLogged(t *testing.T, src string, edit func(*Options)) (*testGW, *lockedBuffer) {
	t.Helper()
	buf := &lockedBuffer{}
	o := Options{Instance: "test", ShutdownTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if edit != nil {
		edit(&o)
	}
	return startGatewayOptions(t, src, o), buf
}

// waitRecord waits for a log record with message msg for which ok holds.
func waitRecord(t *testing.T, buf *lockedBuffer, msg string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	return waitRecordFor(t, buf, 5*time.Second, msg, ok)
}

// waitRecordFor is waitRecord waiting up to d.
func waitRecordFor(t *testing.T, buf *lockedBuffer, d time.Duration, msg string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, rec := range buf.records(t) {
			if rec["msg"] == msg && (ok == nil || ok(rec)) {
				return rec
			}
		}
		if time.Now().After(deadline) {
			buf.mu.Lock()
			defer buf.mu.Unlock()
			t.Fatalf("no %q record in:\n%s", msg, buf.b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, s := range l {
		str, _ := s.(string)
		out = append(out, str)
	}
	return out
}

// The start-up log says which build runs from which config, where it
// listens, its public URL and store, and each connector with its URLs.
func TestStartupLog(t *testing.T) {
	src := strings.Replace(testConfig, "STORE", boltStore(t), 1) + `
  - name: chat
    type: livechat
    secret: chat-secret-0123456789
    channels: [{id: sales}]
  - name: track
    type: tracking
    keys: [tracking-key-0123456789]
public_url: https://gw.example.com
`
	tg, buf := startLogged(t, src, func(o *Options) { o.Version = "v1.2.3"; o.ConfigPath = "configs/test.yaml" })
	rec := waitRecord(t, buf, "stagegate listening", nil)
	want := map[string]any{"version": "v1.2.3", "config": "configs/test.yaml", "addr": strings.TrimPrefix(tg.base, "http://"),
		"public_url": "https://gw.example.com", "store": "bolt", "connectors": float64(4)}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("listening line: %s = %v, want %v (%v)", k, rec[k], v, rec)
		}
	}
	// The connector lines follow the listening line: wait for the last one.
	waitRecord(t, buf, "connector", func(r map[string]any) bool { return r["name"] == "track" })
	conns := map[string][]string{}
	for _, r := range buf.records(t) {
		if r["msg"] == "connector" {
			conns[r["name"].(string)] = strs(r["urls"])
		}
	}
	wantURLs := map[string][]string{
		"forms": {"https://gw.example.com/in/forms/pricing", "https://gw.example.com/in/forms/call"},
		"hooks": {"https://gw.example.com/in/hooks"},
		"chat": {"https://gw.example.com/in/chat/demo", "https://gw.example.com/in/chat/agent",
			"https://gw.example.com/in/chat/widget.js", "https://gw.example.com/in/chat/ws", "https://gw.example.com/in/chat/agent/ws"},
		"track": {"https://gw.example.com/t/o/{token}", "https://gw.example.com/t/c/{token}", "https://gw.example.com/api/v1/messages"},
	}
	for name, urls := range wantURLs {
		if !slices.Equal(conns[name], urls) {
			t.Errorf("connector %s: urls %q, want %q", name, conns[name], urls)
		}
	}
}

// A refused API request is logged at debug (why, never the token) and
// counted by route in stagegate_http_unauthorized_total.
func TestUnauthorizedLoggedAndCounted(t *testing.T) {
	tg, buf := startLogged(t, strings.Replace(testConfig, "STORE", boltStore(t), 1), nil)
	if code := tg.callToken("", "GET", "/api/v1/items/i_1", nil, nil); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code := tg.callToken("wrong-token-secret-42", "GET", "/api/v1/items/i_2", nil, nil); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if code := tg.callToken("wrong-token-secret-42", "GET", "/api/v1/nowhere", nil, nil); code != 401 {
		t.Fatalf("wrong token, no route: %d", code)
	}
	for _, reason := range []string{"no Authorization header", "unknown token"} {
		rec := waitRecord(t, buf, "api: unauthorized", func(r map[string]any) bool { return r["reason"] == reason })
		if rec["level"] != "DEBUG" || rec["route"] != "GET /api/v1/items/{id}" || rec["method"] != "GET" {
			t.Errorf("record %v", rec)
		}
	}
	if strings.Contains(buf.b.String(), "wrong-token-secret-42") {
		t.Error("the refused token is in the log")
	}
	resp, err := http.Get(tg.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`stagegate_http_unauthorized_total{route="GET /api/v1/items/{id}"} 2`,
		`stagegate_http_unauthorized_total{route="other"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/config"
)

const testToken = "test-token-0123456789"
const testWebhookSecret = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0xMjM0NTY3OA=="

// testConfig is a config like configs/stagegate.yaml; STORE is replaced by
// the store section.
const testConfig = `
listen: 127.0.0.1:0
store: STORE
api:
  tokens: ["${TOKEN}"]
limits:
  max_body: 4096
pipelines:
  - id: sales
    stages:
      - id: new
      - id: contacted
        triggers:
          - type: form.callback
          - type: webhook.received
            code: ping
      - id: engaged
        triggers:
          - {type: form.submitted, form: pricing}
          - {type: crm.engaged}
        actions:
          - {type: log, message: engaged}
      - id: won
        final: success
        triggers:
          - {type: crm.invoice_paid, name: paid}
connectors:
  - name: forms
    type: forms
    create: {pipeline: sales}
    forms:
      - id: pricing
      - {id: call, kind: callback}
  - name: hooks
    type: webhook
    secret: "${SECRET}"
`

// testGW is a gateway running on a free loopback port.
type testGW struct {
	t    *testing.T
	g    *Gateway
	base string
	stop func()
}

func boltStore(t *testing.T) string {
	return "{driver: bolt, path: " + filepath.Join(t.TempDir(), "sg.db") + "}"
}

func startGateway(t *testing.T, storeYAML string) *testGW {
	t.Helper()
	return startGatewayConfig(t, strings.Replace(testConfig, "STORE", storeYAML, 1))
}

// startGatewayConfig starts a gateway on the config file text src, with the
// test token and webhook secret in its environment, and stops it at cleanup.
func startGatewayConfig(t *testing.T, src string) *testGW {
	t.Helper()
	return startGatewayOptions(t, src, Options{Instance: "test", ShutdownTimeout: 5 * time.Second})
}

// startGatewayOptions is startGatewayConfig with the gateway's options.
func startGatewayOptions(t *testing.T, src string, o Options) *testGW {
	t.Helper()
	env := map[string]string{"TOKEN": testToken, "SECRET": testWebhookSecret}
	cfg, err := config.Parse([]byte(src), Kinds, ActionTypes(),
		func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	addr, err := g.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	tg := &testGW{t: t, g: g, base: "http://" + addr.String()}
	stopped := false
	tg.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway run: %v", err)
		}
	}
	t.Cleanup(tg.stop)
	return tg
}

// call makes a request with the test token and decodes a JSON answer into out
// (when out is not nil); it returns the status.
func (tg *testGW) call(method, path string, body any, out any) int {
	tg.t.Helper()
	return tg.callToken(testToken, method, path, body, out)
}

func (tg *testGW) callToken(token, method, path string, body any, out any) int {
	tg.t.Helper()
	st, _ := tg.do(token, method, path, nil, body, out)
	return st
}

// callHeaders is call with more request headers; it returns the answer's
// headers too.
func (tg *testGW) callHeaders(method, path string, headers map[string]string, body any, out any) (int, http.Header) {
	tg.t.Helper()
	return tg.do(testToken, method, path, headers, body, out)
}

func (tg *testGW) do(token, method, path string, headers map[string]string, body any, out any) (int, http.Header) {
	tg.t.Helper()
	var reqBody []byte
	switch b := body.(type) {
	case nil:
	case string:
		reqBody = []byte(b)
	default:
		reqBody, _ = json.Marshal(b)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(reqBody)
	}
	req, _ := http.NewRequest(method, tg.base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tg.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	checkContract(tg.t, method, path, req.Header, reqBody, resp.StatusCode, resp.Header, data)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			tg.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode, resp.Header
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

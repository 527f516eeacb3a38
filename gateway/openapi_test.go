package gateway

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite openapi/openapi.json from openapi/openapi.yaml")

// yamlToJSON converts the document's YAML source to indented JSON.
func yamlToJSON(t *testing.T, src []byte) []byte {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// The JSON document kept in the repo (and served) is its YAML source,
// converted; -update rewrites it.
func TestOpenAPIFile(t *testing.T) {
	src, err := os.ReadFile("openapi/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := yamlToJSON(t, src)
	if *update {
		if err := os.WriteFile("openapi/openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(openapiJSON, want) {
		t.Fatal("openapi/openapi.json is not openapi/openapi.yaml: run go test ./gateway -run TestOpenAPIFile -update")
	}
	doc := contract(t).doc
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("document is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
}

// The document is served without a token, and every route the gateway
// registers is in it.
func TestOpenAPIServed(t *testing.T) {
	tg := startGateway(t, boltStore(t))
	resp, err := http.Get(tg.base + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(body, openapiJSON) {
		t.Fatalf("GET /api/v1/openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, route := range []string{
		"POST /api/v1/items", "GET /api/v1/items", "GET /api/v1/items/x", "PATCH /api/v1/items/x", "POST /api/v1/items/x/move",
		"GET /api/v1/items/x/timeline", "GET /api/v1/contacts", "GET /api/v1/contacts/x", "POST /api/v1/events", "GET /api/v1/events",
		"GET /api/v1/events/x", "POST /api/v1/events/x/retry", "POST /api/v1/explain", "GET /api/v1/unmatched", "GET /api/v1/pipelines",
		"GET /api/v1/actions", "GET /api/v1/actions/x", "POST /api/v1/actions/x/retry", "GET /api/v1/openapi.json",
		"POST /api/v1/messages", "GET /api/v1/messages/x", "POST /api/v1/messages/x/sent", "POST /api/v1/messages/x/replied",
		"POST /api/v1/visitors/x/link", "GET /api/v1/tracking/stats", "GET /api/v1/calls/x", "GET /api/v1/imap/x/status",
		"GET /api/v1/imap/x/quarantine", "POST /in/forms", "POST /in/forms/pricing", "GET /in/chat/ws", "GET /t/o/x", "GET /t/c/x",
		"POST /t/v", "GET /healthz", "GET /readyz", "GET /metrics",
		"GET /api/v1/board", "GET /api/v1/board/stream", "GET /api/v1/board/items/x/events",
	} {
		method, path, _ := strings.Cut(route, " ")
		req, _ := http.NewRequest(method, path, nil)
		if _, _, err := contract(t).router.FindRoute(req); err != nil {
			t.Errorf("%s is not in the OpenAPI document: %v", route, err)
		}
	}
}

// apiContract is the parsed document and its router.
type apiContract struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	contractOnce sync.Once
	contractVal  *apiContract
	contractErr  error
)

// contract loads the document once, validated.
func contract(t *testing.T) *apiContract {
	t.Helper()
	contractOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(openapiJSON)
		if err != nil {
			contractErr = err
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			contractErr = err
			return
		}
		doc.Servers = nil // match paths on any test address
		r, err := legacy.NewRouter(doc)
		if err != nil {
			contractErr = err
			return
		}
		contractVal = &apiContract{doc: doc, router: r}
	})
	if contractErr != nil {
		t.Fatalf("OpenAPI document: %v", contractErr)
	}
	return contractVal
}

// checkContract validates one call of a test against the document: the
// answer always (an error too must have the error shape), the request when
// the gateway took it (status below 400: a request it refuses may be
// malformed on purpose). A path the document lacks fails the test unless
// the gateway answered it 404 or 405 (no such route) or 401 (the API
// refuses a request without a valid token before it looks at the path).
func checkContract(t *testing.T, method, path string, reqHeader http.Header, reqBody []byte, status int, respHeader http.Header, respBody []byte) {
	t.Helper()
	c := contract(t)
	u, _ := url.Parse(path)
	req, _ := http.NewRequest(method, u.String(), bytes.NewReader(reqBody))
	req.Header = reqHeader.Clone()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed || status == http.StatusUnauthorized {
			var e struct {
				Error struct{ Code, Message string }
			}
			if json.Unmarshal(respBody, &e) != nil || e.Error.Code == "" {
				t.Errorf("%s %s: %d answer is not a JSON error: %s", method, path, status, respBody)
			}
			return
		}
		t.Errorf("%s %s is not in the OpenAPI document: %v", method, path, err)
		return
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.EnableJSONSchema2020()},
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if status < 400 {
		if err := openapi3filter.ValidateRequest(t.Context(), in); err != nil {
			t.Errorf("%s %s: request does not follow the OpenAPI document: %v\n%s", method, path, err, reqBody)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: respHeader, Options: opts}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
		t.Errorf("%s %s: %d answer does not follow the OpenAPI document: %v\n%s", method, path, status, err, respBody)
	}
}

package gateway

import (
	_ "embed" // the OpenAPI document
	"net/http"
)

// openapiJSON is the OpenAPI 3.1 document of the REST API
// (openapi/openapi.yaml is its source; the tests keep the two equal and
// validate every API call they make against it).
//
//go:embed openapi/openapi.json
var openapiJSON []byte

// serveOpenAPI answers GET /api/v1/openapi.json, without auth: the
// contract is public, the data behind it is not.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openapiJSON)
}

// The API's OpenAPI 3.0 description, served at GET /v1/openapi.yaml.

package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDoc describes the key-operation and KEK read routes and the error
// body with its codes.
//
//go:embed openapi.yaml
var openAPIDoc []byte

// OpenAPI returns the API's OpenAPI 3.0 document (YAML).
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

// GET /v1/openapi.yaml (any role).
func (a *api) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDoc)
	return nil
}

// The API's OpenAPI 3.1 description, served at GET /v1/openapi.yaml.

package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDoc describes every route New registers: parameters, bodies and
// their limits, answers, error codes, roles (x-custos-roles) and the
// signed-request header. openapi_test.go holds it to the router, the
// body limits, the roles the routes enforce and the codes of package
// errcode; `make lint-openapi` lints it with Redocly's recommended rules.
//
//go:embed openapi.yaml
var openAPIDoc []byte

// OpenAPI returns the API's OpenAPI 3.1 document (YAML).
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

// GET /v1/openapi.yaml (any role).
func (a *api) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDoc)
	return nil
}

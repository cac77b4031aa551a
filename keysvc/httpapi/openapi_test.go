package httpapi_test

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/token"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"go.yaml.in/yaml/v3"

	"github.com/custos-eu/custos/internal/srctest"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/reqsig"
)

// The parts of the OpenAPI document the tests read.
type (
	oaDoc struct {
		OpenAPI    string                          `yaml:"openapi"`
		Security   []map[string][]string           `yaml:"security"`
		Paths      map[string]map[string]yaml.Node `yaml:"paths"`
		Components struct {
			SecuritySchemes map[string]struct {
				Type string `yaml:"type"`
			} `yaml:"securitySchemes"`
			Parameters map[string]oaParam    `yaml:"parameters"`
			Responses  map[string]oaResponse `yaml:"responses"`
			Schemas    map[string]oaSchema   `yaml:"schemas"`
		} `yaml:"components"`
	}
	oaOp struct {
		OperationID string                `yaml:"operationId"`
		Roles       []string              `yaml:"x-custos-roles"`
		Parameters  []oaParam             `yaml:"parameters"`
		RequestBody *oaBody               `yaml:"requestBody"`
		Responses   map[string]oaResponse `yaml:"responses"`
	}
	oaParam struct {
		Ref      string `yaml:"$ref"`
		Name     string `yaml:"name"`
		In       string `yaml:"in"`
		Required bool   `yaml:"required"`
	}
	oaBody struct {
		Required bool  `yaml:"required"`
		MaxBytes int64 `yaml:"x-custos-max-body-bytes"`
	}
	oaResponse struct {
		Ref         string                    `yaml:"$ref"`
		Description string                    `yaml:"description"`
		Headers     map[string]map[string]any `yaml:"headers"`
	}
	oaSchema struct {
		Enum []string `yaml:"enum"`
	}
)

// httpMethods are the operation keys of a path item.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// loadOpenAPI parses the embedded document strictly (yaml.v3 refuses
// duplicate keys) and returns it with its operations by "METHOD path".
func loadOpenAPI(t *testing.T) (oaDoc, map[string]oaOp) {
	t.Helper()
	var doc oaDoc
	if err := yaml.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	ops := map[string]oaOp{}
	for path, item := range doc.Paths {
		for key, n := range item {
			if !slices.Contains(httpMethods, key) {
				continue
			}
			var op oaOp
			if err := n.Decode(&op); err != nil {
				t.Fatalf("%s %s: %v", key, path, err)
			}
			ops[strings.ToUpper(key)+" "+path] = op
		}
	}
	return doc, ops
}

// serverRoutes are the (method, pattern) pairs the router New builds
// serves, as "METHOD pattern".
func serverRoutes(t *testing.T) []string {
	t.Helper()
	h := newHandler(httpapitest.NewFake("test", "n1", "DE", ""))
	var routes []string
	err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(routes)
	return routes
}

// TestOpenAPIRoutesMatchServer: the document describes exactly the routes
// the server registers, no fewer (a route added to the router fails this
// until it is described) and no more (a route described but not served).
func TestOpenAPIRoutesMatchServer(t *testing.T) {
	_, ops := loadOpenAPI(t)
	served := serverRoutes(t)
	if len(served) < 28 {
		t.Fatalf("the router lists %d routes: is chi.Walk still seeing them all?", len(served))
	}
	for _, r := range served {
		if _, ok := ops[r]; !ok {
			t.Errorf("the server serves %s; openapi.yaml does not describe it", r)
		}
	}
	for r := range ops {
		if !slices.Contains(served, r) {
			t.Errorf("openapi.yaml describes %s; the server does not serve it", r)
		}
	}
}

// goCodes returns the string constants of the non-test files of dir whose
// name passes keep, by value.
func goCodes(t *testing.T, dir string, keep func(name string) bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, v := range srctest.Consts(t, dir) {
		if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING && keep(name) {
			s, _ := strconv.Unquote(lit.Value)
			out[s] = filepath.Base(dir) + "." + name
		}
	}
	return out
}

// TestOpenAPIErrorCodes: the ErrorCode enum is every code a node writes
// in a "code" field, read from the source that defines them: every
// constant of package errcode, and the Code… constants of reqsig (signed
// requests) and ceremony (ceremony refusals); no more, no fewer. And every
// code a response's description names (in backquotes) is one of them, so
// a description cannot promise a code that does not exist.
func TestOpenAPIErrorCodes(t *testing.T) {
	doc, ops := loadOpenAPI(t)
	want := goCodes(t, "../errcode", func(string) bool { return true })
	isCode := func(name string) bool { return strings.HasPrefix(name, "Code") }
	for _, dir := range []string{"../reqsig", "../ceremony"} {
		for v, name := range goCodes(t, dir, isCode) {
			if other, dup := want[v]; dup {
				t.Errorf("%s and %s are both %q", name, other, v)
			}
			want[v] = name
		}
	}
	if len(want) < 90 {
		t.Fatalf("found %d codes in the source: are the packages still where this test looks?", len(want))
	}
	enum := doc.Components.Schemas["ErrorCode"].Enum
	inEnum := map[string]bool{}
	for _, c := range enum {
		if inEnum[c] {
			t.Errorf("ErrorCode lists %q twice", c)
		}
		inEnum[c] = true
	}
	for v, name := range want {
		if !inEnum[v] {
			t.Errorf("%s (%q) is not in openapi.yaml's ErrorCode enum", name, v)
		}
	}
	for _, c := range enum {
		if _, ok := want[c]; !ok {
			t.Errorf("openapi.yaml's ErrorCode enum lists %q, which no package defines", c)
		}
	}

	// Codes named in response descriptions.
	codeRE := regexp.MustCompile("`([a-z][a-z_]*)`")
	check := func(where, desc string) {
		for _, m := range codeRE.FindAllStringSubmatch(desc, -1) {
			if !inEnum[m[1]] {
				t.Errorf("%s: the description names `%s`, which is not an error code", where, m[1])
			}
		}
	}
	for name, r := range doc.Components.Responses {
		check("components.responses."+name, r.Description)
	}
	for key, op := range ops {
		for status, r := range op.Responses {
			check(key+" "+status, r.Description)
		}
	}
}

// TestOpenAPIOperations checks what every operation must say: an
// operationId, 4xx answers with the error body (429 with Retry-After, 307
// with the leader's headers), the roles that may call it, and the
// signature header on the key operations that need one.
func TestOpenAPIOperations(t *testing.T) {
	doc, ops := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	if s := doc.Components.SecuritySchemes["mutualTLS"]; s.Type != "mutualTLS" {
		t.Errorf("security scheme mutualTLS has type %q", s.Type)
	}
	if len(doc.Security) != 1 || doc.Security[0]["mutualTLS"] == nil {
		t.Errorf("global security %v, want [mutualTLS]", doc.Security)
	}
	if rl := doc.Components.Responses["RateLimited"]; rl.Headers["Retry-After"] == nil {
		t.Error("the 429 response has no Retry-After header")
	}
	if nl := doc.Components.Responses["NotLeader"]; nl.Headers["Location"] == nil || nl.Headers["Custos-Leader"] == nil || nl.Headers["Custos-Leader-Id"] == nil {
		t.Error("the 307 response lacks Location, Custos-Leader or Custos-Leader-Id")
	}
	roles := map[string]bool{}
	for _, r := range identity.Roles() {
		roles[string(r)] = true
	}
	ids := map[string]string{}
	for key, op := range ops {
		if op.OperationID == "" {
			t.Errorf("%s: no operationId", key)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s and %s share operationId %s", key, other, op.OperationID)
		}
		ids[op.OperationID] = key
		if len(op.Roles) == 0 {
			t.Errorf("%s: no x-custos-roles", key)
		}
		for _, r := range op.Roles {
			if !roles[r] {
				t.Errorf("%s: x-custos-roles names %q, not a role", key, r)
			}
		}
		for _, status := range []string{"200", "400", "401", "403", "429", "500", "503"} {
			if _, ok := op.Responses[status]; !ok {
				t.Errorf("%s: no %s response", key, status)
			}
		}
		for status, r := range op.Responses {
			if status != "200" && !strings.HasPrefix(r.Ref, "#/components/responses/") {
				t.Errorf("%s: response %s is not one of the error responses", key, status)
			}
		}
	}
	// The key operations and the signature header each takes.
	for key, param := range map[string]string{
		"POST /v1/keks/{id}/wrap": "RequestSignature", "POST /v1/keks/{id}/datakey": "RequestSignature",
		"POST /v1/keks/{id}/wrap/batch": "RequestSignature", "POST /v1/keks/{id}/unwrap": "RequestSignatureRequired",
		"POST /v1/keks/{id}/rewrap": "RequestSignatureRequired", "POST /v1/keks/{id}/unwrap/batch": "RequestSignatureRequired",
	} {
		var got []string
		for _, p := range ops[key].Parameters {
			if strings.HasPrefix(p.Ref, "#/components/parameters/RequestSignature") {
				got = append(got, strings.TrimPrefix(p.Ref, "#/components/parameters/"))
			}
		}
		if !slices.Equal(got, []string{param}) {
			t.Errorf("%s: signature parameters %v, want %s", key, got, param)
		}
	}
	for name, required := range map[string]bool{"RequestSignature": false, "RequestSignatureRequired": true} {
		p := doc.Components.Parameters[name]
		if p.Name != reqsig.Header || p.In != "header" || p.Required != required {
			t.Errorf("parameter %s: %+v, want header %s required=%v", name, p, reqsig.Header, required)
		}
	}
}

// TestOpenAPIBodyLimits: every route that takes a body says its limit, the
// one the server enforces (httpapi.BodyLimits), and no other route says
// it takes one.
func TestOpenAPIBodyLimits(t *testing.T) {
	_, ops := loadOpenAPI(t)
	for key, op := range ops {
		limit, ok := httpapi.BodyLimits[key]
		switch {
		case op.RequestBody == nil && ok:
			t.Errorf("%s takes a body of up to %d bytes; openapi.yaml describes none", key, limit)
		case op.RequestBody != nil && !ok:
			t.Errorf("%s: openapi.yaml describes a body the server does not read", key)
		case ok && op.RequestBody.MaxBytes != limit:
			t.Errorf("%s: x-custos-max-body-bytes %d, the server's limit is %d", key, op.RequestBody.MaxBytes, limit)
		}
	}
	for key := range httpapi.BodyLimits {
		if _, ok := ops[key]; !ok {
			t.Errorf("%s has a body limit but no operation in openapi.yaml", key)
		}
	}
}

// TestOpenAPIRoles asks every route, served over mutual TLS, with a
// certificate of every role: the route refuses the role (403 forbidden,
// "may not use this route") exactly when the document's x-custos-roles
// leaves it out. A role the document grants but the server refuses, or the
// reverse, fails.
func TestOpenAPIRoles(t *testing.T) {
	_, ops := loadOpenAPI(t)
	pki := httpapitest.NewPKI(t, "test")
	fake := httpapitest.NewFake(pki.Cluster, "n1", "DE", "")
	srv := pki.Serve(t, "n1", "DE", httpapi.New(fake, httpapi.Options{Logger: slog.New(slog.DiscardHandler), RateLimits: httpapi.Unlimited()}))
	fake.SetAPIAddr(srv.URL)
	e := &env{pki: pki}
	clients := map[identity.Role]*http.Client{}
	for _, r := range identity.Roles() {
		name := "c-" + string(r)
		if r == identity.RoleNode {
			name = "n1"
		}
		clients[r] = e.as(t, r, name, "DE")
	}
	params := strings.NewReplacer("{id}", "k1", "{v}", "1", "{index}", "0")
	keys := make([]string, 0, len(ops))
	for k := range ops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		method, path, _ := strings.Cut(key, " ")
		for _, role := range identity.Roles() {
			resp, body := call(t, clients[role], method, srv.URL+params.Replace(path), nil)
			var eb struct {
				Error struct{ Code, Message string }
			}
			_ = json.Unmarshal(body, &eb)
			refused := resp.StatusCode == http.StatusForbidden && eb.Error.Code == "forbidden" &&
				strings.Contains(eb.Error.Message, "may not use this route")
			if granted := slices.Contains(ops[key].Roles, string(role)); granted == refused {
				t.Errorf("%s as %s: x-custos-roles grants it %v, the server answered %d %s", key, role, granted, resp.StatusCode, bytes.TrimSpace(body))
			}
		}
	}
}

// The document is served to every role, as YAML, byte for byte the
// embedded one.
func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t)
	for _, hc := range []*http.Client{e.agent(t), e.as(t, identity.RoleNode, "n2", "FR")} {
		resp, body := call(t, hc, http.MethodGet, e.srv.URL+"/v1/openapi.yaml", nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" {
			t.Fatalf("openapi: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !bytes.Equal(body, httpapi.OpenAPI()) {
			t.Fatal("served document differs from the embedded one")
		}
	}
	if bytes.Contains(httpapi.OpenAPI(), []byte("\t")) {
		t.Error("openapi.yaml holds a tab")
	}
}

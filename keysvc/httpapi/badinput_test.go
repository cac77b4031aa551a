package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/errcode"

	"github.com/go-chi/chi/v5"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
)

// badCase is one request with bad input and the refusal it must get.
type badCase struct {
	what   string
	path   string // "" for the route's path
	body   []byte // nil: none
	header [2]string
	status int
	code   string
}

// TestEveryRouteRefusesBadInput sends every route of the API, served by
// real nodes, the bad input it can be sent: for a route with a body,
// malformed JSON, invalid UTF-8, lone surrogate escapes, values of the
// wrong type, unknown fields, no body, data after the object and a body
// over its limit; bad path and query parameters where it has them. Each
// is refused with its 4xx status and stable code, never 500, never
// without a code. The routes are read from the router: a new one fails
// the test until it is listed here.
func TestEveryRouteRefusesBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 2-node cluster")
	}
	// Hundreds of refusals from one identity: the rate limits (tested on
	// their own) would answer most of them 429.
	s := agentcluster.Serve(t, agentcluster.ServeOptions{Forward: true, RateLimits: httpapi.Unlimited()})
	e := &env{pki: s.PKI}
	url := s.LeaderURL()
	offs := s.InitOfficers(t, func(role identity.Role, name string) *client.Client { return e.sdk(t, role, name, "DE", url) })
	access := ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE"}}
	offs.Execute(t, ceremony.KEKCreate{KEKID: "payroll", Policy: ceremony.Policy{Threshold: 2, ActivationTTL: time.Minute,
		Wrap: access, Unwrap: access, Context: []string{"dataset"}}})

	var (
		agent    = e.signed(t, identity.RoleAgent, "agent-1", "DE")
		operator = e.operator(t)
		officer  = e.as(t, identity.RoleOfficer, "alice", "DE")
		auditor  = e.auditor(t)
		node     = e.as(t, identity.RoleNode, "n9", "DE")
	)
	const (
		malformed = errcode.MalformedRequest
		bad       = errcode.BadRequest
	)
	// bodyCases are what every route with a body is sent; wrongType is a
	// body with one of its fields of the wrong type.
	bodyCases := func(route, wrongType string, emptyOK bool) []badCase {
		limit := httpapi.BodyLimits[route]
		cs := []badCase{
			{what: "malformed JSON", body: []byte(`{"a":`), status: 400, code: malformed},
			{what: "not JSON", body: []byte(`plaintext=AA`), status: 400, code: malformed},
			{what: "invalid UTF-8 in a string", body: []byte("{\"context\":{\"dataset\":\"hr\xff\"}}"), status: 400, code: malformed},
			{what: "invalid UTF-8 in a key", body: []byte("{\"\xc3\":1}"), status: 400, code: malformed},
			{what: "invalid UTF-8 after the object", body: []byte("{}\xff"), status: 400, code: malformed},
			{what: "a lone high surrogate", body: []byte(`{"context":{"dataset":"hr\ud800"}}`), status: 400, code: malformed},
			{what: "a lone low surrogate", body: []byte(`{"officer":"\udc00alice"}`), status: 400, code: malformed},
			{what: "surrogates in the wrong order", body: []byte(`{"id":"\ude00\ud83d"}`), status: 400, code: malformed},
			{what: "data after the object", body: []byte(`{} {}`), status: 400, code: malformed},
			{what: "a trailing comma", body: []byte(`{"a":1,}`), status: 400, code: malformed},
			{what: "a field of the wrong type", body: []byte(wrongType), status: 400, code: bad},
			{what: "an array", body: []byte(`[]`), status: 400, code: bad},
			{what: "null", body: []byte(`null`), status: 400, code: bad},
			{what: "an unknown field", body: []byte(`{"zzz":1}`), status: 400, code: bad},
			{what: "a body over the limit", body: append([]byte(`{}`), bytes.Repeat([]byte(" "), int(limit)-1)...), status: 413, code: errcode.TooLarge},
		}
		if !emptyOK {
			cs = append(cs, badCase{what: "no body", body: []byte{}, status: 400, code: malformed},
				badCase{what: "only whitespace", body: []byte(" \n"), status: 400, code: malformed})
		}
		return cs
	}
	wrapBody := []byte(`{"plaintext":"AAAA","context":{"dataset":"hr"}}`)
	unwrapBody := []byte(`{"wrapped":"AAAA","context":{"dataset":"hr"}}`)
	badKEKs := []string{"%FF", "BAD%20ID", strings.Repeat("k", 65), "x%00y", "%C0%AF"}
	kekPaths := func(suffix string) []string {
		var ps []string
		for _, id := range badKEKs {
			ps = append(ps, "/v1/keks/"+id+suffix)
		}
		return ps
	}
	atPaths := func(paths []string, body []byte, status int, code string) []badCase {
		var cs []badCase
		for _, p := range paths {
			cs = append(cs, badCase{what: "path " + p, path: p, body: body, status: status, code: code})
		}
		return cs
	}
	queries := func(path string, qs ...string) []badCase {
		var cs []badCase
		for _, q := range qs {
			cs = append(cs, badCase{what: "query " + q, path: path + "?" + q, status: 400, code: bad})
		}
		return cs
	}
	badVersions := []string{"x", "0", "-1", "+1", "1.0", "4294967296", "%FF"}
	versionPaths := func(suffix string) []string {
		var ps []string
		for _, v := range badVersions {
			ps = append(ps, "/v1/keks/payroll/versions/"+v+suffix)
		}
		return ps
	}
	join := "POST /v1/sys/join"
	routes := map[string]struct {
		hc    *http.Client
		path  string
		cases []badCase
	}{
		// Routes that take no input: nothing to send them wrong but the
		// header every route reads.
		"GET /v1/sys/health": {auditor, "/v1/sys/health", []badCase{
			{what: "a bad " + client.HeaderMinLogSize, header: [2]string{client.HeaderMinLogSize, "x"}, status: 400, code: bad}}},
		"GET /v1/sys/cluster":       {auditor, "/v1/sys/cluster", nil},
		"GET /v1/ledger/checkpoint": {auditor, "/v1/ledger/checkpoint", nil},
		"GET /v1/ledger/keys":       {auditor, "/v1/ledger/keys", nil},
		"GET /v1/ceremonies":        {auditor, "/v1/ceremonies", nil},
		"GET /v1/officers":          {auditor, "/v1/officers", nil},
		"GET /v1/keks":              {auditor, "/v1/keks", nil},
		"GET /v1/openapi.yaml":      {auditor, "/v1/openapi.yaml", nil},
		"GET /metrics":              {auditor, "/metrics", nil},

		"GET /v1/ledger/entries": {auditor, "/v1/ledger/entries", queries("/v1/ledger/entries",
			"start=x", "start=-1", "start=01", "start=9223372036854775808", "start=%FF", "start=1e3", "limit=0", "limit=x", "limit=-5")},
		"GET /v1/ledger/proof/inclusion": {auditor, "/v1/ledger/proof/inclusion", queries("/v1/ledger/proof/inclusion",
			"", "size=2", "index=0", "index=x&size=2", "index=2&size=2", "index=0&size=%FF", "index=0&size=0")},
		"GET /v1/ledger/proof/consistency": {auditor, "/v1/ledger/proof/consistency", queries("/v1/ledger/proof/consistency",
			"", "old=1", "new=1", "old=x&new=2", "old=3&new=2", "old=1&new=%F0%9F")},
		"GET /v1/attestations/drills": {auditor, "/v1/attestations/drills", queries("/v1/attestations/drills",
			"dataset=", "dataset=%FF", "dataset=hr%ED%A0%80", "dataset="+strings.Repeat("d", 1025))},
		"GET /v1/attestations/{index}": {agent, "", append(atPaths([]string{"/v1/attestations/x", "/v1/attestations/-1", "/v1/attestations/01",
			"/v1/attestations/99999999999999999999", "/v1/attestations/%FF"}, nil, 400, bad),
			atPaths([]string{"/v1/attestations/0", "/v1/attestations/1099511627776"}, nil, 404, errcode.NotFound)...)},
		"GET /v1/ceremonies/{id}": {auditor, "", atPaths([]string{"/v1/ceremonies/%FF", "/v1/ceremonies/x%00", "/v1/ceremonies/" + strings.Repeat("a", 300)},
			nil, 404, errcode.UnknownProposal)},
		"GET /v1/keks/{id}": {auditor, "", atPaths(kekPaths(""), nil, 404, errcode.UnknownKEK)},
		"GET /v1/keks/{id}/versions/{v}/public": {auditor, "", append(atPaths(versionPaths("/public"), nil, 400, bad),
			atPaths(kekPaths("/versions/1/public"), nil, 404, errcode.UnknownKEK)...)},
		"GET /v1/keks/{id}/versions/{v}/destruction-certificate": {auditor, "", append(atPaths(versionPaths("/destruction-certificate"), nil, 400, bad),
			atPaths(kekPaths("/versions/1/destruction-certificate"), nil, 404, errcode.UnknownKEK)...)},

		"POST /v1/sys/canary":   {operator, "/v1/sys/canary", bodyCases("POST /v1/sys/canary", `[1]`, true)},
		join:                    {node, "/v1/sys/join", bodyCases(join, `{"id":1}`, false)},
		"POST /v1/sys/init":     {operator, "/v1/sys/init", bodyCases("POST /v1/sys/init", `{"quorum":"2"}`, false)},
		"POST /v1/attestations": {agent, "/v1/attestations", append(bodyCases("POST /v1/attestations", `{"details":"x"}`, false), badCase{what: "a detail of the wrong type", body: []byte(`{"type":"backup.prune","details":{"archive":1}}`), status: 400, code: bad})},
		"POST /v1/ceremonies":   {officer, "/v1/ceremonies", bodyCases("POST /v1/ceremonies", `{"proposal":1}`, false)},
		"POST /v1/ceremonies/{id}/approvals": {officer, "/v1/ceremonies/0123456789abcdef0123456789abcdef/approvals", append(
			bodyCases("POST /v1/ceremonies/{id}/approvals", `{"officer":[]}`, false),
			atPaths([]string{"/v1/ceremonies/%FF/approvals", "/v1/ceremonies/0123456789ABCDEF0123456789ABCDEF/approvals", "/v1/ceremonies/x%00/approvals"},
				[]byte(`{"officer":"alice","signature":"x"}`), 404, errcode.UnknownProposal)...)},
		"POST /v1/keks/{id}/wrap": {agent, "/v1/keks/payroll/wrap", append(append(bodyCases("POST /v1/keks/{id}/wrap", `{"plaintext":1}`, false),
			badCase{what: "not base64", body: []byte(`{"plaintext":"!!","context":{"dataset":"hr"}}`), status: 400, code: bad}),
			atPaths(kekPaths("/wrap"), wrapBody, 404, errcode.UnknownKEK)...)},
		"POST /v1/keks/{id}/datakey": {agent, "/v1/keks/payroll/datakey", append(bodyCases("POST /v1/keks/{id}/datakey", `{"wrapped_only":"yes"}`, false),
			atPaths(kekPaths("/datakey"), []byte(`{"context":{"dataset":"hr"}}`), 404, errcode.UnknownKEK)...)},
		// Unwraps need a request signature, which cannot name a KEK id
		// that is none: they are refused for the missing signature.
		"POST /v1/keks/{id}/unwrap": {agent, "/v1/keks/payroll/unwrap", append(bodyCases("POST /v1/keks/{id}/unwrap", `{"wrapped":{}}`, false),
			atPaths(kekPaths("/unwrap"), unwrapBody, 401, client.CodeSignatureMissing)...)},
		"POST /v1/keks/{id}/rewrap": {agent, "/v1/keks/payroll/rewrap", append(bodyCases("POST /v1/keks/{id}/rewrap", `{"context":[]}`, false),
			atPaths(kekPaths("/rewrap"), unwrapBody, 401, client.CodeSignatureMissing)...)},
		"POST /v1/keks/{id}/unwrap/batch": {agent, "/v1/keks/payroll/unwrap/batch", append(bodyCases("POST /v1/keks/{id}/unwrap/batch", `{"items":[1]}`, false),
			atPaths(kekPaths("/unwrap/batch"), []byte(`{"items":[`+string(unwrapBody)+`]}`), 401, client.CodeSignatureMissing)...)},
		// A batch reports refusals per item, each logged: a KEK id that is
		// none is checked below.
		"POST /v1/keks/{id}/wrap/batch": {agent, "/v1/keks/payroll/wrap/batch", bodyCases("POST /v1/keks/{id}/wrap/batch", `{"items":{}}`, false)},
	}

	// Every route of the router is here.
	var listed []string
	h := httpapi.New(httpapitest.NewFake("test", "n1", "DE", ""), httpapi.Options{})
	err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		listed = append(listed, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range listed {
		if _, ok := routes[r]; !ok {
			t.Errorf("route %s: no bad input listed for it", r)
		}
	}
	for r := range routes {
		if !slices.Contains(listed, r) {
			t.Errorf("%s is not a route", r)
		}
		if _, ok := httpapi.BodyLimits[r]; ok != strings.HasPrefix(r, "POST ") {
			t.Errorf("%s: body limit %v", r, ok)
		}
	}

	for route, rt := range routes {
		method, _, _ := strings.Cut(route, " ")
		for _, tc := range rt.cases {
			path := rt.path
			if tc.path != "" {
				path = tc.path
			}
			req, err := http.NewRequest(method, url+path, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body == nil {
				req.Body, req.ContentLength = nil, 0
			}
			if tc.header[0] != "" {
				req.Header.Set(tc.header[0], tc.header[1])
			}
			resp, err := rt.hc.Do(req)
			if err != nil {
				t.Fatalf("%s, %s: %v", route, tc.what, err)
			}
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			t.Run(route+", "+tc.what, func(t *testing.T) {
				wantError(t, resp, b.Bytes(), tc.status, tc.code)
			})
		}
	}

	// A wrap batch under a KEK id that is none: every item refused
	// unknown_kek, with the index of the entry that logged the refusal.
	for _, p := range kekPaths("/wrap/batch") {
		resp, body := call(t, agent, http.MethodPost, url+p, []byte(`{"items":[`+string(wrapBody)+`,`+string(wrapBody)+`]}`))
		var out client.WrapBatchResponse
		if err := json.Unmarshal(body, &out); resp.StatusCode != 200 || err != nil || len(out.Results) != 2 {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
		}
		for _, r := range out.Results {
			if r.Error == nil || r.Error.Code != errcode.UnknownKEK || r.Error.LogIndex == 0 {
				t.Errorf("%s: item %+v", p, r)
			}
		}
	}
}

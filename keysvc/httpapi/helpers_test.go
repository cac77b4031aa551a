package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/testlog"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
)

// env is one node's API (a Fake behind httpapi.New) served over mutual TLS.
type env struct {
	pki  *httpapitest.PKI
	fake *httpapitest.Fake
	srv  *httptest.Server
	logs *testlog.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvIn(t, httpapitest.NewPKI(t, "test"), "n1", "DE")
}

// newEnvIn serves node id of pki's cluster.
func newEnvIn(t *testing.T, pki *httpapitest.PKI, id, region string) *env {
	t.Helper()
	e := &env{pki: pki, fake: httpapitest.NewFake(pki.Cluster, id, region, ""), logs: &testlog.Buffer{}}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.srv = pki.Serve(t, id, region, httpapi.New(e.fake, httpapi.Options{Logger: log}))
	e.fake.SetAPIAddr(e.srv.URL)
	return e
}

// as returns an HTTP client presenting a certificate for role, name and
// region of the env's cluster. It does not follow redirects.
func (e *env) as(t *testing.T, role identity.Role, name, region string) *http.Client {
	t.Helper()
	tc := e.pki.ClientTLS(t, e.pki.Issue(t, role, name, region))
	return &http.Client{
		Transport:     &http.Transport{TLSClientConfig: tc},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// operator, agent, auditor and node return clients of those roles.
func (e *env) operator(t *testing.T) *http.Client { return e.as(t, identity.RoleOperator, "ops", "DE") }
func (e *env) agent(t *testing.T) *http.Client    { return e.as(t, identity.RoleAgent, "agent-1", "FR") }
func (e *env) auditor(t *testing.T) *http.Client  { return e.as(t, identity.RoleAuditor, "audit", "NL") }

// sdk returns a client.Client for role.
func (e *env) sdk(t *testing.T, role identity.Role, name, region string, endpoints ...string) *client.Client {
	t.Helper()
	if len(endpoints) == 0 {
		endpoints = []string{e.srv.URL}
	}
	c, err := client.New(client.Config{Endpoints: endpoints, TLSFiles: e.pki.Issue(t, role, name, region), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// call makes a request and returns the answer with its body read.
func call(t *testing.T, hc *http.Client, method, url string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

var requestIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// wantError checks an error answer: status, the exact body shape, the code,
// and a request id equal to the header's.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) client.ErrorDetail {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var shape map[string]map[string]string
	if err := json.Unmarshal(body, &shape); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	if len(shape) != 1 || len(shape["error"]) != 3 {
		t.Fatalf("error body %s: want exactly {\"error\":{code,message,request_id}}", body)
	}
	d := client.ErrorDetail{Code: shape["error"]["code"], Message: shape["error"]["message"], RequestID: shape["error"]["request_id"]}
	if d.Code != code {
		t.Errorf("code %q, want %q (message %q)", d.Code, code, d.Message)
	}
	if d.Message == "" {
		t.Error("empty message")
	}
	if rid := resp.Header.Get(client.HeaderRequestID); !requestIDRE.MatchString(rid) || rid != d.RequestID {
		t.Errorf("request id header %q, body %q: want the same 32 hex digits", rid, d.RequestID)
	}
	return d
}

func newHandler(f *httpapitest.Fake) http.Handler {
	return httpapi.New(f, httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
}

// serve runs one request through h without TLS.
func serve(h http.Handler, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

package httpapi_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/testlog"
	"github.com/custos-eu/custos/keysvc/errcode"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/reqsig"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// signFake is a Fake that serves key operations: it records the caller
// each got and answers with fixed values, or with err when set.
type signFake struct {
	*httpapitest.Fake
	mu     sync.Mutex
	caller keysvc.Caller
	calls  int
	err    error
}

func (f *signFake) record(c keysvc.Caller) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.caller, f.calls = c, f.calls+1
	return f.err
}

func (f *signFake) last() (keysvc.Caller, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.caller, f.calls
}

func (f *signFake) Wrap(_ context.Context, c keysvc.Caller, _ string, _ wrapkey.Context, _ []byte, _ string) (keysvc.Wrapped, error) {
	return keysvc.Wrapped{Blob: []byte{1}, Version: 1, LogIndex: 1}, f.record(c)
}

func (f *signFake) Unwrap(_ context.Context, c keysvc.Caller, _ string, _ wrapkey.Context, _ []byte, _ string) ([]byte, uint64, error) {
	if err := f.record(c); err != nil {
		return nil, 0, err
	}
	return []byte{7}, 2, nil
}

func (f *signFake) DataKey(_ context.Context, c keysvc.Caller, _ string, _ wrapkey.Context, _ bool, _ string) ([]byte, keysvc.Wrapped, error) {
	return nil, keysvc.Wrapped{Blob: []byte{1}, Version: 1, LogIndex: 3}, f.record(c)
}

func (f *signFake) Rewrap(_ context.Context, c keysvc.Caller, _ string, _ wrapkey.Context, _ []byte, _ string) (keysvc.Wrapped, error) {
	return keysvc.Wrapped{Blob: []byte{1}, Version: 2, LogIndex: 4}, f.record(c)
}

func (f *signFake) WrapBatch(_ context.Context, c keysvc.Caller, _ string, items []keysvc.WrapItem, _ string) []keysvc.ItemResult {
	err := f.record(c)
	res := make([]keysvc.ItemResult, len(items))
	for i := range res {
		res[i] = keysvc.ItemResult{Wrapped: keysvc.Wrapped{Blob: []byte{1}, Version: 1, LogIndex: 5}, LogIndex: 5, Err: err}
	}
	return res
}

func (f *signFake) UnwrapBatch(_ context.Context, c keysvc.Caller, _ string, items []keysvc.UnwrapItem, _ string) []keysvc.ItemResult {
	err := f.record(c)
	res := make([]keysvc.ItemResult, len(items))
	for i := range res {
		res[i] = keysvc.ItemResult{Plaintext: []byte{7}, LogIndex: 6, Err: err}
	}
	return res
}

func (f *signFake) PublicKey(string, uint32) ([]byte, string, uint64, error) {
	return nil, "", 0, keysvc.ErrNotReady
}

var _ httpapi.KeyOpService = (*signFake)(nil)

// signEnv serves a signFake behind the API over mutual TLS.
type signEnv struct {
	*env
	f *signFake
}

// clientCAs, if set, gives Options.ClientCAs for the env's PKI.
func newSignEnv(t *testing.T, clientCAs func(*httpapitest.PKI) *x509.CertPool) *signEnv {
	t.Helper()
	pki := httpapitest.NewPKI(t, "test")
	var pool *x509.CertPool
	if clientCAs != nil {
		pool = clientCAs(pki)
	}
	f := &signFake{Fake: httpapitest.NewFake(pki.Cluster, "n1", "DE", "")}
	e := &env{pki: pki, fake: f.Fake, logs: &testlog.Buffer{}}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.srv = pki.Serve(t, "n1", "DE", httpapi.New(f, httpapi.Options{Logger: log, ClientCAs: pool}))
	f.SetAPIAddr(e.srv.URL)
	return &signEnv{env: e, f: f}
}

// postSigned posts body to url with the header value h (none when "").
func postSigned(t *testing.T, hc *http.Client, url string, body any, h string) (*http.Response, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return postRaw(t, hc, url, b, h)
}

// A blob of KEK payroll, version 3, under context hr.
func testBlob(t *testing.T, hr map[string]string) []byte {
	t.Helper()
	seed := make([]byte, 32)
	rand.Read(seed)
	pub, err := wrapkey.PublicKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := wrapkey.Wrap(rand.Reader, pub, "payroll", 3, hr, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

// Unwrap, rewrap and unwrap batch need a signature that the TLS
// certificate's key made, fresh, for exactly the request received; each
// refusal has its status and stable code, keysvc never sees a refused
// request, and a served one reaches keysvc with the signed request.
func TestRequestSignatures(t *testing.T) {
	se := newSignEnv(t, nil)
	files := se.pki.Issue(t, identity.RoleAgent, "agent-1", "DE")
	tc := se.pki.ClientTLS(t, files)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
	key := keyOfFiles(t, files)
	otherKey := keyOfFiles(t, se.pki.Issue(t, identity.RoleAgent, "agent-2", "DE"))

	hr := map[string]string{"dataset": "hr"}
	blob, blob2 := testBlob(t, hr), testBlob(t, hr)
	ctxHR, _ := reqsig.ContextHash(hr)
	want := reqsig.Request{Cluster: "test", Op: reqsig.OpUnwrap, KEKID: "payroll", Version: 3, Body: reqsig.BodyHash(blob), Context: ctxHR}
	url := se.srv.URL + "/v1/keks/payroll/unwrap"
	body := client.UnwrapRequest{Wrapped: blob, Context: hr}

	// Served: keysvc gets the signed request, message and certificate.
	good := signHeader(t, key, want)
	resp, b := postSigned(t, hc, url, body, good)
	if resp.StatusCode != 200 {
		t.Fatalf("signed unwrap: %d %s", resp.StatusCode, b)
	}
	c, n := se.f.last()
	msg, sig, _ := reqsig.DecodeHeader(good)
	if c.Signed == nil || string(c.Signed.Message) != string(msg) || string(c.Signed.Signature) != string(sig) ||
		string(c.Signed.Cert) != string(tc.Certificates[0].Leaf.Raw) || c.ID.Name != "agent-1" {
		t.Fatalf("keysvc got caller %+v", c)
	}

	tampered := func() string {
		m := []byte(string(msg))
		i := strings.Index(string(m), "request-id ") + len("request-id ")
		// Still a valid request id: the message parses, the signature fails.
		if m[i] == 'a' {
			m[i] = 'b'
		} else {
			m[i] = 'a'
		}
		return reqsig.EncodeHeader(m, sig)
	}
	with := func(f func(r *reqsig.Request)) string {
		r := want
		f(&r)
		return signHeader(t, key, r)
	}
	for _, tc := range []struct {
		what   string
		url    string
		body   any
		header string
		status int
		code   string
	}{
		{"missing", url, body, "", 401, reqsig.CodeMissing},
		{"not message.signature", url, body, "abc", 400, reqsig.CodeMalformed},
		{"padded base64", url, body, good + "=", 400, reqsig.CodeMalformed},
		{"not a message", url, body, reqsig.EncodeHeader([]byte("hello\n"), sig), 400, reqsig.CodeMalformed},
		{"another agent's key", url, body, signHeader(t, otherKey, want), 401, reqsig.CodeInvalid},
		{"tampered message", url, body, tampered(), 401, reqsig.CodeInvalid},
		{"another blob", url, client.UnwrapRequest{Wrapped: blob2, Context: hr}, good, 400, reqsig.CodeMismatch},
		{"another context", url, client.UnwrapRequest{Wrapped: blob, Context: map[string]string{"dataset": "finance"}}, good, 400, reqsig.CodeMismatch},
		{"another kek", se.srv.URL + "/v1/keks/other/unwrap", body, good, 400, reqsig.CodeMismatch},
		{"another version", url, body, with(func(r *reqsig.Request) { r.Version = 2 }), 400, reqsig.CodeMismatch},
		{"another cluster", url, body, with(func(r *reqsig.Request) { r.Cluster = "prod" }), 400, reqsig.CodeMismatch},
		{"another op", se.srv.URL + "/v1/keks/payroll/rewrap", body, good, 400, reqsig.CodeMismatch},
		{"stale", url, body, with(func(r *reqsig.Request) { r.Time = time.Now().Add(-10 * time.Minute).Unix() }), 401, reqsig.CodeStale},
		{"from the future", url, body, with(func(r *reqsig.Request) { r.Time = time.Now().Add(10 * time.Minute).Unix() }), 401, reqsig.CodeStale},
		{"replayed on another request", url, client.UnwrapRequest{Wrapped: blob2, Context: hr},
			signHeader(t, key, reqsig.Request{Cluster: "test", Op: reqsig.OpUnwrap, KEKID: "payroll", Version: 3, Body: reqsig.BodyHash(blob), Context: ctxHR}), 400, reqsig.CodeMismatch},
		{"rewrap missing", se.srv.URL + "/v1/keks/payroll/rewrap", body, "", 401, reqsig.CodeMissing},
		{"unwrap batch missing", se.srv.URL + "/v1/keks/payroll/unwrap/batch", client.UnwrapBatchRequest{Items: []client.UnwrapItem{{Wrapped: blob, Context: hr}}}, "", 401, reqsig.CodeMissing},
		{"unwrap batch signed for one item", se.srv.URL + "/v1/keks/payroll/unwrap/batch", client.UnwrapBatchRequest{Items: []client.UnwrapItem{{Wrapped: blob, Context: hr}}}, good, 400, reqsig.CodeMismatch},
		{"wrap with a bad signature", se.srv.URL + "/v1/keks/payroll/wrap", client.WrapRequest{Plaintext: []byte{1}, Context: hr}, good, 400, reqsig.CodeMismatch},
		{"unwrap with an unencodable context", url, client.UnwrapRequest{Wrapped: blob, Context: map[string]string{"": "x"}}, good, 400, errcode.InvalidContext},
	} {
		t.Run(tc.what, func(t *testing.T) {
			_, before := se.f.last()
			resp, b := postSigned(t, hc, tc.url, tc.body, tc.header)
			d := wantError(t, resp, b, tc.status, tc.code)
			if _, after := se.f.last(); after != before {
				t.Error("keysvc was called for a refused request")
			}
			if tc.code == reqsig.CodeMissing && !strings.Contains(d.Message, reqsig.Header) {
				t.Errorf("message %q does not say what to send", d.Message)
			}
		})
	}
	if _, calls := se.f.last(); calls != n {
		t.Errorf("keysvc called %d times", calls-n)
	}

	// Wrap, datakey and wrap batch: verified when signed, served unsigned.
	for _, path := range []string{"wrap", "datakey", "wrap/batch"} {
		var in any = client.WrapRequest{Plaintext: []byte{1}, Context: hr}
		switch path {
		case "datakey":
			in = client.DataKeyRequest{Context: hr, WrappedOnly: true}
		case "wrap/batch":
			in = client.WrapBatchRequest{Items: []client.WrapItem{{Plaintext: []byte{1}, Context: hr}, {Plaintext: []byte{2}}}}
		}
		resp, b := postSigned(t, hc, se.srv.URL+"/v1/keks/payroll/"+path, in, "")
		if c, _ := se.f.last(); resp.StatusCode != 200 || c.Signed != nil {
			t.Errorf("unsigned %s: %d %s, signed %v", path, resp.StatusCode, b, c.Signed != nil)
		}
		resp, b = post(t, se.signed(t, identity.RoleAgent, "agent-1", "DE"), se.srv.URL, "/v1/keks/payroll/"+path, in)
		if c, _ := se.f.last(); resp.StatusCode != 200 || c.Signed == nil {
			t.Errorf("signed %s: %d %s, signed %v", path, resp.StatusCode, b, c.Signed != nil)
		}
	}
	// Rewrap and unwrap batch, signed as the SDK does.
	sc := se.signed(t, identity.RoleAgent, "agent-1", "DE")
	for path, in := range map[string]any{
		"rewrap":       client.RewrapRequest{Wrapped: blob, Context: hr},
		"unwrap/batch": client.UnwrapBatchRequest{Items: []client.UnwrapItem{{Wrapped: blob, Context: hr}, {Wrapped: []byte("junk")}}},
	} {
		resp, b := post(t, sc, se.srv.URL, "/v1/keks/payroll/"+path, in)
		if c, _ := se.f.last(); resp.StatusCode != 200 || c.Signed == nil {
			t.Errorf("signed %s: %d %s", path, resp.StatusCode, b)
		}
	}

	// keysvc's own refusals of a signed request (its replay check, a
	// revoked certificate) keep their reqsig codes, with their statuses.
	for code, status := range map[string]int{reqsig.CodeReplayed: 409, reqsig.CodeUntrusted: 403, reqsig.CodeStale: 401, reqsig.CodeMismatch: 400} {
		se.f.mu.Lock()
		se.f.err = &reqsig.Error{Code: code, Reason: "refused by keysvc"}
		se.f.mu.Unlock()
		resp, b := post(t, sc, se.srv.URL, "/v1/keks/payroll/unwrap", body)
		wantError(t, resp, b, status, code)
		se.f.mu.Lock()
		se.f.err = &keysvc.KeyOpError{Code: code, Reason: "refused by keysvc"}
		se.f.mu.Unlock()
		resp, b = post(t, sc, se.srv.URL, "/v1/keks/payroll/unwrap", body)
		wantError(t, resp, b, status, code)
	}
	if l := se.logs.Line(`"status":500`); l != "" {
		t.Errorf("a signature refusal answered 500: %s", l)
	}
}

// Options.ClientCAs is the pool signed requests are checked against: a
// certificate outside it may not sign (403), one inside it is served.
func TestRequestSignatureClientCAs(t *testing.T) {
	other, err := identity.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hr := map[string]string{"dataset": "hr"}
	in := client.UnwrapRequest{Wrapped: testBlob(t, hr), Context: hr}

	se := newSignEnv(t, func(*httpapitest.PKI) *x509.CertPool {
		pool := x509.NewCertPool()
		pool.AddCert(other.Certificate())
		return pool
	})
	resp, b := post(t, se.signed(t, identity.RoleAgent, "agent-1", "DE"), se.srv.URL, "/v1/keks/payroll/unwrap", in)
	wantError(t, resp, b, 403, reqsig.CodeUntrusted)
	if _, n := se.f.last(); n != 0 {
		t.Error("keysvc was called")
	}

	se = newSignEnv(t, func(p *httpapitest.PKI) *x509.CertPool {
		pool := x509.NewCertPool()
		pool.AddCert(other.Certificate())
		pool.AddCert(p.CA.Certificate())
		return pool
	})
	resp, b = post(t, se.signed(t, identity.RoleAgent, "agent-1", "DE"), se.srv.URL, "/v1/keks/payroll/unwrap", in)
	if c, _ := se.f.last(); resp.StatusCode != 200 || c.Signed == nil {
		t.Errorf("unwrap with the cluster CA in ClientCAs: %d %s", resp.StatusCode, b)
	}
}

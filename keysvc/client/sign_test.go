package client_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/reqsig"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// headers records the signature header of each request by path and
// answers every key op with a wrap-shaped (and unwrap-shaped) answer.
type headers struct {
	mu  sync.Mutex
	got map[string][]string // path -> headers received, in order
}

func (h *headers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h.mu.Lock()
	h.got[r.URL.EscapedPath()] = append(h.got[r.URL.EscapedPath()], r.Header.Get(reqsig.Header))
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"wrapped":"AQ==","kek_version":1,"log_index":1,"results":[]}`)
}

func (h *headers) last(t *testing.T, path string) string {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	hs := h.got[path]
	if len(hs) == 0 {
		t.Fatalf("no request to %s", path)
	}
	return hs[len(hs)-1]
}

// Every key operation carries a signature that verifies against the
// cluster CA with the client's certificate and describes the request:
// op, KEK, the blob's version, the body and context hashes.
func TestKeyOpsAreSigned(t *testing.T) {
	pki := httpapitest.NewPKI(t, "test")
	rec := &headers{got: map[string][]string{}}
	url := pki.Serve(t, "n1", "DE", rec).URL
	files := pki.Issue(t, identity.RoleAgent, "agent-1", "DE")
	c, err := client.New(client.Config{Endpoints: []string{url}, TLSFiles: files, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	leaf := pki.ClientTLS(t, files).Certificates[0].Leaf
	roots := x509.NewCertPool()
	roots.AddCert(pki.CA.Certificate())

	seed := make([]byte, 32)
	rand.Read(seed)
	pub, err := wrapkey.PublicKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	hr := map[string]string{"dataset": "hr"}
	blob, err := wrapkey.Wrap(rand.Reader, pub, "payroll", 3, hr, []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	ctxHR, _ := reqsig.ContextHash(hr)
	ctxNone, _ := reqsig.ContextHash(nil)
	dek := []byte{1, 2, 3}
	ctx := context.Background()

	check := func(path string, want reqsig.Request) {
		t.Helper()
		msg, sig, err := reqsig.DecodeHeader(rec.last(t, path))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		v, err := reqsig.Signed{Message: msg, Signature: sig, Cert: leaf.Raw}.Verify(reqsig.Options{Cluster: "test", Roots: roots, Now: time.Now()})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		want.Cluster, want.KEKID = "test", "payroll"
		if err := v.Request.Matches(want); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if reqsig.ValidateRequestID(v.Request.RequestID) != nil || time.Since(time.Unix(v.Request.Time, 0)).Abs() > time.Minute {
			t.Errorf("%s: request id %q, time %d", path, v.Request.RequestID, v.Request.Time)
		}
	}

	if _, err := c.Wrap(ctx, "payroll", dek, hr); err != nil {
		t.Fatal(err)
	}
	check("/v1/keks/payroll/wrap", reqsig.Request{Op: reqsig.OpWrap, Body: reqsig.BodyHash(dek), Context: ctxHR})
	first := rec.last(t, "/v1/keks/payroll/wrap")
	if _, err := c.Wrap(ctx, "payroll", dek, hr); err != nil {
		t.Fatal(err)
	}
	if rec.last(t, "/v1/keks/payroll/wrap") == first {
		t.Error("two calls sent the same signature")
	}
	if _, err := c.Unwrap(ctx, "payroll", blob, hr); err != nil {
		t.Fatal(err)
	}
	check("/v1/keks/payroll/unwrap", reqsig.Request{Op: reqsig.OpUnwrap, Version: 3, Body: reqsig.BodyHash(blob), Context: ctxHR})
	if _, err := c.Rewrap(ctx, "payroll", []byte("not a blob"), hr); err != nil {
		t.Fatal(err)
	}
	check("/v1/keks/payroll/rewrap", reqsig.Request{Op: reqsig.OpRewrap, Version: 0, Body: reqsig.BodyHash([]byte("not a blob")), Context: ctxHR})
	if _, err := c.DataKey(ctx, "payroll", nil, true); err != nil {
		t.Fatal(err)
	}
	check("/v1/keks/payroll/datakey", reqsig.Request{Op: reqsig.OpDataKey, Body: reqsig.BodyHash(nil), Context: ctxNone})
	if _, err := c.WrapBatch(ctx, "payroll", []client.WrapItem{{Plaintext: dek, Context: hr}, {Plaintext: []byte{9}}}); err != nil {
		t.Fatal(err)
	}
	check("/v1/keks/payroll/wrap/batch", reqsig.Request{Op: reqsig.OpWrapBatch, Context: ctxNone,
		Body: reqsig.BatchHash([]reqsig.Item{{Body: reqsig.BodyHash(dek), Context: ctxHR}, {Body: reqsig.BodyHash([]byte{9}), Context: ctxNone}})})
	if _, err := c.UnwrapBatch(ctx, "payroll", []client.UnwrapItem{{Wrapped: blob, Context: hr}}); err != nil {
		t.Fatal(err)
	}
	check("/v1/keks/payroll/unwrap/batch", reqsig.Request{Op: reqsig.OpUnwrapBatch, Context: ctxNone,
		Body: reqsig.BatchHash([]reqsig.Item{{Body: reqsig.BodyHash(blob), Context: ctxHR}})})

	// A context that cannot be encoded cannot be signed: refused before
	// anything is sent.
	bad := map[string]string{"": "empty key"}
	if _, err := c.Unwrap(ctx, "payroll", blob, bad); err == nil {
		t.Error("unwrap with an empty context key was sent")
	}
	if _, err := c.UnwrapBatch(ctx, "payroll", []client.UnwrapItem{{Wrapped: blob, Context: hr}, {Wrapped: blob, Context: bad}}); err == nil {
		t.Error("unwrap batch with an empty context key was sent")
	}
}

// The leader redirect resends the same signed request: it is the same
// attempt, which the follower did not serve.
func TestRedirectKeepsSignature(t *testing.T) {
	pki := httpapitest.NewPKI(t, "test")
	leader := &headers{got: map[string][]string{}}
	leaderURL := pki.Serve(t, "n1", "DE", leader).URL
	follower := &headers{got: map[string][]string{}}
	followerURL := pki.Serve(t, "n2", "FR", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		follower.mu.Lock()
		follower.got[r.URL.Path] = append(follower.got[r.URL.Path], r.Header.Get(reqsig.Header))
		follower.mu.Unlock()
		w.Header().Set(client.HeaderLeader, leaderURL)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTemporaryRedirect)
		_, _ = io.WriteString(w, `{"error":{"code":"not_leader","message":"ask the leader","request_id":"r"}}`)
	})).URL
	c := newClient(t, pki, identity.RoleAgent, followerURL)
	if _, err := c.Wrap(context.Background(), "payroll", []byte{1}, nil); err != nil {
		t.Fatal(err)
	}
	if f, l := follower.last(t, "/v1/keks/payroll/wrap"), leader.last(t, "/v1/keks/payroll/wrap"); f == "" || f != l {
		t.Errorf("follower got %q, leader %q", f, l)
	}
}

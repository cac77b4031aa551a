package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// node serves a Fake behind the real API and returns it with its URL.
func node(t *testing.T, pki *httpapitest.PKI, id, region string) (*httpapitest.Fake, string) {
	t.Helper()
	f := httpapitest.NewFake(pki.Cluster, id, region, "")
	srv := pki.Serve(t, id, region, httpapi.New(f, httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	f.SetAPIAddr(srv.URL)
	return f, srv.URL
}

func newClient(t *testing.T, pki *httpapitest.PKI, role identity.Role, endpoints ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: endpoints, TLSFiles: pki.Issue(t, role, "c-"+string(role), "DE"), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// deadEndpoint is an https URL where nothing listens.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr
}

// resettingEndpoint accepts connections and closes them at once: a node
// that died after the request may have reached it. It counts connections.
func resettingEndpoint(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return "https://" + l.Addr().String(), &n
}

func TestNewChecksConfig(t *testing.T) {
	pki := httpapitest.NewPKI(t, "test")
	files := pki.Issue(t, identity.RoleAgent, "a", "DE")
	tc := pki.ClientTLS(t, files)
	for name, cfg := range map[string]client.Config{
		"no endpoints":   {TLSFiles: files},
		"plain http":     {Endpoints: []string{"http://127.0.0.1:1"}, TLSFiles: files},
		"path":           {Endpoints: []string{"https://127.0.0.1:1/v1"}, TLSFiles: files},
		"no TLS":         {Endpoints: []string{"https://127.0.0.1:1"}},
		"both TLS forms": {Endpoints: []string{"https://127.0.0.1:1"}, TLSFiles: files, TLS: tc},
		"missing files":  {Endpoints: []string{"https://127.0.0.1:1"}, TLSFiles: identity.TLSFiles{Cert: "/nonexistent", Key: "/nonexistent", CA: files.CA}},
		"negative":       {Endpoints: []string{"https://127.0.0.1:1"}, TLS: tc, Timeout: -1},
	} {
		if _, err := client.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c, err := client.New(client.Config{Endpoints: []string{"https://127.0.0.1:1/", "https://[::1]:2"}, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Endpoints(); got[0] != "https://127.0.0.1:1" || got[1] != "https://[::1]:2" {
		t.Errorf("endpoints %v", got)
	}
}

func TestFailoverToNextEndpoint(t *testing.T) {
	pki := httpapitest.NewPKI(t, "test")
	f, live := node(t, pki, "n1", "DE")
	ctx := context.Background()

	// Nothing listening: reads and writes both move on.
	c := newClient(t, pki, identity.RoleOperator, deadEndpoint(t), live)
	if _, err := c.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
	if _, err := c.Canary(ctx); err != nil {
		t.Fatalf("canary: %v", err)
	}

	// A node that drops connections before the handshake: nothing was
	// sent, so a write moves on too.
	reset, conns := resettingEndpoint(t)
	c = newClient(t, pki, identity.RoleOperator, reset, live)
	if _, err := c.Canary(ctx); err != nil {
		t.Errorf("canary after a refused handshake: %v", err)
	}
	// The endpoint that answered is tried first from now on.
	n := conns.Load()
	for range 3 {
		if _, err := c.Health(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if conns.Load() != n {
		t.Errorf("the dead endpoint was tried again (%d more connections)", conns.Load()-n)
	}

	// A node that dies once it has the request: a write may have been
	// carried out and is not sent again; a read moves on.
	var got atomic.Int32
	dying := pki.Serve(t, "n9", "DE", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	c = newClient(t, pki, identity.RoleOperator, dying.URL, live)
	before := f.Status().LogSize
	if _, err := c.Canary(ctx); err == nil {
		t.Error("canary sent again after the first node took it")
	}
	if f.Status().LogSize != before || got.Load() == 0 {
		t.Errorf("the canary reached the second node (log %d -> %d), or never the first (%d)", before, f.Status().LogSize, got.Load())
	}
	if _, err := c.Health(ctx); err != nil {
		t.Errorf("health after a dropped request: %v", err)
	}

	// All endpoints down: the error says so.
	c = newClient(t, pki, identity.RoleAgent, deadEndpoint(t), deadEndpoint(t))
	if _, err := c.Cluster(ctx); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("all down: %v", err)
	}
}

func TestAPIErrors(t *testing.T) {
	pki := httpapitest.NewPKI(t, "test")
	f, url := node(t, pki, "n1", "DE")
	c := newClient(t, pki, identity.RoleAgent, url)
	_, err := c.Canary(context.Background()) // agents may not
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Code != client.CodeForbidden || ae.RequestID == "" || ae.Endpoint != url {
		t.Fatalf("got %#v", err)
	}
	if !strings.Contains(ae.Error(), "forbidden") || !strings.Contains(ae.Error(), ae.RequestID) {
		t.Errorf("message %q", ae.Error())
	}
	if !client.IsCode(err, client.CodeNotFound, client.CodeForbidden) || client.IsCode(err, client.CodeNotFound) || client.IsCode(errors.New("x"), client.CodeForbidden) {
		t.Error("IsCode")
	}
	f.SetLeader("", "")
	if _, err := c.Checkpoint(context.Background()); !client.IsCode(err, client.CodeNoLeader) {
		t.Errorf("no leader: %v", err)
	}

	// An answer that is not ours keeps a readable excerpt.
	odd := pki.Serve(t, "proxy", "DE", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	c = newClient(t, pki, identity.RoleAgent, odd.URL)
	_, err = c.Health(context.Background())
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != "" || !strings.Contains(ae.Message, "bad gateway") {
		t.Errorf("foreign error: %#v", err)
	}
}

// A redirect is followed once, only to an https leader.
func TestLeaderRedirects(t *testing.T) {
	pki := httpapitest.NewPKI(t, "test")
	var hits atomic.Int32
	redirector := func(leader string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set(client.HeaderLeader, leader)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTemporaryRedirect)
			w.Write([]byte(`{"error":{"code":"not_leader","message":"ask ` + leader + `","request_id":"r"}}`))
		})
	}
	leaderFake, leaderURL := node(t, pki, "n1", "DE")
	follower := pki.Serve(t, "n2", "FR", redirector(leaderURL))
	c := newClient(t, pki, identity.RoleAuditor, follower.URL)
	note, err := c.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ledger.VerifyCheckpoint(note, "custos/test", leaderFake.Key()); err != nil {
		t.Error(err)
	}

	insecure := pki.Serve(t, "n3", "FR", redirector("http://127.0.0.1:1"))
	c = newClient(t, pki, identity.RoleAuditor, insecure.URL)
	_, err = c.Checkpoint(context.Background())
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != client.CodeNotLeader || ae.Leader != "http://127.0.0.1:1" {
		t.Errorf("redirect to plain http: %v", err)
	}

	// Two followers pointing at each other: one hop, then the error.
	hits.Store(0)
	var bURL atomic.Value
	a := pki.Serve(t, "na", "FR", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirector(bURL.Load().(string)).ServeHTTP(w, r)
	}))
	b := pki.Serve(t, "nb", "FR", redirector(a.URL))
	bURL.Store(b.URL)
	c = newClient(t, pki, identity.RoleAuditor, a.URL)
	if _, err := c.Checkpoint(context.Background()); !client.IsCode(err, client.CodeNotLeader) || hits.Load() != 2 {
		t.Errorf("redirect loop: %v after %d requests, want not_leader after 2", err, hits.Load())
	}
}

// Answers that do not match the question are refused, not passed on.
func TestMismatchedAnswers(t *testing.T) {
	pki := httpapitest.NewPKI(t, "test")
	srv := pki.Serve(t, "n1", "DE", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/ledger/entries":
			w.Write([]byte(`{"start":0,"entries":[]}`))
		case "/v1/ledger/proof/inclusion":
			w.Write([]byte(`{"index":1,"size":5,"hashes":[]}`))
		case "/v1/ledger/proof/consistency":
			w.Write([]byte(`{"old":1,"new":4,"hashes":[]}`))
		case "/v1/ledger/keys":
			w.Write([]byte("not a key\n"))
		}
	}))
	c := newClient(t, pki, identity.RoleAuditor, srv.URL)
	ctx := context.Background()
	if _, err := c.Entries(ctx, 3, 1); err == nil {
		t.Error("entries from another start accepted")
	}
	if _, err := c.InclusionProof(ctx, 2, 5); err == nil {
		t.Error("inclusion proof of another index accepted")
	}
	if _, err := c.ConsistencyProof(ctx, 1, 5); err == nil {
		t.Error("consistency proof of other sizes accepted")
	}
	if _, err := c.NodeKeys(ctx); err == nil {
		t.Error("malformed keys accepted")
	}
}

// A server that is not a node of the cluster (an agent's certificate, or
// another CA) is refused by the client.
func TestServerMustBeClusterNode(t *testing.T) {
	pki := httpapitest.NewPKI(t, "test")
	_, url := node(t, pki, "n1", "DE")
	other := httpapitest.NewPKI(t, "test")
	c, err := client.New(client.Config{Endpoints: []string{url}, TLSFiles: other.Issue(t, identity.RoleAgent, "a", "DE")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Health(context.Background()); err == nil {
		t.Error("connected to a node of another CA")
	}
}

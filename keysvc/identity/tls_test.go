package identity_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/identity"
)

// cluster is a prod CA with two nodes and some clients, a second CA that
// also calls itself prod, and a staging CA; bundle trusts prod and staging.
type cluster struct {
	prod, impostor, staging *testCA
	bundle                  string
	node1, node2            identity.TLSFiles
	agent, auditor          identity.TLSFiles
	ids                     map[string]identity.Identity
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	c := &cluster{
		prod: newTestCA(t, "prod"), impostor: newTestCA(t, "prod"), staging: newTestCA(t, "staging"),
		ids: map[string]identity.Identity{
			"node1":   {Cluster: "prod", Name: "node-1", Role: identity.RoleNode, Region: "FR"},
			"node2":   {Cluster: "prod", Name: "node-2", Role: identity.RoleNode, Region: "DE"},
			"agent":   {Cluster: "prod", Name: "agent-payroll", Role: identity.RoleAgent, Region: "SE"},
			"auditor": {Cluster: "prod", Name: "eve", Role: identity.RoleAuditor, Region: "FR"},
		},
	}
	c.bundle = filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(c.bundle, append(c.prod.CertPEM(), c.staging.CertPEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	c.node1 = c.prod.issue(t, c.ids["node1"], localhost)
	c.node2 = c.prod.issue(t, c.ids["node2"], localhost)
	c.agent = c.prod.issue(t, c.ids["agent"], identity.IssueOptions{})
	c.auditor = c.prod.issue(t, c.ids["auditor"], identity.IssueOptions{})
	return c
}

// rawClient is a client that runs none of our checks, only standard chain
// verification: a misbehaving or foreign peer.
func rawClient(t testing.TB, certPEM, keyPEM []byte, roots string) *tls.Config {
	t.Helper()
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := identity.LoadCertPool(roots)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost"}
}

func TestConfigs(t *testing.T) {
	c := newCluster(t)
	srv := mustServer(t, c.node1)
	cli := mustClient(t, c.agent)
	want := []tls.CurveID{tls.X25519MLKEM768, tls.X25519}
	for name, cfg := range map[string]*tls.Config{"server": srv, "client": cli} {
		if cfg.MinVersion != tls.VersionTLS13 || !slices.Equal(cfg.CurvePreferences, want) ||
			len(cfg.Certificates) != 1 || cfg.VerifyConnection == nil || cfg.InsecureSkipVerify {
			t.Errorf("%s: MinVersion %x curves %v certs %d hook %v insecure %v", name, cfg.MinVersion,
				cfg.CurvePreferences, len(cfg.Certificates), cfg.VerifyConnection != nil, cfg.InsecureSkipVerify)
		}
	}
	if srv.ClientAuth != tls.RequireAndVerifyClientCert || srv.ClientCAs == nil {
		t.Errorf("server: ClientAuth %v, ClientCAs %v", srv.ClientAuth, srv.ClientCAs)
	}
	if cli.RootCAs == nil {
		t.Error("client: nil RootCAs would mean the system roots")
	}
	leaf := srv.Certificates[0].Leaf
	if id, err := identity.FromCertificate(leaf); err != nil || id != c.ids["node1"] {
		t.Errorf("own identity from Certificates[0].Leaf: %v, %v", id, err)
	}
}

func TestConfigErrors(t *testing.T) {
	c := newCluster(t)
	noID, noIDKey := c.prod.signRaw(t, &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	expired := c.prod.issue(t, c.ids["agent"], identity.IssueOptions{NotBefore: time.Now().Add(-2 * time.Hour), Validity: time.Hour})
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		server bool
		files  identity.TLSFiles
		opts   []identity.Option
		want   string
	}{
		{"missing certificate", true, with(c.node1, func(f *identity.TLSFiles) { f.Cert = filepath.Join(dir, "nope") }), nil, "nope"},
		{"missing CA file", true, with(c.node1, func(f *identity.TLSFiles) { f.CA = filepath.Join(dir, "ca-nope") }), nil, "ca-nope"},
		{"key for another certificate", true, with(c.node1, func(f *identity.TLSFiles) { f.Key = c.node2.Key }), nil, "private key does not match"},
		{"CA file of another CA", true, with(c.node1, func(f *identity.TLSFiles) { f.CA = c.impostor.certFile }), nil, "not valid for TLS server authentication under CA file"},
		{"client certificate as a server", true, c.agent, nil, "not valid for TLS server authentication"},
		{"leaf as CA file", false, with(c.agent, func(f *identity.TLSFiles) { f.CA = c.node1.Cert }), nil, "not a CA"},
		{"no identity", false, writePair(t, c.prod.certFile, noID, noIDKey), nil, "no custos identity"},
		{"expired", false, expired, nil, "expired"},
		{"RequireRoles()", true, c.node1, []identity.Option{identity.RequireRoles()}, "at least one role"},
		{"unknown role", true, c.node1, []identity.Option{identity.RequireRoles(identity.RoleNode, "admin")}, `role "admin"`},
		{"AllowRegions()", false, c.agent, []identity.Option{identity.AllowRegions()}, "at least one region"},
		{"lower-case region", false, c.agent, []identity.Option{identity.AllowRegions("FR", "de")}, `"de" is not`},
	} {
		var err error
		if tc.server {
			_, err = identity.ServerConfig(tc.files, tc.opts...)
		} else {
			_, err = identity.ClientConfig(tc.files, tc.opts...)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "identity: ") {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

func TestHandshake(t *testing.T) {
	c := newCluster(t)
	ln := listen(t)

	t.Run("node to node", func(t *testing.T) {
		srv := mustServer(t, c.node1, identity.RequireRoles(identity.RoleNode), identity.RequireHybridKeyExchange())
		cli := mustClient(t, c.node2, identity.RequireHybridKeyExchange())
		r := handshake(t, ln, srv, cli)
		r.ok(t)
		for side, cs := range map[string]tls.ConnectionState{"server": r.server, "client": r.client} {
			if cs.Version != tls.VersionTLS13 || cs.CurveID != tls.X25519MLKEM768 {
				t.Errorf("%s: version %x, key exchange %v; want TLS 1.3 with X25519MLKEM768", side, cs.Version, cs.CurveID)
			}
		}
		if id, err := identity.PeerIdentity(r.server); err != nil || id != c.ids["node2"] {
			t.Errorf("server sees %v, %v; want %v", id, err, c.ids["node2"])
		}
		if id, err := identity.PeerIdentity(r.client); err != nil || id != c.ids["node1"] {
			t.Errorf("client sees %v, %v; want %v", id, err, c.ids["node1"])
		}
		certPEM, _ := os.ReadFile(c.node2.Cert)
		if got, want := identity.Fingerprint(r.server.VerifiedChains[0][0]), identity.Fingerprint(parsePEM(t, certPEM)); got != want {
			t.Errorf("fingerprint of the peer %s, of its certificate file %s", got, want)
		}
	})

	t.Run("agent to API", func(t *testing.T) {
		r := handshake(t, ln, mustServer(t, c.node1), mustClient(t, c.agent))
		r.ok(t)
		if id, _ := identity.PeerIdentity(r.server); id != c.ids["agent"] {
			t.Errorf("server sees %v", id)
		}
		if r.client.CurveID != tls.X25519MLKEM768 {
			t.Errorf("key exchange %v", r.client.CurveID)
		}
	})

	t.Run("X25519 fallback unless hybrid is required", func(t *testing.T) {
		cli := mustClient(t, c.agent)
		cli.CurvePreferences = []tls.CurveID{tls.X25519}
		r := handshake(t, ln, mustServer(t, c.node1), cli)
		r.ok(t)
		if r.server.CurveID != tls.X25519 {
			t.Errorf("key exchange %v, want X25519", r.server.CurveID)
		}
		r = handshake(t, ln, mustServer(t, c.node1, identity.RequireHybridKeyExchange()), cli)
		if err := r.refused(t, "server"); !errors.Is(err, identity.ErrClassicalKeyExchange) {
			t.Errorf("server: %v, want ErrClassicalKeyExchange", err)
		}
	})

	refusals := []struct {
		name   string
		srv    func(t *testing.T) *tls.Config
		cli    func(t *testing.T) *tls.Config
		side   string // which end refuses
		target error  // errors.Is target, or nil to check with match
		match  func(error) bool
	}{
		{
			name: "client certificate from another CA",
			srv:  func(t *testing.T) *tls.Config { return mustServer(t, c.node1) },
			cli: func(t *testing.T) *tls.Config {
				impostor := c.impostor.issue(t, c.ids["agent"], identity.IssueOptions{})
				certPEM, _ := os.ReadFile(impostor.Cert)
				keyPEM, _ := os.ReadFile(impostor.Key)
				return rawClient(t, certPEM, keyPEM, c.prod.certFile)
			},
			side: "server", match: isUnknownAuthority,
		},
		{
			name: "no client certificate",
			srv:  func(t *testing.T) *tls.Config { return mustServer(t, c.node1) },
			cli: func(t *testing.T) *tls.Config {
				cfg := mustClient(t, c.agent)
				cfg.Certificates = nil
				return cfg
			},
			side: "server", match: func(err error) bool { return strings.Contains(err.Error(), "didn't provide a certificate") },
		},
		{
			name: "expired client certificate",
			srv:  func(t *testing.T) *tls.Config { return mustServer(t, c.node1) },
			cli: func(t *testing.T) *tls.Config {
				certPEM, keyPEM, err := c.prod.Issue(c.ids["agent"], identity.IssueOptions{NotBefore: time.Now().Add(-2 * time.Hour), Validity: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				return rawClient(t, certPEM, keyPEM, c.prod.certFile)
			},
			side: "server", match: func(err error) bool {
				var ce x509.CertificateInvalidError
				return errors.As(err, &ce) && ce.Reason == x509.Expired
			},
		},
		{
			name: "client of another cluster under a shared CA file",
			srv: func(t *testing.T) *tls.Config {
				return mustServer(t, with(c.node1, func(f *identity.TLSFiles) { f.CA = c.bundle }))
			},
			cli: func(t *testing.T) *tls.Config {
				certPEM, keyPEM, err := c.staging.Issue(identity.Identity{Cluster: "staging", Name: "agent-payroll", Role: identity.RoleAgent, Region: "SE"}, identity.IssueOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return rawClient(t, certPEM, keyPEM, c.bundle)
			},
			side: "server", target: identity.ErrWrongCluster,
		},
		{
			name: "server of another cluster under a shared CA file",
			srv: func(t *testing.T) *tls.Config {
				f := c.staging.issue(t, identity.Identity{Cluster: "staging", Name: "node-1", Role: identity.RoleNode, Region: "FR"}, localhost)
				f.CA = c.bundle
				return mustServer(t, f)
			},
			cli: func(t *testing.T) *tls.Config {
				return mustClient(t, with(c.agent, func(f *identity.TLSFiles) { f.CA = c.bundle }))
			},
			side: "client", target: identity.ErrWrongCluster,
		},
		{
			name: "role not allowed",
			srv: func(t *testing.T) *tls.Config {
				return mustServer(t, c.node1, identity.RequireRoles(identity.RoleNode))
			},
			cli:  func(t *testing.T) *tls.Config { return mustClient(t, c.agent) },
			side: "server", target: identity.ErrRoleNotAllowed,
		},
		{
			name: "region not allowed",
			srv: func(t *testing.T) *tls.Config {
				return mustServer(t, c.node1, identity.AllowRegions("FR", "DE"))
			},
			cli:  func(t *testing.T) *tls.Config { return mustClient(t, c.agent) },
			side: "server", target: identity.ErrRegionNotAllowed,
		},
		{
			name: "server certificate from another CA",
			srv: func(t *testing.T) *tls.Config {
				f := c.impostor.issue(t, c.ids["node1"], localhost)
				cfg := mustServer(t, f)
				cfg.ClientCAs, _ = identity.LoadCertPool(c.prod.certFile)
				return cfg
			},
			cli:  func(t *testing.T) *tls.Config { return mustClient(t, c.agent) },
			side: "client", match: isUnknownAuthority,
		},
		{
			name: "server that is not a node",
			srv: func(t *testing.T) *tls.Config {
				u := identity.Identity{Cluster: "prod", Name: "agent-x", Role: identity.RoleAgent, Region: "FR"}.URI()
				certPEM, keyPEM := c.prod.signRaw(t, &x509.Certificate{
					URIs: []*url.URL{u}, DNSNames: []string{"localhost"},
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
				return mustServer(t, writePair(t, c.prod.certFile, certPEM, keyPEM))
			},
			cli:  func(t *testing.T) *tls.Config { return mustClient(t, c.agent) },
			side: "client", target: identity.ErrRoleNotAllowed,
		},
		{
			name: "server name mismatch",
			srv:  func(t *testing.T) *tls.Config { return mustServer(t, c.node1) },
			cli: func(t *testing.T) *tls.Config {
				cfg := mustClient(t, c.agent)
				cfg.ServerName = "node-9.example"
				return cfg
			},
			side: "client", match: func(err error) bool { var he x509.HostnameError; return errors.As(err, &he) },
		},
		{
			name: "client certificate without identity",
			srv:  func(t *testing.T) *tls.Config { return mustServer(t, c.node1) },
			cli: func(t *testing.T) *tls.Config {
				certPEM, keyPEM := c.prod.signRaw(t, &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
				return rawClient(t, certPEM, keyPEM, c.prod.certFile)
			},
			side: "server", target: identity.ErrNoIdentity,
		},
		{
			name: "client certificate with two identities",
			srv:  func(t *testing.T) *tls.Config { return mustServer(t, c.node1) },
			cli: func(t *testing.T) *tls.Config {
				certPEM, keyPEM := c.prod.signRaw(t, &x509.Certificate{
					URIs:        []*url.URL{c.ids["agent"].URI(), c.ids["node2"].URI()},
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
				return rawClient(t, certPEM, keyPEM, c.prod.certFile)
			},
			side: "server", match: func(err error) bool { var pe *identity.ParseError; return errors.As(err, &pe) },
		},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			err := handshake(t, ln, tc.srv(t), tc.cli(t)).refused(t, tc.side)
			t.Logf("%s: %v", tc.side, err)
			if tc.target != nil && !errors.Is(err, tc.target) || tc.match != nil && !tc.match(err) {
				t.Errorf("%s refused with %v", tc.side, err)
			}
		})
	}
}

func with(f identity.TLSFiles, edit func(*identity.TLSFiles)) identity.TLSFiles { edit(&f); return f }

func isUnknownAuthority(err error) bool {
	var ua x509.UnknownAuthorityError
	return errors.As(err, &ua)
}

// TestResumption checks that a resumed session still carries the peer's
// verified identity, which HTTP handlers read from every request.
func TestResumption(t *testing.T) {
	c := newCluster(t)
	ln := listen(t)
	srv := mustServer(t, c.node1)
	cli := mustClient(t, c.agent)
	cli.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	handshake(t, ln, srv, cli).ok(t)
	r := handshake(t, ln, srv, cli)
	r.ok(t)
	if !r.server.DidResume || !r.client.DidResume {
		t.Fatal("session not resumed")
	}
	if id, err := identity.PeerIdentity(r.server); err != nil || id != c.ids["agent"] {
		t.Errorf("resumed: server sees %v, %v", id, err)
	}
	if r.server.CurveID != tls.X25519MLKEM768 {
		t.Errorf("resumed with key exchange %v", r.server.CurveID)
	}
}

func TestHTTPPeerIdentity(t *testing.T) {
	c := newCluster(t)
	ln := listen(t)
	hs := &http.Server{
		TLSConfig: mustServer(t, c.node1, identity.RequireRoles(identity.RoleAgent, identity.RoleNode)),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, err := identity.PeerIdentity(*r.TLS)
			if err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			fmt.Fprintf(w, "%s %s", id, identity.Fingerprint(r.TLS.VerifiedChains[0][0]))
		}),
		ErrorLog: log.New(io.Discard, "", 0), // refused handshakes
	}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })

	get := func(files identity.TLSFiles, host string) (string, *http.Response, error) {
		tr := &http.Transport{TLSClientConfig: mustClient(t, files), ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		resp, err := hc.Get("https://" + net.JoinHostPort(host, port) + "/")
		if err != nil {
			return "", nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), resp, err
	}
	certPEM, _ := os.ReadFile(c.agent.Cert)
	want := c.ids["agent"].String() + " " + identity.Fingerprint(parsePEM(t, certPEM))
	for _, host := range []string{"127.0.0.1", "localhost"} {
		body, resp, err := get(c.agent, host)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		if body != want || resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %q, want %q", host, resp.StatusCode, body, want)
		}
		if resp.TLS.CurveID != tls.X25519MLKEM768 || resp.ProtoMajor != 2 {
			t.Errorf("%s: key exchange %v over HTTP/%d", host, resp.TLS.CurveID, resp.ProtoMajor)
		}
	}
	// An auditor is not allowed on this listener: no handler runs.
	if body, _, err := get(c.auditor, "127.0.0.1"); err == nil {
		t.Errorf("auditor got a response: %q", body)
	}
}

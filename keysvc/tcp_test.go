package keysvc_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/nodetls"
	"github.com/custos-eu/custos/raft/rafttest"
)

// tcpCluster runs n nodes on loopback: raft over TCP inside mutual TLS with
// certificates from a fresh cluster CA, bbolt with fsync, fake HSMs, and the
// nodes' own peer channel on the raft listener.
type tcpCluster struct {
	ca    *identity.CA
	pool  *x509.CertPool
	nodes []*keysvc.Node
	certs []tls.Certificate // each node's certificate, with its HSM key
}

// issue is a client certificate and its key.
func issue(tb testing.TB, ca *identity.CA, id identity.Identity) tls.Certificate {
	tb.Helper()
	certPEM, keyPEM, err := ca.Issue(id, identity.IssueOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

// nodeCert is the certificate of node id for its TLS key in tok, issued
// from the node's CSR as in production: no key leaves the token.
func nodeCert(tb testing.TB, ca *identity.CA, tok hsm.Token, id identity.Identity) tls.Certificate {
	tb.Helper()
	signer, err := nodetls.TLSSigner(tok)
	if err != nil {
		tb.Fatal(err)
	}
	csr, err := identity.NewCSR(signer, id, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	certPEM, err := ca.IssueCSR(csr, identity.IssueOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{b.Bytes}, PrivateKey: signer, Leaf: leaf}
}

func newTCPCluster(tb testing.TB, n int, gc keysvc.GroupCommit) *tcpCluster {
	tb.Helper()
	ca, err := identity.NewCA("test", 0)
	if err != nil {
		tb.Fatal(err)
	}
	c := &tcpCluster{ca: ca, pool: x509.NewCertPool()}
	c.pool.AddCert(ca.Certificate())
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("n%d", i)
		region := keysvctest.Region(id)
		tok := hsmtest.NewFake()
		cert := nodeCert(tb, ca, tok, identity.Identity{Cluster: "test", Name: id, Role: identity.RoleNode, Region: region})
		c.certs = append(c.certs, cert)
		cfg := keysvc.Config{
			NodeID: id, Region: region, Cluster: "test",
			DataDir:        tb.TempDir(),
			RaftAdvertise:  "127.0.0.1:0",
			APIAdvertise:   keysvctest.APIAddr(id),
			Certificate:    cert,
			CAs:            c.pool,
			Token:          tok,
			AllowedRegions: []string{"DE", "FR", "NL"},
			GroupCommit:    gc,
			Logger:         rafttest.Logger(),
			Raft: keysvc.RaftTuning{
				HeartbeatTimeout:   500 * time.Millisecond,
				ElectionTimeout:    500 * time.Millisecond,
				LeaderLeaseTimeout: 500 * time.Millisecond,
				CommitTimeout:      5 * time.Millisecond,
				MaxAppendEntries:   256,
			},
		}
		node, err := keysvc.Open(cfg)
		if err != nil {
			tb.Fatalf("open %s: %v", id, err)
		}
		tb.Cleanup(func() { node.Close() })
		// Forwarding goes over the real peer channel (the raft listener's
		// custos-peer/1 ALPN), which Open sets up.
		c.nodes = append(c.nodes, node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.nodes[0].Bootstrap(ctx); err != nil {
		tb.Fatalf("bootstrap: %v", err)
	}
	for _, node := range c.nodes[1:] {
		if err := c.nodes[0].AddNode(ctx, node.Info(), keysvctest.Operator); err != nil {
			tb.Fatalf("add %s: %v", node.Info().ID, err)
		}
	}
	keysvctest.WaitFor(tb, "nodes ready", func() bool {
		for _, node := range c.nodes {
			if node.Ready() != nil {
				return false
			}
		}
		return true
	})
	return c
}

func TestTCPCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("TCP cluster")
	}
	c := newTCPCluster(t, 3, keysvc.GroupCommit{})
	leader := c.nodes[0]
	got := appendAll(t, c.nodes, ids("tcp", 30))
	keysvctest.WaitFor(t, "logs to converge", func() bool {
		want, _ := leader.TreeHead()
		for _, n := range c.nodes {
			if h, _ := n.TreeHead(); h != want {
				return false
			}
		}
		return true
	})
	for _, n := range c.nodes {
		checkLogged(t, n, got)
	}
	// Followers' appends reached the leader over the peer channel.
	if f := c.nodes[1].Metrics().Forwarded + c.nodes[2].Metrics().Forwarded; f == 0 {
		t.Error("no entry was forwarded over the peer channel")
	}
	note, err := leader.Checkpoint(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if cp, _ := verifyCheckpoint(t, c.nodes[2], note); cp.Size != 4+30 {
		t.Fatalf("checkpoint size %d", cp.Size)
	}

	// A certificate from the cluster CA that is not a node's cannot talk raft.
	agent := issue(t, c.ca, identity.Identity{Cluster: "test", Name: "backup", Role: identity.RoleAgent, Region: "DE"})
	before := leader.Status().Raft.TLSRejected
	conn, err := tls.Dial("tcp", leader.Info().RaftAddr, &tls.Config{
		Certificates: []tls.Certificate{agent}, RootCAs: c.pool, ServerName: "127.0.0.1",
		NextProtos: []string{"custos-raft/1"}, MinVersion: tls.VersionTLS13,
	})
	if err == nil {
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1)) // TLS 1.3: the server's verdict arrives after the handshake
		conn.Close()
	}
	if err == nil {
		t.Fatal("agent certificate accepted on the raft port")
	}
	keysvctest.WaitFor(t, "the refusal to be counted", func() bool { return leader.Status().Raft.TLSRejected > before })

	// Members are all voters with their TCP addresses.
	for _, m := range leader.Status().Members {
		if !m.Voter || !m.Registered {
			t.Errorf("member %+v", m)
		}
		if _, _, err := net.SplitHostPort(m.RaftAddr); err != nil {
			t.Errorf("member %s raft address %q", m.ID, m.RaftAddr)
		}
	}
}

func TestOpenChecksCertificateIdentity(t *testing.T) {
	ca, err := identity.NewCA("test", 0)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	base := keysvc.Config{
		NodeID: "n1", Region: "DE", Cluster: "test", DataDir: t.TempDir(),
		RaftAdvertise: "127.0.0.1:0", APIAdvertise: "https://127.0.0.1:8201",
		CAs: pool, Token: hsmtest.NewFake(),
	}
	for name, id := range map[string]identity.Identity{
		"other node":   {Cluster: "test", Name: "n2", Role: identity.RoleNode, Region: "DE"},
		"other region": {Cluster: "test", Name: "n1", Role: identity.RoleNode, Region: "FR"},
	} {
		cfg := base
		cfg.Certificate = nodeCert(t, ca, cfg.Token, id)
		n, err := keysvc.Open(cfg)
		if err == nil {
			n.Close()
			t.Fatalf("%s: Open accepted certificate of %s", name, id)
		}
		t.Logf("%s: %v", name, err)
	}
	cfg := base
	cfg.Region = "de"
	cfg.Certificate = nodeCert(t, ca, cfg.Token, identity.Identity{Cluster: "test", Name: "n1", Role: identity.RoleNode, Region: "DE"})
	if _, err := keysvc.Open(cfg); err == nil {
		t.Error("lower-case region accepted")
	}
	cfg.Region = "DE"
	cfg.APIAdvertise = "http://127.0.0.1:8201"
	if _, err := keysvc.Open(cfg); err == nil {
		t.Error("plain-http API address accepted")
	}
	var zero keysvc.Config
	if err := zero.Validate(); err == nil {
		t.Error("zero config valid")
	}
}

// TestRaftPortRefusesNonMembers: the raft port (both its ALPNs) accepts a
// node certificate of the cluster CA only if it names a current member and
// is the certificate registered for it, and refuses it once the node is
// removed. A minted certificate for a
// non-member id, and a second certificate for a member's id, are refused at
// the handshake; the log is unchanged afterwards.
func TestRaftPortRefusesNonMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("TCP cluster")
	}
	c := newTCPCluster(t, 3, keysvc.GroupCommit{})
	before, _ := c.nodes[0].TreeHead()
	target := c.nodes[1].Info().RaftAddr
	dial := func(cert tls.Certificate, alpn string) error {
		conf := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: c.pool, ServerName: "localhost",
			NextProtos: []string{alpn}, MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", target, conf)
		if err != nil {
			return err
		}
		defer conn.Close()
		// TLS 1.3: the server's verdict on the client certificate arrives
		// with the first read.
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		return err
	}
	stranger := nodeCert(t, c.ca, hsmtest.NewFake(), identity.Identity{Cluster: "test", Name: "n9", Role: identity.RoleNode, Region: "DE"})
	twin := nodeCert(t, c.ca, hsmtest.NewFake(), identity.Identity{Cluster: "test", Name: "n3", Role: identity.RoleNode, Region: "NL"})
	for _, alpn := range []string{"custos-raft/1", "custos-peer/1"} {
		for name, cert := range map[string]tls.Certificate{"non-member n9": stranger, "second certificate for n3": twin} {
			if err := dial(cert, alpn); err == nil || isTimeout(err) {
				t.Errorf("%s on %s: accepted (%v)", name, alpn, err)
			}
		}
	}
	after, _ := c.nodes[0].TreeHead()
	if after.Size != before.Size || after.Hash != before.Hash {
		t.Errorf("log changed: %+v -> %+v", before, after)
	}
	// n3's own certificate works while it is a member, and is refused on
	// both ALPNs once it is removed (its identity is revoked with it).
	if err := dial(c.certs[2], "custos-peer/1"); err == nil || !isTimeout(err) {
		t.Errorf("member n3 on the peer channel: %v, want an open connection", err)
	}
	if err := c.nodes[0].RemoveNode(ctxT(t, 10*time.Second), "n3", keysvctest.Operator); err != nil {
		t.Fatal(err)
	}
	keysvctest.WaitFor(t, "n2 to apply the removal", func() bool { return !c.nodes[1].IsMember("n3") })
	for _, alpn := range []string{"custos-raft/1", "custos-peer/1"} {
		if err := dial(c.certs[2], alpn); err == nil || isTimeout(err) {
			t.Errorf("removed n3 on %s: accepted (%v)", alpn, err)
		}
	}
	if st := c.nodes[1].Status(); st.Raft.TLSRejected == 0 {
		t.Errorf("refused handshakes not counted: %+v", st.Raft)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

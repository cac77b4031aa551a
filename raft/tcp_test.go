// Real TCP and mutual TLS on loopback: certificates from an in-test CA, a cluster that
// loses its leader and restarts from disk, and peers that must be refused.

package raft_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/testlog"
	"github.com/custos-eu/custos/internal/testwait"
	"github.com/custos-eu/custos/raft"
	"github.com/custos-eu/custos/raft/rafttest"
)

// testCA issues ECDSA P-256 certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(tb testing.TB, name string) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a certificate for cn with organisational unit role, valid for 127.0.0.1
// and localhost, for both server and client authentication.
func (ca *testCA) issue(tb testing.TB, cn, role string) tls.Certificate {
	tb.Helper()
	return ca.issueFor(tb, cn, role, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
}

// issueFor is issue with the given extended key usages.
func (ca *testCA) issueFor(tb testing.TB, cn, role string, usages ...x509.ExtKeyUsage) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, OrganizationalUnit: []string{role}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// requireNodeRole is the VerifyPeer hook of the test clusters: only "node" certificates.
func requireNodeRole(c *x509.Certificate) error {
	if !slices.Contains(c.Subject.OrganizationalUnit, "node") {
		return fmt.Errorf("certificate %q is not a node certificate", c.Subject.CommonName)
	}
	return nil
}

// nodeID is the PeerID hook of the test clusters: a node certificate's common name.
func nodeID(c *x509.Certificate) (string, error) {
	if c.Subject.CommonName == "" {
		return "", errors.New("no common name")
	}
	return c.Subject.CommonName, nil
}

type tcpNode struct {
	id, dir, addr string
	node          *raft.Node
	chain         *rafttest.Chain
}

// tcpCluster is a set of nodes on loopback with mutual TLS and bbolt storage.
type tcpCluster struct {
	tb        testing.TB
	ca        *testCA
	configure func(*raft.Config) // adjusts each node's configuration, if set
	// wrap, if set, gives the state machine a node is started with, around its chain.
	wrap  func(id string, ch *rafttest.Chain) raft.StateMachine
	mu    sync.Mutex
	nodes []*tcpNode
}

func tcpConfig(id, dir, addr string, cert tls.Certificate, ca *testCA) raft.Config {
	return raft.Config{
		ID:                 id,
		Addr:               addr,
		DataDir:            dir,
		Certificate:        cert,
		CAs:                ca.pool,
		VerifyPeer:         requireNodeRole,
		PeerID:             nodeID,
		Logger:             rafttest.Logger(),
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
	}
}

// newTCPCluster opens n nodes on random loopback ports, bootstraps them from the first
// and waits for a leader.
func newTCPCluster(tb testing.TB, n int) *tcpCluster {
	tb.Helper()
	return newTCPClusterWith(tb, n, nil)
}

// newTCPClusterWith is newTCPCluster with configure applied to each node's configuration.
func newTCPClusterWith(tb testing.TB, n int, configure func(*raft.Config)) *tcpCluster {
	tb.Helper()
	c := &tcpCluster{tb: tb, ca: newCA(tb, "custos test cluster CA"), configure: configure}
	tb.Cleanup(func() {
		for _, tn := range c.running() {
			tn.node.Shutdown()
		}
	})
	var servers []raft.Server
	for i := 1; i <= n; i++ {
		tn := &tcpNode{id: fmt.Sprintf("n%d", i), dir: tb.TempDir(), addr: "127.0.0.1:0"}
		c.nodes = append(c.nodes, tn)
		c.start(tn)
		servers = append(servers, raft.Server{ID: tn.id, Addr: tn.addr})
	}
	if err := c.nodes[0].node.Bootstrap(servers); err != nil {
		tb.Fatalf("bootstrap: %v", err)
	}
	c.leader()
	return c
}

// start opens tn (again) from its data dir with a fresh state machine, on its address.
func (c *tcpCluster) start(tn *tcpNode) {
	c.tb.Helper()
	chain := rafttest.NewChain()
	cfg := tcpConfig(tn.id, tn.dir, tn.addr, c.ca.issue(c.tb, tn.id, "node"), c.ca)
	if c.configure != nil {
		c.configure(&cfg)
	}
	var sm raft.StateMachine = chain
	if c.wrap != nil {
		sm = c.wrap(tn.id, chain)
	}
	node, err := raft.Open(cfg, sm)
	if err != nil {
		c.tb.Fatalf("open %s: %v", tn.id, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tn.node, tn.chain, tn.addr = node, chain, node.Addr()
}

func (c *tcpCluster) stop(tn *tcpNode) {
	c.tb.Helper()
	c.mu.Lock()
	node := tn.node
	tn.node = nil
	c.mu.Unlock()
	if err := node.Shutdown(); err != nil {
		c.tb.Errorf("shutdown %s: %v", tn.id, err)
	}
}

func (c *tcpCluster) running() []*tcpNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tcpNode
	for _, tn := range c.nodes {
		if tn.node != nil {
			out = append(out, tn)
		}
	}
	return out
}

// leader waits for exactly one running leader that every running node agrees on.
func (c *tcpCluster) leader() *tcpNode {
	c.tb.Helper()
	return testwait.Leader(c.tb, rafttest.WaitTimeout, c.running, func(tn *tcpNode) testwait.View {
		id, _ := tn.node.Leader()
		if id == "" {
			id = "(none)" // not yet agreeing: here every node must know the leader
		}
		return testwait.View{ID: tn.id, IsLeader: tn.node.IsLeader(), Leader: id}
	})
}

// apply proposes cmd on the leader, retrying while leadership changes.
func (c *tcpCluster) apply(cmd string) {
	c.tb.Helper()
	err := rafttest.Retry(func(ctx context.Context) error {
		_, err := c.leader().node.Apply(ctx, []byte(cmd))
		return err
	})
	if err != nil {
		c.tb.Fatalf("apply %q: %v", cmd, err)
	}
}

func (c *tcpCluster) waitHead(want [32]byte) {
	c.tb.Helper()
	rafttest.WaitFor(c.tb, "every running node to reach the head", func() bool {
		for _, tn := range c.running() {
			if tn.chain.Head() != want {
				return false
			}
		}
		return true
	})
}

func TestTCPCluster(t *testing.T) {
	c := newTCPCluster(t, 3)
	var cmds []string
	for i := range 20 {
		cmds = append(cmds, fmt.Sprintf("tcp-%d", i))
		c.apply(cmds[i])
	}
	c.waitHead(chainHead(cmds...))

	// A follower names the leader by its real address.
	old := c.leader()
	var follower *tcpNode
	for _, tn := range c.running() {
		if tn != old {
			follower = tn
		}
	}
	_, err := follower.node.Apply(ctxT(t, rafttest.WaitTimeout), []byte("x"))
	var nle *raft.NotLeaderError
	if !errors.As(err, &nle) || nle.LeaderID != old.id || nle.LeaderAddr != old.addr {
		t.Fatalf("follower Apply: %v, want NotLeaderError naming %s at %s", err, old.id, old.addr)
	}

	// Kill the leader: another is elected and Apply continues.
	lastIndex := old.node.Stats().LastLogIndex
	c.stop(old)
	if nl := c.leader(); nl == old {
		t.Fatal("stopped node still leader")
	}
	for i := range 10 {
		cmds = append(cmds, fmt.Sprintf("after-%d", i))
		c.apply(cmds[len(cmds)-1])
	}
	c.waitHead(chainHead(cmds...))

	// Restart it from its data dir: its log is there at once, and it catches up.
	c.start(old)
	if st := old.node.Stats(); st.LastLogIndex < lastIndex {
		t.Errorf("restarted %s: last log index %d, had %d", old.id, st.LastLogIndex, lastIndex)
	}
	c.waitHead(chainHead(cmds...))
	if got := old.chain.Len(); got != len(cmds) {
		t.Errorf("restarted %s has %d entries, want %d", old.id, got, len(cmds))
	}
}

// The whole cluster stops and starts again from its data dirs, with snapshots in them.
func TestTCPRestartFromDisk(t *testing.T) {
	c := newTCPCluster(t, 3)
	var cmds []string
	for i := range 10 {
		cmds = append(cmds, fmt.Sprintf("d-%d", i))
		c.apply(cmds[i])
	}
	c.waitHead(chainHead(cmds...))
	snapped := c.nodes[1]
	if err := snapped.node.Snapshot(ctxT(t, rafttest.WaitTimeout)); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	cmds = append(cmds, "after-snapshot")
	c.apply("after-snapshot")
	c.waitHead(chainHead(cmds...))
	for _, tn := range c.running() {
		c.stop(tn)
	}

	for _, tn := range c.nodes {
		c.start(tn)
	}
	if got := snapped.chain.Restores(); got != 1 || snapped.chain.Len() < 10 {
		t.Errorf("%s right after Open: %d restores, %d entries; want its snapshot restored", snapped.id, got, snapped.chain.Len())
	}
	if err := rafttest.Retry(func(ctx context.Context) error { return c.leader().node.Barrier(ctx) }); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	c.waitHead(chainHead(cmds...))
	if err := c.nodes[0].node.Bootstrap(nil); !errors.Is(err, raft.ErrBootstrapped) {
		t.Errorf("Bootstrap after restart: %v, want ErrBootstrapped", err)
	}
	c.apply("after-restart")
	c.waitHead(chainHead(append(cmds, "after-restart")...))
}

// probe dials addr with conf, completes the handshake and waits for the server's first
// word: nil if the server kept the connection open, the error if it refused it.
func probe(addr string, conf *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Under TLS 1.3 the server checks the client certificate after the client's
	// handshake ends; a refusal arrives as an alert on the first read.
	conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	if err == nil {
		return errors.New("unexpected data from server")
	}
	return err
}

func TestTCPRefusesStrangers(t *testing.T) {
	c := newTCPCluster(t, 3)
	c.apply("first")
	leader := c.leader()
	foreign := newCA(t, "some other CA")

	client := func(cert *tls.Certificate, mod func(*tls.Config)) *tls.Config {
		conf := &tls.Config{
			RootCAs:          c.ca.pool,
			ServerName:       "127.0.0.1",
			MinVersion:       tls.VersionTLS13,
			CurvePreferences: []tls.CurveID{tls.X25519MLKEM768},
			NextProtos:       []string{"custos-raft/1"},
		}
		if cert != nil {
			conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		if mod != nil {
			mod(conf)
		}
		return conf
	}
	nodeCert := c.ca.issue(t, "probe", "node")
	foreignCert := foreign.issue(t, "intruder", "node")
	agentCert := c.ca.issue(t, "backup-agent", "agent")

	// Positive control: a node certificate gets in, with TLS 1.3 and the hybrid group.
	conn, err := tls.Dial("tcp", leader.addr, client(&nodeCert, nil))
	if err != nil {
		t.Fatalf("node certificate refused: %v", err)
	}
	st := conn.ConnectionState()
	conn.Close()
	if st.Version != tls.VersionTLS13 || st.CurveID != tls.X25519MLKEM768 || st.NegotiatedProtocol != "custos-raft/1" {
		t.Errorf("negotiated version %#x, group %v, ALPN %q", st.Version, st.CurveID, st.NegotiatedProtocol)
	}
	if err := probe(leader.addr, client(&nodeCert, nil)); err != nil {
		t.Fatalf("probe with node certificate: %v", err)
	}

	for _, tc := range []struct {
		name string
		conf *tls.Config
	}{
		{"certificate from another CA", client(&foreignCert, nil)},
		{"no client certificate", client(nil, nil)},
		{"cluster CA but not a node certificate", client(&agentCert, nil)},
		{"classical key exchange only", client(&nodeCert, func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.X25519} })},
		{"TLS 1.2", client(&nodeCert, func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 })},
		{"other application protocol", client(&nodeCert, func(c *tls.Config) { c.NextProtos = []string{"h2"} })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := leader.node.Stats().TLSRejected
			if err := probe(leader.addr, tc.conf); err == nil {
				t.Fatal("connection accepted")
			} else {
				t.Logf("refused: %v", err)
			}
			rafttest.WaitFor(t, "the refusal to be counted", func() bool {
				return leader.node.Stats().TLSRejected > before
			})
		})
	}

	// A whole node with a foreign certificate: it campaigns to the cluster (its own
	// bootstrap names the members) and the leader adds it as a voter. Neither direction
	// gets through the handshake.
	rogueChain := rafttest.NewChain()
	rcfg := tcpConfig("rogue", t.TempDir(), "127.0.0.1:0", foreignCert, foreign)
	rcfg.VerifyPeer = nil
	rogue, err := raft.Open(rcfg, rogueChain)
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Shutdown()
	servers := []raft.Server{{ID: "rogue", Addr: rogue.Addr()}}
	for _, tn := range c.nodes {
		servers = append(servers, raft.Server{ID: tn.id, Addr: tn.addr})
	}
	if err := rogue.Bootstrap(servers); err != nil {
		t.Fatal(err)
	}
	rejected := func() (n uint64) {
		for _, tn := range c.running() {
			n += tn.node.Stats().TLSRejected
		}
		return n
	}
	before := rejected()
	// AddVoter commits: three of the four voters suffice.
	if err := rafttest.Retry(func(ctx context.Context) error { return c.leader().node.AddVoter(ctx, "rogue", rogue.Addr()) }); err != nil {
		t.Fatalf("AddVoter(rogue): %v", err)
	}
	var cmds = []string{"first"}
	for i := range 5 {
		cmds = append(cmds, fmt.Sprintf("r-%d", i))
		c.apply(cmds[len(cmds)-1])
	}
	c.waitHead(chainHead(cmds...))
	rafttest.WaitFor(t, "the rogue's votes and the leader's dials to be refused", func() bool {
		return rejected() > before && rogue.Stats().TLSRejected > 0
	})
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if rogueChain.Len() != 0 || rogue.Stats().CommitIndex != 0 {
			t.Fatalf("rogue received the log: %d entries, commit index %d", rogueChain.Len(), rogue.Stats().CommitIndex)
		}
		for _, tn := range c.running() {
			if id, _ := tn.node.Leader(); id == "rogue" {
				t.Fatalf("%s follows the rogue", tn.id)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := rafttest.Retry(func(ctx context.Context) error { return c.leader().node.RemoveServer(ctx, "rogue") }); err != nil {
		t.Fatalf("remove rogue: %v", err)
	}
	c.apply("after-rogue")
}

func TestTCPQuorumLoss(t *testing.T) {
	c := newTCPCluster(t, 3)
	c.apply("committed")
	leader := c.leader()
	for _, tn := range c.running() {
		if tn != leader {
			c.stop(tn)
		}
	}
	bound := 3 * time.Second
	start := time.Now()
	res, err := leader.node.Apply(ctxT(t, bound), []byte("uncommitted"))
	if err == nil {
		t.Fatalf("Apply with 2 of 3 nodes down succeeded (%x)", res)
	}
	if !errors.Is(err, raft.ErrLeadershipLost) && !errors.Is(err, raft.ErrNoQuorum) && !errors.Is(err, raft.ErrNotLeader) {
		t.Errorf("Apply: %v, want ErrLeadershipLost, ErrNoQuorum or ErrNotLeader", err)
	}
	if el := time.Since(start); el > bound+2*time.Second {
		t.Errorf("Apply returned after %v, bound was %v", el, bound)
	}
	t.Logf("Apply without quorum: %v", err)
	if _, err := leader.node.Apply(ctxT(t, time.Second), []byte("again")); !errors.Is(err, raft.ErrNoQuorum) {
		t.Errorf("second Apply: %v, want ErrNoQuorum", err)
	}
	if leader.chain.Contains([]byte("uncommitted")) || leader.chain.Contains([]byte("again")) {
		t.Error("uncommitted command reached the state machine")
	}
}

// Raft's own logs reach the configured slog handler.
func TestLogsThroughSlog(t *testing.T) {
	var buf testlog.Buffer
	c := newCA(t, "ca")
	cfg := tcpConfig("solo", t.TempDir(), "127.0.0.1:0", c.issue(t, "solo", "node"), c)
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := raft.Open(cfg, rafttest.NewChain())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Bootstrap(nil); err != nil {
		t.Fatal(err)
	}
	rafttest.WaitFor(t, "leadership", n.IsLeader)
	n.Shutdown()
	out := buf.String()
	for _, want := range []string{"logger=raft ", "election won", "cert_sha256="} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	der, _ := x509.MarshalECPrivateKey(cfg.Certificate.PrivateKey.(*ecdsa.PrivateKey))
	if strings.Contains(out, "PRIVATE") || bytes.Contains(buf.Bytes(), der) {
		t.Error("private key in logs")
	}
}

// Who may say what on the raft listener: RPCs bound to the certificate of their
// connection, snapshots only from voters, the peer channel beside raft, and peers whose
// connections are closed when they are no longer accepted.

package raft_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/custos-eu/custos/raft"
	"github.com/custos-eu/custos/raft/rafttest"
)

// clientTLS is a raft-node client configuration for cert speaking protocol proto.
func (c *tcpCluster) clientTLS(cert tls.Certificate, proto string) *tls.Config {
	return &tls.Config{
		RootCAs:          c.ca.pool,
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768},
		NextProtos:       []string{proto},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
	}
}

// dialStream is a hraft.StreamLayer that only dials, with a given TLS configuration: it
// lets a test speak raft's own wire format with any certificate and any claims.
type dialStream struct {
	ln   net.Listener
	conf *tls.Config
}

func (s dialStream) Accept() (net.Conn, error) { return s.ln.Accept() }
func (s dialStream) Close() error              { return s.ln.Close() }
func (s dialStream) Addr() net.Addr            { return s.ln.Addr() }
func (s dialStream) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), s.conf)
}

// rpcClient returns a raft NetworkTransport that presents cert on every connection.
func (c *tcpCluster) rpcClient(t *testing.T, cert tls.Certificate) *hraft.NetworkTransport {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trans := hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream:  dialStream{ln: ln, conf: c.clientTLS(cert, "custos-raft/1")},
		MaxPool: 1,
		Timeout: 5 * time.Second,
	})
	t.Cleanup(func() { trans.Close() })
	return trans
}

func header(id, addr string) hraft.RPCHeader {
	return hraft.RPCHeader{ProtocolVersion: hraft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(addr)}
}

// A member's certificate does not let it speak for another node: every RPC that claims
// another id, or another member's address, is dropped before raft sees it, and counted.
func TestTCPRPCBoundToCertificate(t *testing.T) {
	c := newTCPCluster(t, 3)
	c.apply("first")
	leader := c.leader()
	var victim, insider *tcpNode // two followers
	for _, tn := range c.running() {
		if tn == leader {
			continue
		}
		if victim == nil {
			victim = tn
		} else {
			insider = tn
		}
	}
	// The insider's key leaks: the attacker holds a valid member certificate.
	trans := c.rpcClient(t, c.ca.issue(t, insider.id, "node"))
	target := hraft.ServerAddress(victim.addr)

	// Control: claims that match the certificate reach raft and get an answer (a vote
	// refused, since the term is stale).
	var vresp hraft.RequestVoteResponse
	if err := trans.RequestVote(hraft.ServerID(victim.id), target, &hraft.RequestVoteRequest{
		RPCHeader: header(insider.id, insider.addr), Term: 1, Candidate: []byte(insider.addr),
	}, &vresp); err != nil {
		t.Fatalf("honest RequestVote: %v", err)
	}
	if vresp.Granted {
		t.Fatal("stale vote granted")
	}

	before := victim.node.Stats()
	forgedTerm := before.Term + 100
	forged := []*hraft.Log{{Index: before.LastLogIndex + 1, Term: forgedTerm, Type: hraft.LogCommand, Data: []byte("forged")}}
	rpcs := []struct {
		name string
		call func() error
	}{
		{"AppendEntries as the leader", func() error {
			var resp hraft.AppendEntriesResponse
			return trans.AppendEntries(hraft.ServerID(victim.id), target, &hraft.AppendEntriesRequest{
				RPCHeader: header(leader.id, leader.addr), Term: forgedTerm, Leader: []byte(leader.addr),
				PrevLogEntry: before.LastLogIndex, PrevLogTerm: before.Term,
				Entries: forged, LeaderCommitIndex: before.LastLogIndex + 1,
			}, &resp)
		}},
		{"heartbeat as the leader", func() error {
			var resp hraft.AppendEntriesResponse
			return trans.AppendEntries(hraft.ServerID(victim.id), target, &hraft.AppendEntriesRequest{
				RPCHeader: header(leader.id, leader.addr), Term: forgedTerm, Leader: []byte(leader.addr),
			}, &resp)
		}},
		{"RequestVote as the leader", func() error {
			var resp hraft.RequestVoteResponse
			return trans.RequestVote(hraft.ServerID(victim.id), target, &hraft.RequestVoteRequest{
				RPCHeader: header(leader.id, leader.addr), Term: forgedTerm, Candidate: []byte(leader.addr),
				LastLogIndex: before.LastLogIndex + 1000, LastLogTerm: forgedTerm,
			}, &resp)
		}},
		{"RequestPreVote as a stranger", func() error {
			var resp hraft.RequestPreVoteResponse
			return trans.RequestPreVote(hraft.ServerID(victim.id), target, &hraft.RequestPreVoteRequest{
				RPCHeader: header("n9", insider.addr), Term: forgedTerm,
			}, &resp)
		}},
		{"TimeoutNow as the leader", func() error {
			var resp hraft.TimeoutNowResponse
			return trans.TimeoutNow(hraft.ServerID(victim.id), target, &hraft.TimeoutNowRequest{
				RPCHeader: header(leader.id, leader.addr),
			}, &resp)
		}},
		{"own id with the leader's address", func() error {
			var resp hraft.AppendEntriesResponse
			return trans.AppendEntries(hraft.ServerID(victim.id), target, &hraft.AppendEntriesRequest{
				RPCHeader: header(insider.id, leader.addr), Term: forgedTerm, Leader: []byte(leader.addr),
			}, &resp)
		}},
		{"own id and address, another candidate address", func() error {
			var resp hraft.RequestVoteResponse
			return trans.RequestVote(hraft.ServerID(victim.id), target, &hraft.RequestVoteRequest{
				RPCHeader: header(insider.id, insider.addr), Term: forgedTerm, Candidate: []byte(leader.addr),
				LastLogIndex: before.LastLogIndex + 1000, LastLogTerm: forgedTerm,
			}, &resp)
		}},
		{"own id, address host not in the certificate", func() error {
			var resp hraft.RequestVoteResponse
			return trans.RequestVote(hraft.ServerID(victim.id), target, &hraft.RequestVoteRequest{
				RPCHeader: header(insider.id, "10.9.9.9:7000"), Term: forgedTerm,
				LastLogIndex: before.LastLogIndex + 1000, LastLogTerm: forgedTerm,
			}, &resp)
		}},
	}
	for i, rpc := range rpcs {
		err := rpc.call()
		if err == nil {
			t.Errorf("%s: answered, want the connection dropped", rpc.name)
		}
		if got := victim.node.Stats().RPCRejected; got != before.RPCRejected+uint64(i+1) {
			t.Errorf("%s: RPCRejected %d, want %d", rpc.name, got, before.RPCRejected+uint64(i+1))
		}
	}
	after := victim.node.Stats()
	if after.Term >= forgedTerm || victim.chain.Contains([]byte("forged")) {
		t.Fatalf("forged RPC reached raft: term %d (forged %d), chain %q", after.Term, forgedTerm, victim.chain.Entries())
	}
	if id, _ := victim.node.Leader(); id != leader.id {
		t.Errorf("victim follows %q, want %q", id, leader.id)
	}
	c.apply("second")
	c.waitHead(chainHead("first", "second"))
}

// A snapshot is installed only from a voter of the receiver's configuration; a snapshot
// sent through the check still arrives whole (the data after the request passes
// through), and a real lagging follower still catches up from one.
func TestTCPSnapshotOnlyFromVoters(t *testing.T) {
	c := newTCPClusterWith(t, 3, func(cfg *raft.Config) { cfg.TrailingLogs = 2 })
	c.apply("first")
	leader := c.leader()
	var victim *tcpNode
	for _, tn := range c.running() {
		if tn != leader {
			victim = tn
		}
	}
	snapshot := func(trans *hraft.NetworkTransport, id, addr string, term uint64) error {
		data := bytes.Repeat([]byte("s"), 300<<10) // more than one read buffer
		var resp hraft.InstallSnapshotResponse
		return trans.InstallSnapshot(hraft.ServerID(victim.id), hraft.ServerAddress(victim.addr), &hraft.InstallSnapshotRequest{
			RPCHeader: header(id, addr), SnapshotVersion: hraft.SnapshotVersionMax, Term: term, Leader: []byte(addr),
			LastLogIndex: 1 << 20, LastLogTerm: term, Size: int64(len(data)),
		}, &resp, bytes.NewReader(data))
	}
	before := victim.node.Stats()

	// n4 holds a good node certificate of the cluster CA but is no member.
	outsider := c.rpcClient(t, c.ca.issue(t, "n4", "node"))
	if err := snapshot(outsider, "n4", "127.0.0.1:7999", before.Term+10); err == nil {
		t.Fatal("snapshot from a non-voter answered")
	}
	st := victim.node.Stats()
	if st.SnapshotRefused != before.SnapshotRefused+1 || st.RPCRejected != before.RPCRejected+1 {
		t.Errorf("SnapshotRefused %d, RPCRejected %d; want one more of each", st.SnapshotRefused, st.RPCRejected)
	}
	if st.Term != before.Term || victim.chain.Restores() != 0 {
		t.Fatalf("refused snapshot reached raft: term %d→%d, %d restores", before.Term, st.Term, victim.chain.Restores())
	}

	// Control: the leader's certificate and claims pass the checks; raft answers (and
	// ignores the stale term) after reading all the data.
	fromLeader := c.rpcClient(t, c.ca.issue(t, leader.id, "node"))
	if err := snapshot(fromLeader, leader.id, leader.addr, 0); err != nil {
		t.Fatalf("stale snapshot from the leader: %v", err)
	}
	if got := victim.node.Stats().SnapshotRefused; got != st.SnapshotRefused {
		t.Errorf("voter's snapshot refused")
	}

	// A follower that misses entries the leader has compacted catches up from a
	// snapshot, through the checks.
	c.stop(victim)
	cmds := []string{"first"}
	for i := range 8 {
		cmds = append(cmds, fmt.Sprintf("s-%d", i))
		c.apply(cmds[len(cmds)-1])
	}
	if err := c.leader().node.Snapshot(ctxT(t, rafttest.WaitTimeout)); err != nil {
		t.Fatal(err)
	}
	cmds = append(cmds, "after-snapshot")
	c.apply("after-snapshot")
	c.start(victim)
	c.waitHead(chainHead(cmds...))
	if victim.chain.Restores() == 0 {
		t.Error("lagging follower caught up without a snapshot")
	}
	if got := victim.node.Stats().RPCRejected; got != 0 {
		t.Errorf("restarted follower refused %d RPCs from the cluster", got)
	}
}

// The peer channel: its own ALPN on the raft listener, the same verification, identities
// visible on both ends, and no crossing with raft.
func TestTCPPeerChannel(t *testing.T) {
	c := newTCPCluster(t, 3)
	n1, n2 := c.nodes[0], c.nodes[1]
	ln := n2.node.PeerListener()
	if ln.Addr().String() != n2.addr {
		t.Errorf("peer listener address %s, want %s", ln.Addr(), n2.addr)
	}
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- conn
		}
	}()
	next := func() net.Conn {
		t.Helper()
		select {
		case conn := <-accepted:
			return conn
		case <-time.After(rafttest.WaitTimeout):
			t.Fatal("no peer connection accepted")
			return nil
		}
	}

	// Raft connections (NetworkTransport's, and one made by hand) never reach it.
	c.apply("raft is busy")
	raw, err := tls.Dial("tcp", n2.addr, c.clientTLS(c.ca.issue(t, "n3", "node"), "custos-raft/1"))
	if err != nil {
		t.Fatalf("raft ALPN: %v", err)
	}
	defer raw.Close()
	if p := raw.ConnectionState().NegotiatedProtocol; p != "custos-raft/1" {
		t.Fatalf("negotiated %q", p)
	}
	select {
	case conn := <-accepted:
		t.Fatalf("raft connection from %s on the peer listener", conn.RemoteAddr())
	case <-time.After(300 * time.Millisecond):
	}

	// Round trip, identities on both ends.
	ctx := ctxT(t, rafttest.WaitTimeout)
	out, err := n1.node.DialPeer(ctx, n2.addr)
	if err != nil {
		t.Fatalf("DialPeer: %v", err)
	}
	defer out.Close()
	in := next().(*raft.PeerConn)
	defer in.Close()
	if out.PeerID != n2.id || in.PeerID != n1.id {
		t.Errorf("dialler sees %q, listener sees %q; want %q, %q", out.PeerID, in.PeerID, n2.id, n1.id)
	}
	for _, end := range []*raft.PeerConn{out, in} {
		cs := end.ConnectionState()
		if cs.Version != tls.VersionTLS13 || cs.CurveID != tls.X25519MLKEM768 || cs.NegotiatedProtocol != "custos-peer/1" {
			t.Errorf("negotiated %#x %v %q", cs.Version, cs.CurveID, cs.NegotiatedProtocol)
		}
		if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0] != end.Certificate {
			t.Error("Certificate is not the handshake's peer certificate")
		}
	}
	if _, err := out.Write([]byte("share please\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 13)
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "share please\n" {
		t.Fatalf("read %q, %v", buf, err)
	}
	in.Write([]byte("ok"))
	if _, err := io.ReadFull(out, buf[:2]); err != nil || string(buf[:2]) != "ok" {
		t.Fatalf("read back %q, %v", buf[:2], err)
	}
	if st := n2.node.Stats(); st.RPCRejected != 0 {
		t.Errorf("peer channel traffic reached raft: %d RPCs rejected", st.RPCRejected)
	}

	// A peer-channel connection made by hand arrives too (the control for the refusals).
	hand, err := tls.Dial("tcp", n2.addr, c.clientTLS(c.ca.issue(t, "n3", "node"), "custos-peer/1"))
	if err != nil {
		t.Fatal(err)
	}
	defer hand.Close()
	hand.Write([]byte("x"))
	if got := next().(*raft.PeerConn); got.PeerID != "n3" {
		t.Errorf("hand-made peer connection from %q", got.PeerID)
	} else {
		got.Close()
	}

	// A certificate of the CA that VerifyPeer refuses gets in on neither protocol.
	agent := c.ca.issue(t, "n3", "agent")
	for _, proto := range []string{"custos-raft/1", "custos-peer/1"} {
		before := n2.node.Stats().TLSRejected
		if err := probe(n2.addr, c.clientTLS(agent, proto)); err == nil {
			t.Errorf("%s: agent certificate accepted", proto)
		}
		rafttest.WaitFor(t, "the refusal to be counted", func() bool { return n2.node.Stats().TLSRejected > before })
	}
	select {
	case conn := <-accepted:
		t.Fatalf("refused connection from %s reached the peer listener", conn.RemoteAddr())
	case <-time.After(200 * time.Millisecond):
	}

	// Closing the peer listener leaves raft alone.
	ln.Close()
	if _, ok := <-accepted; ok {
		t.Fatal("connection after close")
	}
	c.apply("after close")
	c.waitHead(chainHead("raft is busy", "after close"))
}

// The dialler verifies the server as the server verifies it: a node whose VerifyPeer
// refuses the server's certificate cannot open a peer channel to it.
func TestTCPDialPeerVerifiesServer(t *testing.T) {
	c := newTCPCluster(t, 2)
	ca := c.ca
	cfg := tcpConfig("n3", t.TempDir(), "127.0.0.1:0", ca.issue(t, "n3", "node"), ca)
	cfg.VerifyPeer = func(cert *x509.Certificate) error {
		if cert.Subject.CommonName == "n2" {
			return errors.New("n2 was removed")
		}
		return nil
	}
	n3, err := raft.Open(cfg, rafttest.NewChain())
	if err != nil {
		t.Fatal(err)
	}
	defer n3.Shutdown()
	ctx := ctxT(t, rafttest.WaitTimeout)
	if conn, err := n3.DialPeer(ctx, c.nodes[1].addr); err == nil {
		conn.Close()
		t.Fatal("DialPeer to a refused server succeeded")
	} else if !strings.Contains(err.Error(), "n2 was removed") {
		t.Errorf("DialPeer: %v", err)
	}
	go func() { // the control's server end
		if conn, err := c.nodes[0].node.PeerListener().Accept(); err == nil {
			conn.Close()
		}
	}()
	conn, err := n3.DialPeer(ctx, c.nodes[0].addr)
	if err != nil {
		t.Fatalf("DialPeer to n1: %v", err)
	}
	conn.Close()
}

// DropPeer and ReverifyPeers close the established connections of a peer, raft and peer
// channel, and VerifyPeer keeps it out afterwards.
func TestTCPDropAndReverifyPeers(t *testing.T) {
	var (
		mu      sync.Mutex
		refused = map[string]bool{}
	)
	c := newTCPClusterWith(t, 3, func(cfg *raft.Config) {
		cfg.VerifyPeer = func(cert *x509.Certificate) error {
			if err := requireNodeRole(cert); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if refused[cert.Subject.CommonName] {
				return fmt.Errorf("%s is no longer a member", cert.Subject.CommonName)
			}
			return nil
		}
	})
	c.apply("first")
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	go func() {
		for {
			conn, err := n1.node.PeerListener().Accept()
			if err != nil {
				return
			}
			go io.Copy(conn, conn) // echo until closed
		}
	}()
	open := func(from *tcpNode) *raft.PeerConn {
		t.Helper()
		conn, err := from.node.DialPeer(ctxT(t, rafttest.WaitTimeout), n1.addr)
		if err != nil {
			t.Fatalf("DialPeer %s→n1: %v", from.id, err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.Write([]byte("x"))
		if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
			t.Fatalf("echo: %v", err)
		}
		return conn
	}
	closed := func(conn net.Conn) bool {
		conn.SetReadDeadline(time.Now().Add(rafttest.WaitTimeout))
		_, err := conn.Read(make([]byte, 1))
		return err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded)
	}

	// DropPeer: n1 closes everything it has with n2; n2 reconnects (it is still accepted).
	p2 := open(n2)
	if got := n1.node.DropPeer(n2.id); got < 2 {
		t.Errorf("DropPeer(n2) closed %d connections, want the peer channel and raft's", got)
	}
	if !closed(p2) {
		t.Error("n2's peer connection still open after DropPeer")
	}
	if got := n1.node.DropPeer("n9"); got != 0 {
		t.Errorf("DropPeer(unknown) closed %d", got)
	}
	c.apply("after drop")
	c.waitHead(chainHead("first", "after drop"))

	// ReverifyPeers: n3 is refused from now on; n1 closes n3's connections and keeps n2's.
	p2 = open(n2)
	p3 := open(n3)
	mu.Lock()
	refused[n3.id] = true
	mu.Unlock()
	if got := n1.node.ReverifyPeers(); got < 1 {
		t.Errorf("ReverifyPeers closed %d connections", got)
	}
	if !closed(p3) {
		t.Error("n3's peer connection still open after ReverifyPeers")
	}
	p2.Write([]byte("y"))
	if _, err := io.ReadFull(p2, make([]byte, 1)); err != nil {
		t.Errorf("n2's peer connection closed by ReverifyPeers: %v", err)
	}
	// Under TLS 1.3 the server's refusal of a client certificate arrives at the
	// client's first read.
	if conn, err := n3.node.DialPeer(ctxT(t, rafttest.WaitTimeout), n1.addr); err == nil {
		defer conn.Close()
		conn.Write([]byte("z"))
		if !closed(conn) {
			t.Error("refused n3 opened a new peer connection")
		}
	}
}

// Idle TCP connections against the raft listener: they must not keep a legitimate
// peer's handshake out.

package raft_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/custos-eu/custos/raft"
	"github.com/custos-eu/custos/raft/rafttest"
)

// floodConns is the size of the idle flood: more than the listener's 64 handshake slots.
const floodConns = 100

// idleFlood opens n TCP connections from the loopback address from to addr and sends
// nothing on them. It returns those still open when their dial returned, and how many
// the server had already reset by then.
func idleFlood(t *testing.T, from, addr string, n int) (conns []net.Conn, reset int) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	for range n {
		c, err := d.Dial("tcp", addr)
		if errors.Is(err, syscall.ECONNRESET) {
			reset++
			continue
		}
		if err != nil {
			t.Fatalf("flood dial from %s: %v", from, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns, reset
}

// closedByServer waits, up to a safety bound, for each of conns to be closed by the
// server (EOF or reset, not our own deadline).
func closedByServer(t *testing.T, conns []net.Conn) {
	t.Helper()
	bound := time.Now().Add(30 * time.Second)
	for _, c := range conns {
		c.SetReadDeadline(bound)
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("idle connection %v not closed by the server: %v", c.LocalAddr(), err)
		}
	}
}

// peerHandshake has peer open a peer-channel connection to server until server's peer
// listener accepts one (its handshake done on both sides), and returns how long that
// took and how many attempts it needed. Attempts refused at accept are retried after
// 50 ms, as a node redials.
func peerHandshake(t *testing.T, peer, server *raft.Node) (time.Duration, int) {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := server.PeerListener().Accept()
		if err == nil {
			accepted <- c
		}
	}()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for attempt := 1; ; attempt++ {
		pc, err := peer.DialPeer(ctx, server.Addr())
		if err == nil {
			defer pc.Close()
			select {
			case c := <-accepted:
				c.Close()
				return time.Since(start), attempt
			case <-ctx.Done():
				t.Fatalf("peer connection never accepted: %v", ctx.Err())
			}
		}
		if attempt == 1 {
			t.Logf("first attempt refused: %v", err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("no peer connection: %v", err)
		}
	}
}

// A legitimate peer's handshake completes within 2 s while 100 idle TCP connections
// (more than the 64 handshake slots) sit on the listener, and the server closes every
// idle connection.
//
// From another address, the idle connections take at most MaxHandshakesPerIP slots;
// the rest are closed at once, and the peer gets a slot at its first attempt. From the
// peer's own address, they take that address's whole cap: the peer is refused until
// they have been closed, FirstBytesTimeout after they were accepted, then gets in. An
// attacker on the peer's own address who keeps renewing idle connections keeps it out:
// openTCPNode opens node id on loopback TCP with a certificate from ca; it
// shuts down when the test ends.
func openTCPNode(t *testing.T, ca *testCA, id string) *raft.Node {
	t.Helper()
	n, err := raft.Open(tcpConfig(id, t.TempDir(), "127.0.0.1:0", ca.issue(t, id, "node"), ca), rafttest.NewChain())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown() })
	return n
}

// the cap is per address, and nodes are meant to have their own.
func TestHandshakeDuringIdleFlood(t *testing.T) {
	for _, tc := range []struct {
		name, from string
	}{
		{"flood from another address", "127.0.0.2"},
		{"flood from the peer's address", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := newCA(t, "flood CA")
			server, peer := openTCPNode(t, ca, "server"), openTCPNode(t, ca, "peer")

			// A control handshake first (certificates, listener, code paths warm).
			quiet, _ := peerHandshake(t, peer, server)
			idle, reset := idleFlood(t, tc.from, server.Addr(), floodConns)
			took, attempts := peerHandshake(t, peer, server)
			t.Logf("legitimate peer handshake: %v without a flood; %v (%d attempts) during %d idle connections from %s (%d reset while connecting)",
				quiet, took, attempts, floodConns, tc.from, reset)
			if took > 2*time.Second {
				t.Errorf("peer handshake took %v during the flood, want at most 2s", took)
			}
			closedByServer(t, idle)
			// Every idle connection is counted: all but the cap's 4 at accept, those 4
			// when their first-bytes deadline passed (the count follows the close).
			rafttest.WaitFor(t, "every idle connection counted as refused", func() bool {
				st := server.Stats()
				return st.TLSOverIPCap >= floodConns-4 && st.TLSRejected >= floodConns
			})
			st := server.Stats()
			t.Logf("server: TLSRejected %d, TLSOverIPCap %d", st.TLSRejected, st.TLSOverIPCap)
		})
	}
}

// A burst of a node's own connections to a peer (64 peer-channel dials at once, as a
// busy node's connection pool may open) stays within the peer's per-address cap: the
// node keeps at most 1 handshake in flight to one address, so none is refused.
func TestDialBurstWithinPeerCap(t *testing.T) {
	ca := newCA(t, "burst CA")
	server, peer := openTCPNode(t, ca, "server"), openTCPNode(t, ca, "peer")
	const burst = 64
	accepted := make(chan struct{}, burst)
	go func() {
		for {
			c, err := server.PeerListener().Accept()
			if err != nil {
				return
			}
			c.Close()
			accepted <- struct{}{}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errs := make(chan error, burst)
	for range burst {
		go func() {
			pc, err := peer.DialPeer(ctx, server.Addr())
			if err == nil {
				pc.Close()
			}
			errs <- err // a connection over the cap is closed before the handshake
		}()
	}
	for range burst {
		if err := <-errs; err != nil {
			t.Errorf("dial in the burst: %v", err)
		}
	}
	for range burst {
		select {
		case <-accepted:
		case <-ctx.Done():
			t.Fatal("not every connection of the burst reached the server's peer listener")
		}
	}
	if st := server.Stats(); st.TLSOverIPCap != 0 || st.TLSRejected != 0 {
		t.Errorf("server refused %d connections (%d over the per-address cap) of its peer's burst", st.TLSRejected, st.TLSOverIPCap)
	}
}

// The raft listener: TCP inside mutual TLS 1.3 with the hybrid post-quantum key exchange,
// where both ends present and verify certificates from the cluster CA. One listener
// serves two application protocols, told apart by ALPN: raft itself, and the peer
// channel that the node's owner uses for its own node-to-node traffic. Before a
// handshake takes one of the listener's slots, its address must be under its cap; an
// idle connection gives its slot back after Config.FirstBytesTimeout.

package raft

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/custos-eu/custos/internal/connlimit"
)

// ALPN protocol names. A certificate from the same CA used for another Custos protocol
// (the HTTP API) cannot be replayed against raft, a raft peer never talks to another
// service by mistake, and raft and peer-channel connections never cross.
const (
	alpnRaft = "custos-raft/1"
	alpnPeer = "custos-peer/1"
)

// maxHandshakes bounds inbound TLS handshakes in progress; more connections wait in the
// kernel's accept queue. A slot is freed as soon as its handshake ends. One IP address
// holds at most Config.MaxHandshakesPerIP of them.
const maxHandshakes = 64

// maxDialsPerAddr bounds this node's own outbound handshakes in flight to one address,
// so that its bursts of new connections stay within a peer's per-address cap (default
// 4). One, not more: under TLS 1.3 the dialler's handshake ends before the peer's
// (which still checks the client certificate), so the peer may count a few of a
// dialler's handshakes at once; with 2 in flight, bursts of 64 dials met a cap of 4.
const maxDialsPerAddr = 1

// recordHandshake is the first byte of a TLS handshake record, which a ClientHello opens.
const recordHandshake = 0x16

// tlsConfigs returns the server configuration (both protocols) and the client
// configurations for raft and for the peer channel: TLS 1.3 only, X25519MLKEM768 only,
// certificates required and verified against cfg.CAs both ways, then cfg.VerifyPeer and
// cfg.PeerID. No session resumption: every connection runs the full verification.
func tlsConfigs(cfg Config) (server, raftClient, peerClient *tls.Config) {
	cert := cfg.Certificate
	verify := func(protos ...string) func(cs tls.ConnectionState) error {
		return func(cs tls.ConnectionState) error {
			switch {
			case cs.Version != tls.VersionTLS13:
				return fmt.Errorf("raft tls: version %#x, want TLS 1.3", cs.Version)
			case cs.CurveID != tls.X25519MLKEM768:
				return fmt.Errorf("raft tls: key exchange %v, want X25519MLKEM768", cs.CurveID)
			case !slices.Contains(protos, cs.NegotiatedProtocol):
				return fmt.Errorf("raft tls: application protocol %q, want one of %q", cs.NegotiatedProtocol, protos)
			case len(cs.PeerCertificates) == 0:
				return errors.New("raft tls: peer sent no certificate")
			}
			_, err := cfg.checkPeer(cs.PeerCertificates[0])
			return err
		}
	}
	base := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		CurvePreferences:       []tls.CurveID{tls.X25519MLKEM768},
		SessionTicketsDisabled: true,
	}
	server = base.Clone()
	server.NextProtos = []string{alpnRaft, alpnPeer}
	server.VerifyConnection = verify(alpnRaft, alpnPeer)
	server.Certificates = []tls.Certificate{cert}
	server.ClientAuth = tls.RequireAndVerifyClientCert
	server.ClientCAs = cfg.CAs

	client := base.Clone()
	client.RootCAs = cfg.CAs
	// Always present the node certificate, so a mismatch is refused, and logged, by the
	// server rather than silently sending none.
	client.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &cert, nil
	}
	raftClient = client.Clone()
	raftClient.NextProtos = []string{alpnRaft}
	raftClient.VerifyConnection = verify(alpnRaft)
	peerClient = client.Clone()
	peerClient.NextProtos = []string{alpnPeer}
	peerClient.VerifyConnection = verify(alpnPeer)
	return server, raftClient, peerClient
}

// checkPeer runs VerifyPeer on a peer's leaf certificate (its chain already verified) and
// returns the node id PeerID finds in it ("" without PeerID).
func (c Config) checkPeer(leaf *x509.Certificate) (string, error) {
	if c.VerifyPeer != nil {
		if err := c.VerifyPeer(leaf); err != nil {
			return "", fmt.Errorf("raft tls: peer %q refused: %w", leaf.Subject, err)
		}
	}
	if c.PeerID == nil {
		return "", nil
	}
	id, err := c.PeerID(leaf)
	if err == nil && id == "" {
		err = errors.New("empty node id")
	}
	if err != nil {
		return "", fmt.Errorf("raft tls: peer %q has no node id: %w", leaf.Subject, err)
	}
	return id, nil
}

// advertiseAddr is the address peers dial, kept as written (a DNS name stays a name, so
// peers verify it against the certificate's DNS names).
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// tlsStream implements hraft.StreamLayer for raft connections and feeds the peer
// listener. Accept hands out only raft connections whose TLS handshake succeeded, with
// their RPCs checked by an rpcFilter; handshakes run off the accept loop, bounded in
// number (in all and per address) and time (to the first byte, then in all).
type tlsStream struct {
	cfg        Config
	ln         net.Listener
	advertise  net.Addr
	server     *tls.Config
	raftClient *tls.Config
	peerClient *tls.Config
	timeout    time.Duration // handshake bound, from its first byte
	firstBytes time.Duration // bound from accept to the handshake's first byte
	log        *slog.Logger
	links      *linkSet
	peers      *peerListener
	guard      *rpcGuard

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	conns  chan net.Conn
	sem    chan struct{}
	perIP  *connlimit.Counter // inbound handshakes in progress per address
	dials  dialLimit          // outbound handshakes in flight per address
	wg     sync.WaitGroup
	once   sync.Once

	rejected atomic.Uint64 // inbound handshakes refused or failed, over the cap included
}

func newTLSStream(cfg Config, links *linkSet, guard *rpcGuard) (*tlsStream, error) {
	bind := cfg.Addr
	if cfg.BindAddr != "" {
		bind = cfg.BindAddr
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raft: listen %s: %w", bind, err)
	}
	adv := advertiseAddr(cfg.Addr)
	if cfg.BindAddr == "" {
		// Addr may have asked for port 0: advertise the port actually bound.
		host, _, _ := net.SplitHostPort(cfg.Addr)
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		adv = advertiseAddr(net.JoinHostPort(host, port))
	}
	server, raftClient, peerClient := tlsConfigs(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	s := &tlsStream{
		cfg:        cfg,
		ln:         ln,
		advertise:  adv,
		server:     server,
		raftClient: raftClient,
		peerClient: peerClient,
		timeout:    cfg.RPCTimeout,
		firstBytes: cfg.FirstBytesTimeout,
		log:        cfg.Logger,
		links:      links,
		peers:      newPeerListener(adv),
		guard:      guard,
		ctx:        ctx,
		cancel:     cancel,
		conns:      make(chan net.Conn),
		sem:        make(chan struct{}, maxHandshakes),
		perIP:      connlimit.NewCounter(cfg.MaxHandshakesPerIP),
		dials:      dialLimit{max: maxDialsPerAddr},
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *tlsStream) acceptLoop() {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("raft: accept failed", "err", err)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		// An address at its cap loses this connection, not the others their turn: the
		// loop waits only for a slot, and one address holds few of them.
		release, ok := s.perIP.Acquire(raw.RemoteAddr())
		if !ok {
			connlimit.Refuse(raw)
			s.rejected.Add(1)
			s.log.Debug("raft: refused connection: its address is at its handshake cap",
				"remote", raw.RemoteAddr().String(), "cap", s.cfg.MaxHandshakesPerIP)
			continue
		}
		select {
		case s.sem <- struct{}{}:
		case <-s.ctx.Done():
			release()
			raw.Close()
			return
		}
		s.wg.Add(1)
		go s.handshake(raw, release)
	}
}

// handshake runs the server side of the TLS handshake on raw, then hands the connection
// to raft or to the peer listener according to the negotiated protocol. release frees
// raw's place under its address's cap.
func (s *tlsStream) handshake(raw net.Conn, release func()) {
	defer s.wg.Done()
	started, err := s.awaitFirstByte(raw)
	var conn *tls.Conn
	if err == nil {
		conn = tls.Server(started, s.server)
		ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
		err = conn.HandshakeContext(ctx)
		cancel()
	}
	release()
	<-s.sem // the slot bounds handshakes, not connections waiting to be taken
	if err != nil {
		raw.Close()
		if s.ctx.Err() == nil {
			s.rejected.Add(1)
			s.log.Warn("raft: refused connection", "remote", raw.RemoteAddr().String(), "err", err)
		}
		return
	}
	cs := conn.ConnectionState()
	l, err := s.link(conn, cs)
	if err != nil { // VerifyConnection already passed; only a PeerID that changed its mind
		conn.Close()
		s.rejected.Add(1)
		s.log.Warn("raft: refused connection", "remote", raw.RemoteAddr().String(), "err", err)
		return
	}
	switch cs.NegotiatedProtocol {
	case alpnRaft:
		select {
		case s.conns <- newRPCFilter(l, s.guard):
		case <-s.ctx.Done():
			l.Close()
		}
	case alpnPeer:
		if !s.peers.deliver(&PeerConn{Conn: l, tlsConn: conn, PeerID: l.id, Certificate: l.leaf}) {
			s.log.Warn("raft: peer channel connection dropped: peer listener closed or full",
				"remote", raw.RemoteAddr().String(), "peer", l.id)
			l.Close()
		}
	default: // unreachable: VerifyConnection allows only the two
		l.Close()
	}
}

// awaitFirstByte waits up to firstBytes for raw's first byte, which must open a TLS
// handshake record, and returns raw with that byte put back in front. Close
// interrupts the wait.
func (s *tlsStream) awaitFirstByte(raw net.Conn) (net.Conn, error) {
	if err := raw.SetReadDeadline(time.Now().Add(s.firstBytes)); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(s.ctx, func() { _ = raw.SetReadDeadline(time.Now()) })
	var b [1]byte
	_, err := io.ReadFull(raw, b[:])
	stop()
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, fmt.Errorf("no TLS handshake begun within %s", s.firstBytes)
	case err != nil:
		return nil, fmt.Errorf("before the TLS handshake: %w", err)
	case b[0] != recordHandshake:
		return nil, fmt.Errorf("not a TLS handshake (first byte %#x)", b[0])
	}
	if err := raw.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return &prefixConn{Conn: raw, prefix: b[:]}, nil
}

// prefixConn reads prefix before the connection's own bytes. Like tls.Conn, which
// wraps it, it is read by one goroutine at a time.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// link registers an established TLS connection under its peer's identity.
func (s *tlsStream) link(conn *tls.Conn, cs tls.ConnectionState) (*link, error) {
	leaf := cs.PeerCertificates[0]
	id, err := s.cfg.checkPeer(leaf)
	if err != nil {
		return nil, err
	}
	return s.links.add(conn, id, leaf), nil
}

// Accept returns the next inbound raft connection that completed the mutual TLS
// handshake.
func (s *tlsStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops listening, waits for handshakes in progress to end, closes the peer
// listener and every connection still open. Idempotent.
func (s *tlsStream) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		err = s.ln.Close()
		s.wg.Wait()
		s.peers.Close()
		s.links.closeIf(func(*link) bool { return true })
	})
	return err
}

// Addr returns the advertised address.
func (s *tlsStream) Addr() net.Addr { return s.advertise }

// Dial connects to a peer for raft and completes the TLS handshake within timeout. The
// peer's certificate must chain to the cluster CA, name the dialled host and pass
// VerifyPeer.
func (s *tlsStream) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	conn, err := s.dial(ctx, string(addr), s.raftClient)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// dial dials addr with conf and registers the connection. At most maxDialsPerAddr
// handshakes to one address are in flight; more wait, within ctx.
func (s *tlsStream) dial(ctx context.Context, addr string, conf *tls.Config) (*link, error) {
	done, err := s.dials.wait(ctx, addr)
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: conf}
	c, err := d.DialContext(ctx, "tcp", addr)
	done()
	if err != nil {
		return nil, err
	}
	conn := c.(*tls.Conn)
	l, err := s.link(conn, conn.ConnectionState())
	if err != nil {
		conn.Close()
		return nil, err
	}
	return l, nil
}

// dialLimit bounds outbound handshakes in flight per dialled address. Its map keeps one
// entry per address ever dialled: the cluster's members.
type dialLimit struct {
	max int
	mu  sync.Mutex
	sem map[string]chan struct{}
}

// wait takes a place for addr, waiting within ctx; done gives it back.
func (d *dialLimit) wait(ctx context.Context, addr string) (done func(), err error) {
	d.mu.Lock()
	if d.sem == nil {
		d.sem = make(map[string]chan struct{})
	}
	sem, ok := d.sem[addr]
	if !ok {
		sem = make(chan struct{}, d.max)
		d.sem[addr] = sem
	}
	d.mu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("dial %s: waiting for earlier handshakes to it: %w", addr, ctx.Err())
	}
}

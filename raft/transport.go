// The raft stream layer: TCP inside mutual TLS 1.3 with the hybrid post-quantum key
// exchange, where both ends present and verify certificates from the cluster CA.

package raft

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
)

// alpnProto names the raft protocol in the TLS handshake, so a certificate from the same
// CA used for another Custos protocol (the HTTP API) cannot be replayed against raft, and
// a raft peer never talks to another service by mistake.
const alpnProto = "custos-raft/1"

// maxHandshakes bounds inbound TLS handshakes in progress; more connections wait in the
// kernel's accept queue.
const maxHandshakes = 64

// tlsConfigs returns the server and client TLS configurations for cfg: TLS 1.3 only,
// X25519MLKEM768 only, certificates required and verified against cfg.CAs both ways,
// then cfg.VerifyPeer. No session resumption: every connection is fully authenticated.
func tlsConfigs(cfg Config) (server, client *tls.Config) {
	cert := cfg.Certificate
	verify := func(cs tls.ConnectionState) error {
		switch {
		case cs.Version != tls.VersionTLS13:
			return fmt.Errorf("raft tls: version %#x, want TLS 1.3", cs.Version)
		case cs.CurveID != tls.X25519MLKEM768:
			return fmt.Errorf("raft tls: key exchange %v, want X25519MLKEM768", cs.CurveID)
		case cs.NegotiatedProtocol != alpnProto:
			return fmt.Errorf("raft tls: application protocol %q, want %q", cs.NegotiatedProtocol, alpnProto)
		case len(cs.PeerCertificates) == 0:
			return errors.New("raft tls: peer sent no certificate")
		}
		if cfg.VerifyPeer != nil {
			leaf := cs.PeerCertificates[0]
			if err := cfg.VerifyPeer(leaf); err != nil {
				return fmt.Errorf("raft tls: peer %q refused: %w", leaf.Subject, err)
			}
		}
		return nil
	}
	base := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		CurvePreferences:       []tls.CurveID{tls.X25519MLKEM768},
		NextProtos:             []string{alpnProto},
		SessionTicketsDisabled: true,
		VerifyConnection:       verify,
	}
	server = base.Clone()
	server.Certificates = []tls.Certificate{cert}
	server.ClientAuth = tls.RequireAndVerifyClientCert
	server.ClientCAs = cfg.CAs

	client = base.Clone()
	client.RootCAs = cfg.CAs
	// Always present the node certificate, so a mismatch is refused, and logged, by the
	// server rather than silently sending none.
	client.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &cert, nil
	}
	return server, client
}

// advertiseAddr is the address peers dial, kept as written (a DNS name stays a name, so
// peers verify it against the certificate's DNS names).
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// tlsStream implements hraft.StreamLayer. Accept hands out only connections whose TLS
// handshake succeeded; handshakes run off the accept loop, bounded in number and time.
type tlsStream struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	timeout   time.Duration // handshake bound
	log       *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	conns  chan net.Conn
	sem    chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	rejected atomic.Uint64 // inbound handshakes refused or failed
}

func newTLSStream(cfg Config) (*tlsStream, error) {
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
	server, client := tlsConfigs(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	s := &tlsStream{
		ln:        ln,
		advertise: adv,
		server:    server,
		client:    client,
		timeout:   cfg.RPCTimeout,
		log:       cfg.Logger,
		ctx:       ctx,
		cancel:    cancel,
		conns:     make(chan net.Conn),
		sem:       make(chan struct{}, maxHandshakes),
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
		select {
		case s.sem <- struct{}{}:
		case <-s.ctx.Done():
			raw.Close()
			return
		}
		s.wg.Add(1)
		go s.handshake(raw)
	}
}

func (s *tlsStream) handshake(raw net.Conn) {
	defer s.wg.Done()
	defer func() { <-s.sem }()
	conn := tls.Server(raw, s.server)
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	err := conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		raw.Close()
		if s.ctx.Err() == nil {
			s.rejected.Add(1)
			s.log.Warn("raft: refused connection", "remote", raw.RemoteAddr().String(), "err", err)
		}
		return
	}
	select {
	case s.conns <- conn:
	case <-s.ctx.Done():
		conn.Close()
	}
}

// Accept returns the next inbound connection that completed the mutual TLS handshake.
func (s *tlsStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops listening and waits for handshakes in progress to end. Idempotent.
func (s *tlsStream) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		err = s.ln.Close()
		s.wg.Wait()
	})
	return err
}

// Addr returns the advertised address.
func (s *tlsStream) Addr() net.Addr { return s.advertise }

// Dial connects to a peer and completes the TLS handshake within timeout. The peer's
// certificate must chain to the cluster CA and name the dialled host.
func (s *tlsStream) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: s.client}
	return d.DialContext(ctx, "tcp", string(addr))
}

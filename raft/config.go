// Node configuration: one struct, defaults and every check in Validate, safe to log.

package raft

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	hraft "github.com/hashicorp/raft"
)

// Config configures a Node. The zero value of every tuning field means its default.
type Config struct {
	// ID names this node in the cluster; it must be unique and never change. Required.
	ID string

	// Addr is the host:port peers dial to reach this node, and where it listens unless
	// BindAddr is set. Peers verify its host against the DNS or IP names of this node's
	// certificate. Port 0 (without BindAddr) listens on a free port, reported by Node.Addr.
	Addr string

	// BindAddr, if set, is the listen address when it differs from Addr (e.g. ":7000"
	// behind NAT).
	BindAddr string

	// DataDir holds raft.db (log and stable store, bbolt, fsync on every write) and
	// snapshots/. Created with mode 0700 if missing. One node per DataDir.
	DataDir string

	// Certificate is this node's certificate chain and private key, presented on every
	// raft connection, accepted or dialled. The leaf must allow both server and client
	// authentication (extended key usages serverAuth and clientAuth) and name the host
	// of Addr. The private key may be any crypto.Signer, such as an HSM-held key.
	Certificate tls.Certificate

	// CAs is the cluster CA pool: every peer must present a certificate that chains to it.
	CAs *x509.CertPool

	// VerifyPeer, if set, is called with each peer's leaf certificate after its chain has
	// been verified against CAs, on both sides of every connection, raft and peer
	// channel: at every handshake, inbound and outbound (there is no session resumption,
	// and no result is cached); an error refuses the connection. Use it to require a
	// current member's node certificate rather than any certificate from the CA. When
	// its answer changes for established connections, call Node.ReverifyPeers or
	// Node.DropPeer. It is called concurrently.
	VerifyPeer func(*x509.Certificate) error

	// PeerID, if set, returns the node id a peer's leaf certificate (already verified,
	// and accepted by VerifyPeer) names; an error or an empty id refuses the connection.
	// It binds raft RPCs to connections: every inbound RPC must claim, as its sender,
	// the id of the certificate of the connection it arrives on, and as its sender's
	// address (RPC header, and a leader's or candidate's address field) one whose host
	// the certificate names and which, if this node's latest configuration lists that
	// id, is the address listed there. An RPC that fails is never seen by raft: its
	// connection is closed, counted in Stats.RPCRejected and logged. Node.DropPeer
	// matches connections by this id. Nil: no binding (RPCs are believed), and
	// DropPeer finds nothing on TCP. Called concurrently; not used with Memory.
	PeerID func(*x509.Certificate) (id string, err error)

	// AcceptSnapshot, if set, is asked before a snapshot sent by node fromID (the
	// certified sender with PeerID) is installed, after the built-in check that fromID
	// is a voter in this node's latest configuration; an error refuses it: the
	// connection is closed and counted in Stats.SnapshotRefused. Called concurrently
	// with raft; it must not call the Node. Not used with Memory.
	AcceptSnapshot func(fromID string) error

	// Logger receives raft's logs. Nil means slog.Default().
	Logger *slog.Logger

	// HeartbeatTimeout: a follower that hears nothing from a leader for this long starts an
	// election. Default 1s.
	HeartbeatTimeout time.Duration
	// ElectionTimeout: a candidate that does not win within this long retries. Default
	// HeartbeatTimeout.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout: a leader that cannot reach a quorum for this long steps down,
	// failing pending commands with ErrLeadershipLost. At most HeartbeatTimeout. Default
	// HeartbeatTimeout/2.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout: an idle leader sends a heartbeat after this long so followers learn the
	// commit index. Default 50ms.
	CommitTimeout time.Duration
	// SnapshotInterval: how often to check whether SnapshotThreshold is reached. Default 2m.
	SnapshotInterval time.Duration
	// SnapshotThreshold: log entries since the last snapshot that trigger a new one.
	// Default 8192.
	SnapshotThreshold uint64
	// TrailingLogs: log entries kept after a snapshot, so slightly lagging followers
	// catch up from the log rather than a whole snapshot. Default 10240.
	TrailingLogs uint64
	// MaxAppendEntries: most log entries sent in one replication RPC. Default 64, at most 1024.
	MaxAppendEntries int
	// RPCTimeout bounds each transport read and write (scaled up for snapshots), and
	// each inbound TLS handshake once its first bytes arrived. Default 10s.
	RPCTimeout time.Duration

	// FirstBytesTimeout: an inbound connection must start its TLS handshake (the first
	// byte of a ClientHello) within this long after it is accepted, or it is closed and
	// counted in Stats.TLSRejected; then RPCTimeout bounds the rest of the handshake. An
	// idle connection holds one of the listener's 64 handshake slots for no longer than
	// this. Default 1s.
	FirstBytesTimeout time.Duration
	// MaxHandshakesPerIP caps the inbound TLS handshakes in progress (from accept to the
	// end of the handshake) from one IP address, so that one address cannot take all 64
	// handshake slots. A connection over the cap is closed at once, unread and without
	// taking a slot, and counted in Stats.TLSRejected and Stats.TLSOverIPCap. Nodes that
	// share an address (a cluster on one host) share its cap; a node itself keeps at most
	// 1 handshake in flight to any one address. Default 4.
	MaxHandshakesPerIP int

	// Memory, if set, runs the node on that in-process network instead: in-memory log,
	// stable and snapshot stores kept by the network, no DataDir, no sockets, no TLS; Addr
	// defaults to ID. For tests (see package rafttest).
	Memory *MemNetwork
}

// withDefaults returns c with every zero tuning field set to its default.
func (c Config) withDefaults() Config {
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = time.Second
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = c.HeartbeatTimeout
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = c.HeartbeatTimeout / 2
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = 50 * time.Millisecond
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 2 * time.Minute
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = 64
	}
	if c.RPCTimeout == 0 {
		c.RPCTimeout = 10 * time.Second
	}
	if c.FirstBytesTimeout == 0 {
		c.FirstBytesTimeout = time.Second
	}
	if c.MaxHandshakesPerIP == 0 {
		c.MaxHandshakesPerIP = 4
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Memory != nil && c.Addr == "" {
		c.Addr = c.ID
	}
	return c
}

// raftConfig is the hashicorp/raft configuration for c (already defaulted).
func (c Config) raftConfig() *hraft.Config {
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(c.ID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	rc.MaxAppendEntries = c.MaxAppendEntries
	rc.Logger = newHCLogger(c.Logger, "raft")
	return rc
}

// Validate reports every problem with c, joined, or nil. Open calls it.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("raft config: "+format, args...))
	}
	if c.ID == "" {
		bad("ID is required")
	}
	if c.Memory == nil {
		host, port, addrErr := splitAddr(c.Addr)
		if addrErr != nil {
			bad("Addr %q: %v", c.Addr, addrErr)
		}
		if c.BindAddr != "" {
			if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
				bad("BindAddr %q: %v", c.BindAddr, err)
			}
			if addrErr == nil && port == 0 {
				bad("Addr %q: port 0 cannot be advertised with a separate BindAddr", c.Addr)
			}
		}
		if c.DataDir == "" {
			bad("DataDir is required")
		}
		if c.CAs == nil {
			bad("CAs (cluster CA pool) is required")
		}
		if leaf, err := c.leaf(); err != nil {
			bad("Certificate: %v", err)
		} else if c.CAs != nil {
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := leaf.Verify(x509.VerifyOptions{
					Roots:         c.CAs,
					Intermediates: intermediates(c.Certificate),
					KeyUsages:     []x509.ExtKeyUsage{usage},
				}); err != nil {
					bad("Certificate %q does not verify for %s against CAs: %v", leaf.Subject, usageName(usage), err)
				}
			}
			if host != "" {
				if err := leaf.VerifyHostname(host); err != nil {
					bad("Certificate does not name Addr host: %v", err)
				}
			}
		}
	} else if c.DataDir != "" || c.BindAddr != "" {
		bad("DataDir and BindAddr must be empty with Memory")
	}
	if c.RPCTimeout < 0 || c.FirstBytesTimeout < 0 {
		bad("RPCTimeout and FirstBytesTimeout must not be negative")
	}
	if c.MaxHandshakesPerIP < 0 {
		bad("MaxHandshakesPerIP must not be negative")
	}
	if c.ID != "" {
		if err := hraft.ValidateConfig(c.raftConfig()); err != nil {
			bad("%v", err)
		}
	}
	return errors.Join(errs...)
}

// splitAddr checks that addr is host:port with an advertisable host.
func splitAddr(addr string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if h == "" {
		return "", 0, errors.New("host is required (peers dial it)")
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		return "", 0, errors.New("unspecified host cannot be advertised; set BindAddr instead")
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, port, nil
}

// leaf returns the parsed leaf of c.Certificate, after checking a key is present.
func (c Config) leaf() (*x509.Certificate, error) {
	if len(c.Certificate.Certificate) == 0 {
		return nil, errors.New("no certificate")
	}
	if c.Certificate.PrivateKey == nil {
		return nil, errors.New("no private key")
	}
	if c.Certificate.Leaf != nil {
		return c.Certificate.Leaf, nil
	}
	return x509.ParseCertificate(c.Certificate.Certificate[0])
}

func intermediates(cert tls.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			pool.AddCert(c)
		}
	}
	return pool
}

func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageServerAuth {
		return "serverAuth"
	}
	return "clientAuth"
}

// LogValue describes c for logs: addresses, paths, timeouts and the certificate's subject
// and SHA-256 fingerprint. It never includes key material.
func (c Config) LogValue() slog.Value {
	d := c.withDefaults()
	attrs := []slog.Attr{
		slog.String("id", d.ID),
		slog.String("addr", d.Addr),
	}
	if d.Memory != nil {
		attrs = append(attrs, slog.Bool("memory", true))
	} else {
		attrs = append(attrs,
			slog.String("bind_addr", d.BindAddr),
			slog.String("data_dir", d.DataDir),
			slog.Bool("cas", d.CAs != nil),
			slog.Bool("verify_peer", d.VerifyPeer != nil),
			slog.Bool("peer_id", d.PeerID != nil),
			slog.Bool("accept_snapshot", d.AcceptSnapshot != nil))
		if leaf, err := d.leaf(); err == nil {
			sum := sha256.Sum256(leaf.Raw)
			attrs = append(attrs,
				slog.String("cert_subject", leaf.Subject.String()),
				slog.String("cert_sha256", hex.EncodeToString(sum[:])))
		}
	}
	attrs = append(attrs,
		slog.Duration("heartbeat_timeout", d.HeartbeatTimeout),
		slog.Duration("election_timeout", d.ElectionTimeout),
		slog.Duration("leader_lease_timeout", d.LeaderLeaseTimeout),
		slog.Uint64("snapshot_threshold", d.SnapshotThreshold),
		slog.Uint64("trailing_logs", d.TrailingLogs),
		slog.Duration("first_bytes_timeout", d.FirstBytesTimeout),
		slog.Int("max_handshakes_per_ip", d.MaxHandshakesPerIP))
	return slog.GroupValue(attrs...)
}

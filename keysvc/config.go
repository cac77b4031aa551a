// Node configuration: one struct, defaults and every check in one place, safe to log.

package keysvc

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/raft"
)

// Limits on what one AppendBatch (a forwarded batch) may carry, whatever the
// group-commit settings: they bound the size of one raft command.
const (
	MaxAppendBatch      = state.MaxAppendBatch
	MaxAppendBatchBytes = 16 << 20
)

// Config configures a Node. Zero tuning fields take their defaults.
type Config struct {
	// NodeID names the node in the cluster, forever: 1-63 bytes of
	// [a-z0-9._-], first and last a letter or digit (the identity name rule).
	NodeID string
	// Region is the EU/EEA code of the node's site, upper case ("DE").
	Region string
	// Cluster is the cluster name; the log origin is "custos/<cluster>".
	Cluster string

	// DataDir holds state.db (the replicated state, bbolt), the sealed
	// ML-DSA seed (node-mldsa.sealed) and raft/ (raft log and snapshots).
	// Created 0700 if missing. One node per DataDir. Required.
	DataDir string

	// RaftAdvertise is the host:port peers dial for raft; RaftBind, if set,
	// is where to listen when it differs (":7000"). With Raft.Memory,
	// RaftAdvertise defaults to NodeID and RaftBind must be empty.
	RaftBind, RaftAdvertise string

	// APIAdvertise is the https base URL of this node's API, e.g.
	// "https://127.0.0.1:8201": recorded in the node table, where followers
	// look up the leader's to forward to. Required.
	APIAdvertise string

	// Certificate is the node's certificate (role node, this NodeID, Region
	// and Cluster in its identity URI) from the cluster CA, with its private
	// key (a signer in the node's HSM: TLSSigner); CAs is the cluster CA
	// pool, which also checks the certificates of clients' signed requests
	// (without it no activation is possible). Required unless Raft.Memory
	// is set.
	Certificate tls.Certificate
	CAs         *x509.CertPool

	// Token is the node's HSM token, which holds its identity key
	// ("custos:node:identity") and the key sealing its ML-DSA seed
	// ("custos:node:mldsa-seal"); both are created at first start. One token
	// per node. The Node does not close it. Required.
	Token hsm.Token

	// AllowedRegions are the regions nodes may be in, EU/EEA codes; used only
	// by Bootstrap (genesis), ignored afterwards.
	AllowedRegions []string

	// GroupCommit bounds the leader's batching of log entries.
	GroupCommit GroupCommit

	// AppendTimeout bounds Append, AppendBatch and the node operations when
	// their context has no deadline. Default 5s.
	AppendTimeout time.Duration

	// DenialFoldWindow: a denial identical to one logged less than this
	// long ago (same certificate, type, KEK version and reason) is not
	// logged on its own; the window's repeats are logged as one entry
	// with their count and first and last times when it closes. Zero
	// means DefaultDenialFoldWindow; negative turns folding off.
	DenialFoldWindow time.Duration

	// Logger; nil means slog.Default().
	Logger *slog.Logger

	// Raft tunes replication; the zero value is right for production.
	Raft RaftTuning

	// Now is the leader's clock for entry times; nil means time.Now. Tests
	// inject it. Apply never reads a clock.
	Now func() time.Time
}

// GroupCommit bounds how the leader batches log entries into one raft
// command: a batch is proposed once it holds MaxEntries entries or MaxBytes
// bytes, or MaxDelay after its first entry arrived, whichever comes first,
// and at once when nothing else is in flight and nothing else is waiting.
type GroupCommit struct {
	MaxEntries  int           // default 256
	MaxBytes    int           // canonical entry bytes; default 1 MiB
	MaxDelay    time.Duration // default 2ms
	MaxInFlight int           // batches proposed and not yet committed; default 2
	MaxQueue    int           // appends waiting for a batch; default 8192 (then Append waits)
}

// RaftTuning adjusts replication. Zero fields take the raft package's
// defaults (see raft.Config).
type RaftTuning struct {
	// Memory runs the node on an in-process network, for tests: raft log and
	// snapshots in memory, no sockets, no TLS, and state.db without fsync
	// (nothing is durable without a durable log anyway).
	Memory *raft.MemNetwork

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	TrailingLogs       uint64
	MaxAppendEntries   int
	RPCTimeout         time.Duration

	// The raft listener's bounds on inbound handshakes (raft.Config): the time to
	// the first byte, and how many one IP address may have in progress.
	FirstBytesTimeout  time.Duration
	MaxHandshakesPerIP int
}

func (c Config) withDefaults() Config {
	g := &c.GroupCommit
	if g.MaxEntries == 0 {
		g.MaxEntries = 256
	}
	if g.MaxBytes == 0 {
		g.MaxBytes = 1 << 20
	}
	if g.MaxDelay == 0 {
		g.MaxDelay = 2 * time.Millisecond
	}
	if g.MaxInFlight == 0 {
		g.MaxInFlight = 2
	}
	if g.MaxQueue == 0 {
		g.MaxQueue = 8192
	}
	if c.AppendTimeout == 0 {
		c.AppendTimeout = 5 * time.Second
	}
	if c.DenialFoldWindow == 0 {
		c.DenialFoldWindow = DefaultDenialFoldWindow
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Raft.Memory != nil && c.RaftAdvertise == "" {
		c.RaftAdvertise = c.NodeID
	}
	c.APIAdvertise = strings.TrimSuffix(c.APIAdvertise, "/")
	return c
}

// Validate reports every problem with c, joined, or nil. Open calls it.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("keysvc config: "+format, args...))
	}
	if err := (identity.Identity{Cluster: c.Cluster, Name: c.NodeID, Role: identity.RoleNode, Region: c.Region}).Validate(); err != nil {
		bad("node id, region or cluster: %v", err)
	}
	if c.DataDir == "" {
		bad("DataDir is required")
	}
	if err := state.CheckAPIAddr(c.APIAdvertise); err != nil {
		bad("APIAdvertise: %v", err)
	}
	if c.Token == nil {
		bad("Token (the node's HSM) is required")
	}
	if c.Raft.Memory != nil {
		if c.RaftBind != "" {
			bad("RaftBind must be empty with Raft.Memory")
		}
	} else {
		if c.RaftAdvertise == "" {
			bad("RaftAdvertise is required")
		}
		if c.CAs == nil {
			bad("CAs (cluster CA pool) is required")
		}
		if err := c.checkCertificate(); err != nil {
			bad("Certificate: %v", err)
		}
	}
	for _, r := range c.AllowedRegions {
		if !identity.IsEUEEA(r) {
			bad("AllowedRegions: %q is not an EU/EEA region code (upper case, e.g. DE)", r)
		}
	}
	g := c.GroupCommit
	if g.MaxEntries < 1 || g.MaxEntries > MaxAppendBatch {
		bad("GroupCommit.MaxEntries %d: want 1..%d", g.MaxEntries, MaxAppendBatch)
	}
	if g.MaxBytes < 1 || g.MaxBytes > MaxAppendBatchBytes {
		bad("GroupCommit.MaxBytes %d: want 1..%d", g.MaxBytes, MaxAppendBatchBytes)
	}
	if g.MaxDelay < 0 || g.MaxInFlight < 1 || g.MaxQueue < 1 {
		bad("GroupCommit: MaxDelay must not be negative, MaxInFlight and MaxQueue must be positive")
	}
	if c.AppendTimeout < 0 {
		bad("AppendTimeout must not be negative")
	}
	return errors.Join(errs...)
}

// checkCertificate checks that the node certificate names this node: role
// node, NodeID, Region and Cluster. Chain and key usages are the raft
// package's checks.
func (c Config) checkCertificate() error {
	leaf, err := leafOf(c.Certificate)
	if err != nil {
		return err
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return err
	}
	want := identity.Identity{Cluster: c.Cluster, Name: c.NodeID, Role: identity.RoleNode, Region: c.Region}
	if id != want {
		return fmt.Errorf("certificate identity %s, want %s", id, want)
	}
	return nil
}

func leafOf(cert tls.Certificate) (*x509.Certificate, error) {
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("no certificate")
	}
	return x509.ParseCertificate(cert.Certificate[0])
}

// forwardTimeout bounds one forward of a follower's entries to the leader:
// twice the election timeout (1 s by default, raft's default heartbeat
// timeout). A leader that has not answered by then is presumed paused or
// partitioned; the followers elect another within about that time.
func (c Config) forwardTimeout() time.Duration {
	el := c.Raft.ElectionTimeout
	if el == 0 {
		el = c.Raft.HeartbeatTimeout
	}
	if el == 0 {
		el = time.Second
	}
	return 2 * el
}

// raftConfig is the raft package configuration for c (already defaulted).
func (c Config) raftConfig() raft.Config {
	r := c.Raft
	rc := raft.Config{
		ID:                 c.NodeID,
		Addr:               c.RaftAdvertise,
		BindAddr:           c.RaftBind,
		Certificate:        c.Certificate,
		CAs:                c.CAs,
		VerifyPeer:         verifyNodePeer(c.Cluster),
		PeerID:             nodePeerID,
		Logger:             c.Logger,
		HeartbeatTimeout:   r.HeartbeatTimeout,
		ElectionTimeout:    r.ElectionTimeout,
		LeaderLeaseTimeout: r.LeaderLeaseTimeout,
		CommitTimeout:      r.CommitTimeout,
		SnapshotInterval:   r.SnapshotInterval,
		SnapshotThreshold:  r.SnapshotThreshold,
		TrailingLogs:       r.TrailingLogs,
		MaxAppendEntries:   r.MaxAppendEntries,
		RPCTimeout:         r.RPCTimeout,
		FirstBytesTimeout:  r.FirstBytesTimeout,
		MaxHandshakesPerIP: r.MaxHandshakesPerIP,
		Memory:             r.Memory,
	}
	if r.Memory == nil {
		rc.DataDir = raftDir(c.DataDir)
	} else {
		rc.VerifyPeer, rc.PeerID = nil, nil
	}
	return rc
}

// nodePeerID is the node id a raft peer's certificate names (its identity URI's name),
// which raft binds the peer's RPCs to.
func nodePeerID(cert *x509.Certificate) (string, error) {
	id, err := identity.FromCertificate(cert)
	if err != nil {
		return "", err
	}
	return id.Name, nil
}

// verifyNodePeer accepts a raft peer only if its certificate (already
// verified against the cluster CA) names a node of this cluster. Membership
// itself is raft's configuration, which only AddNode changes.
func verifyNodePeer(cluster string) func(*x509.Certificate) error {
	return func(cert *x509.Certificate) error {
		id, err := identity.FromCertificate(cert)
		if err != nil {
			return err
		}
		if id.Role != identity.RoleNode {
			return fmt.Errorf("peer %s: %w (want %s)", id, identity.ErrRoleNotAllowed, identity.RoleNode)
		}
		if id.Cluster != cluster {
			return fmt.Errorf("peer %s: %w (want %q)", id, identity.ErrWrongCluster, cluster)
		}
		return nil
	}
}

// LogValue describes c for logs; it holds no secrets (the token is only named
// as present, the certificate by subject and fingerprint).
func (c Config) LogValue() slog.Value {
	d := c.withDefaults()
	attrs := []slog.Attr{
		slog.String("node_id", d.NodeID), slog.String("region", d.Region), slog.String("cluster", d.Cluster),
		slog.String("data_dir", d.DataDir), slog.String("raft_advertise", d.RaftAdvertise),
		slog.String("raft_bind", d.RaftBind), slog.String("api", d.APIAdvertise),
		slog.Bool("memory", d.Raft.Memory != nil),
		slog.Any("allowed_regions", slices.Clone(d.AllowedRegions)),
		slog.Int("group_max_entries", d.GroupCommit.MaxEntries),
		slog.Int("group_max_bytes", d.GroupCommit.MaxBytes),
		slog.Duration("group_max_delay", d.GroupCommit.MaxDelay),
		slog.Duration("append_timeout", d.AppendTimeout),
	}
	if leaf, err := leafOf(d.Certificate); err == nil {
		sum := sha256.Sum256(leaf.Raw)
		attrs = append(attrs, slog.String("cert_sha256", hex.EncodeToString(sum[:])))
	}
	return slog.GroupValue(attrs...)
}

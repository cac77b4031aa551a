// The values Node hands out: node descriptions, cluster status, metrics.

package keysvc

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/raft"
)

// NodeInfo describes a node as the node table records it. A node gives its
// own with Node.Info; a leader registers another's with AddNode.
type NodeInfo struct {
	ID       string `json:"id"`        // node id (identity name rule)
	Region   string `json:"region"`    // EU/EEA code, upper case
	RaftAddr string `json:"raft_addr"` // address raft peers dial
	APIAddr  string `json:"api_addr"`  // https base URL of the node's API
	// Keys are the node's two checkpoint verifier key lines (ECDSA P-256 and
	// ML-DSA-65, as ledger.NodeKey.MarshalText writes them), under the name
	// KeyName(cluster, ID).
	Keys string `json:"keys"`
	// KEM is the node's X-Wing public key (standard base64), to which peers
	// seal the shares they release to it. Its seed is sealed by the node's HSM.
	KEM string `json:"kem"`
	// Cert is the fingerprint (identity.Fingerprint) of the node's TLS
	// certificate: the only certificate its raft and peer connections may
	// present. Empty only for nodes without TLS (in-memory tests).
	Cert string `json:"cert,omitempty"`
}

// NodeKey parses i.Keys.
func (i NodeInfo) NodeKey() (ledger.NodeKey, error) {
	var k ledger.NodeKey
	err := k.UnmarshalText([]byte(i.Keys))
	return k, err
}

// validate checks i for a node of cluster. It is deterministic: Apply uses
// it. Errors wrap ErrInvalidNode.
func (i NodeInfo) validate(cluster string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidNode, fmt.Sprintf(format, args...))
	}
	if err := (identity.Identity{Cluster: cluster, Name: i.ID, Role: identity.RoleNode, Region: i.Region}).Validate(); err != nil {
		return bad("id %q, region %q: %v", i.ID, i.Region, err)
	}
	if !printable(i.RaftAddr) {
		return bad("raft address %q", i.RaftAddr)
	}
	if err := checkAPIAddr(i.APIAddr); err != nil || len(i.APIAddr) > MaxAddrLen {
		return bad("api address %q: want an https base URL of at most %d bytes", i.APIAddr, MaxAddrLen)
	}
	k, err := i.NodeKey()
	if err != nil {
		return bad("keys: %v", err)
	}
	if want := ledger.KeyName(cluster, i.ID); k.Name != want {
		return bad("keys are named %q, want %q", k.Name, want)
	}
	if _, err := i.KEMKey(); err != nil {
		return bad("kem: %v", err)
	}
	if i.Cert != "" && !validFingerprint(i.Cert) {
		return bad("cert %q: want sha256:<64 lower-case hex digits>", i.Cert)
	}
	return nil
}

// NodeAdd is the node.add ceremony parameters that register i.
func (i NodeInfo) NodeAdd() ceremony.NodeAdd {
	return ceremony.NodeAdd{ID: i.ID, Region: i.Region, RaftAddr: i.RaftAddr, APIAddr: i.APIAddr, Keys: i.Keys, KEM: i.KEM, Cert: i.Cert}
}

// KEMKey decodes i.KEM: a 1216-byte X-Wing public key.
func (i NodeInfo) KEMKey() ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(i.KEM)
	if err != nil || len(b) != wrapkey.PublicKeySize {
		return nil, fmt.Errorf("not a base64 X-Wing public key of %d bytes", wrapkey.PublicKeySize)
	}
	return b, nil
}

// validFingerprint: "sha256:" and 64 lower-case hex digits.
func validFingerprint(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// MaxAddrLen bounds a node's raft and API addresses, in bytes.
const MaxAddrLen = 256

// MaxInitOfficers is the most officers cluster.init may name (Init.Officers).
const MaxInitOfficers = maxOfficers

// printable: 1..MaxAddrLen bytes of UTF-8 without spaces or control characters.
func printable(s string) bool {
	return s != "" && len(s) <= MaxAddrLen && utf8.ValidString(s) &&
		strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
}

// nodeRecord is a node table row. Removed nodes stay, so that their keys
// keep verifying the checkpoints they signed.
type nodeRecord struct {
	NodeInfo
	Added   uint64 `json:"added"`             // ledger index of the node.add entry that registered it
	Removed bool   `json:"removed,omitempty"` // removed from the cluster
}

// Leader names the current leader as a node knows it.
type Leader struct {
	ID      string `json:"id"`       // empty if no leader is known
	APIAddr string `json:"api_addr"` // from the node table; empty if not registered
}

// Member is one node of the cluster: registered in the node table, in the
// raft configuration, or (normally) both.
type Member struct {
	ID         string `json:"id"`
	Region     string `json:"region"`
	RaftAddr   string `json:"raft_addr"`
	APIAddr    string `json:"api_addr"`
	Voter      bool   `json:"voter"`      // a voter in the raft configuration
	Registered bool   `json:"registered"` // in the node table (not removed)
	Leader     bool   `json:"leader"`
}

// Status is a node's view of the cluster, for /v1/sys/cluster and `custos status`.
type Status struct {
	NodeID  string   `json:"node_id"`
	Region  string   `json:"region"`
	Cluster string   `json:"cluster"`
	Leader  Leader   `json:"leader"`
	Members []Member `json:"members"` // sorted by ID
	LogSize uint64   `json:"log_size"`
	// AllowedRegions as fixed at genesis; empty before.
	AllowedRegions []string   `json:"allowed_regions"`
	Raft           raft.Stats `json:"raft"`
	// Set by cluster.init: Initialized, the active officers' ids (sorted),
	// the quorum M, the default KEK threshold and the state version
	// proposals are made against.
	Initialized      bool     `json:"initialized"`
	Officers         []string `json:"officers,omitempty"`
	Quorum           int      `json:"quorum,omitempty"`
	DefaultThreshold int      `json:"default_threshold,omitempty"`
	StateVersion     uint64   `json:"state_version"`
	// Ready is Ready()'s verdict: "" when ready, else why not.
	NotReady string `json:"not_ready,omitempty"`
}

// Histogram is a cumulative histogram in Prometheus' shape: Counts[i] is the
// number of observations <= Bounds[i]; Count and Sum cover all of them.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Metrics are a node's counters since Open, for Prometheus collectors (all
// monotonic except the gauges marked).
type Metrics struct {
	Appends        uint64 // entries acknowledged as committed to callers of Append/AppendBatch on this node
	AppendFailures uint64 // entries whose Append/AppendBatch returned an error
	Forwarded      uint64 // entries this node forwarded to the leader
	Batches        uint64 // ledger.append raft commands this node proposed (as leader): one per batch
	BatchFailures  uint64 // of those, the ones not confirmed committed (or rejected)
	BatchEntries   uint64 // entries in the proposed batches
	// BatchSize: entries per proposed batch.
	BatchSize Histogram
	// CommitLatency: seconds from an Append entering the queue to its
	// acknowledgement, successful ones only.
	CommitLatency Histogram

	Applied  uint64 // raft commands applied by this node's state machine
	Rejected uint64 // of those, rejected (CommandError)
	Restores uint64 // snapshots installed into the state database
	// SnapshotsRefused: snapshots refused because they contradict this
	// node's log or a checkpoint it signed (ErrSnapshotRefused).
	SnapshotsRefused uint64
	Checkpoints      uint64 // checkpoints signed (cache misses)
	QueueDepth       int    // gauge: appends waiting for a batch
	InFlight         int    // gauge: batches proposed, not yet answered

	KeyOpsDenied uint64 // key operations refused (and logged as denied)
	// DenialsFolded: refusals counted in a folded entry instead of logged
	// one by one (ledger.FoldOf).
	DenialsFolded uint64
	Activations   uint64 // KEK versions this node reconstituted from shares
	KeyCacheHits  uint64 // unwraps served by a cached (activated) key
	SharesRelease uint64 // shares this node released to peers for their activations
	// ReleasesRefused: share requests this node refused (each logged).
	ReleasesRefused uint64
	CachedKeys      int // gauge: activated keys held in memory
}

// errKeysMismatch wraps ErrKeysMismatch with the node id.
func errKeysMismatch(id string) error {
	return fmt.Errorf("%w: node %q (sealed ML-DSA seed or HSM identity key replaced since it was registered)", ErrKeysMismatch, id)
}

// durationBuckets are CommitLatency's bounds, in seconds.
var durationBuckets = []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5}

// sizeBuckets are BatchSize's bounds.
var sizeBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}

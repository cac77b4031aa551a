// The values Node hands out: node descriptions, cluster status, metrics.

package keysvc

import (
	"fmt"

	"github.com/custos-eu/custos/raft"
)

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
	Rejected uint64 // of those, rejected (state.CommandError)
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

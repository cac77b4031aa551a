// The API's JSON bodies, its headers and its error codes: the contract
// between the node's handlers and every client.

package client

import (
	"fmt"
	"time"

	"github.com/custos-eu/custos/keysvc/errcode"
)

// Headers the API sets.
const (
	// HeaderRequestID is on every response: the random id the node gave the
	// request, also in error bodies and in the node's logs.
	HeaderRequestID = "Custos-Request-Id"
	// HeaderLogSize is on every response: the size of the key-op log the
	// answering node knows committed (every entry it has applied or had
	// acknowledged). A client sends the largest it has seen back as
	// HeaderMinLogSize, and a node behind that waits to catch up (briefly)
	// or answers 503 not_caught_up: a client reads its own writes on any
	// node.
	HeaderLogSize    = "Custos-Log-Size"
	HeaderMinLogSize = "Custos-Min-Log-Size"
	// HeaderLeader is the leader's API base URL, on a not_leader answer.
	HeaderLeader = "Custos-Leader"
	// HeaderLeaderID is the leader's node id, on a not_leader answer.
	HeaderLeaderID = "Custos-Leader-Id"
	// HeaderLogIndex is the log index of the denied entry a refusal was
	// logged as (key operations and ceremonies): the refusal's receipt.
	HeaderLogIndex = "Custos-Log-Index"
)

// Error codes: the "code" of an error body. They are stable; messages are
// not. Each is errcode's code of the same name (without "Code"), whose doc
// gives its HTTP status and meaning.
const (
	CodeBadRequest       = errcode.BadRequest
	CodeMalformedRequest = errcode.MalformedRequest
	CodeUnauthenticated  = errcode.Unauthenticated
	CodeForbidden        = errcode.Forbidden
	CodeCertRevoked      = errcode.CertRevoked
	CodeRegionNotAllowed = errcode.RegionNotAllowed
	CodeNotFound         = errcode.NotFound
	CodeMethodNotAllowed = errcode.MethodNotAllowed
	CodeConflict         = errcode.Conflict
	CodeTooLarge         = errcode.TooLarge
	CodeRejected         = errcode.Rejected
	CodeInternal         = errcode.Internal
	CodeNotLeader        = errcode.NotLeader
	CodeNoLeader         = errcode.NoLeader
	CodeNoQuorum         = errcode.NoQuorum
	CodeNotReady         = errcode.NotReady
	CodeUnavailable      = errcode.Unavailable
	CodeNotBootstrapped  = errcode.NotBootstrapped
	CodeRequestCanceled  = errcode.RequestCanceled
	CodeRateLimited      = errcode.RateLimited

	// Officers and ceremonies. A refused proposal or approval answers one of
	// the refusal codes of package ceremony (invalid_proposal,
	// invalid_params, wrong_cluster, wrong_proposal: 400; unknown_officer,
	// bad_signature: 403; expired, superseded, closed, duplicate_approver:
	// 409) or one of these; every refusal is also a denied log entry.
	CodeNotInitialized   = errcode.NotInitialized
	CodeCeremonyRequired = errcode.CeremonyRequired
	CodeNotSupportedYet  = errcode.NotSupportedYet
	CodeNotProposer      = errcode.NotProposer
	CodeProposalExists   = errcode.ProposalExists
	CodeUnknownProposal  = errcode.UnknownProposal
)

// ErrorBody is the body of every error response:
//
//	{"error": {"code": "not_leader", "message": "…", "request_id": "…"}}
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an ErrorBody.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// APIError is a request the API answered with an error.
type APIError struct {
	Status    int    // HTTP status
	Code      string // stable snake_case code, one of the Code constants
	Message   string
	RequestID string // quote it to the node's operator: the node logged the cause under it
	// Leader is the leader's API base URL, when a not_leader answer named it.
	Leader string
	// Endpoint is the base URL of the node that answered.
	Endpoint string
	// LogIndex is the log index of the denied entry, for a refusal that
	// was logged (HeaderLogIndex); 0 otherwise.
	LogIndex uint64
	// RetryAfter is how long a 429 rate_limited answer asked to wait
	// (the client already waited out and retried shorter ones).
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("custos api %s: %s (HTTP %d", e.Endpoint, e.Code, e.Status)
	if e.RequestID != "" {
		msg += ", request " + e.RequestID
	}
	msg += ")"
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Health is GET /v1/sys/health of a ready node.
type Health struct {
	Status string `json:"status"` // "ok"
	Node   string `json:"node"`   // the node's id
	Leader string `json:"leader"` // the leader's id as the node knows it
}

// NodeInfo describes a node as the cluster's node table records it; the
// body of POST /v1/sys/join.
type NodeInfo struct {
	ID       string `json:"id"`
	Region   string `json:"region"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	// Keys are the node's two checkpoint verifier key lines (ECDSA P-256 and
	// ML-DSA-65), as ledger.NodeKey.MarshalText writes them.
	Keys string `json:"keys"`
	// KEM is the node's X-Wing public key (standard base64): peers seal the
	// shares they release to it.
	KEM string `json:"kem"`
	// Cert is the fingerprint ("sha256:<hex>") of the node's TLS certificate.
	Cert string `json:"cert,omitempty"`
}

// Leader names the leader as the answering node knows it.
type Leader struct {
	ID      string `json:"id"`       // empty when no leader is known
	APIAddr string `json:"api_addr"` // empty when not known
}

// Member is a node of the cluster.
type Member struct {
	ID         string `json:"id"`
	Region     string `json:"region"`
	RaftAddr   string `json:"raft_addr"`
	APIAddr    string `json:"api_addr"`
	Voter      bool   `json:"voter"`      // a voter in the raft configuration
	Registered bool   `json:"registered"` // in the node table
	Leader     bool   `json:"leader"`
}

// RaftStats is the answering node's replication state.
type RaftStats struct {
	State             string    `json:"state"` // "Leader", "Follower", "Candidate", "Shutdown"
	Term              uint64    `json:"term"`
	LastLogIndex      uint64    `json:"last_log_index"`
	CommitIndex       uint64    `json:"commit_index"`
	AppliedIndex      uint64    `json:"applied_index"`
	LastSnapshotIndex uint64    `json:"last_snapshot_index"`
	LastContact       time.Time `json:"last_contact,omitzero"` // followers: when the leader was last heard
}

// Status is GET /v1/sys/cluster: one node's view of the cluster.
type Status struct {
	NodeID         string    `json:"node_id"` // the answering node
	Region         string    `json:"region"`
	Cluster        string    `json:"cluster"`
	Leader         Leader    `json:"leader"`
	Members        []Member  `json:"members"` // sorted by id
	LogSize        uint64    `json:"log_size"`
	AllowedRegions []string  `json:"allowed_regions"`
	Raft           RaftStats `json:"raft"`
	NotReady       string    `json:"not_ready,omitempty"` // why the node is not ready; empty when it is
	// Set by custos operator init (POST /v1/sys/init).
	Initialized      bool     `json:"initialized"`
	Officers         []string `json:"officers,omitempty"` // active officers' ids, sorted
	Quorum           int      `json:"quorum,omitempty"`
	DefaultThreshold int      `json:"default_threshold,omitempty"`
	StateVersion     uint64   `json:"state_version"` // what a new proposal is made against
}

// InitRequest is POST /v1/sys/init (operator): name the officers, once.
type InitRequest struct {
	Officers         []string `json:"officers"` // canonical officer public key bundles (NAME.pub without the newline)
	Quorum           int      `json:"quorum"`   // M, 2..len(Officers)
	DefaultThreshold int      `json:"default_threshold"`
	Regions          []string `json:"regions,omitempty"` // replaces the allowed regions fixed at bootstrap
}

// ProposeRequest is POST /v1/ceremonies (officer, the proposal's proposer).
type ProposeRequest struct {
	Proposal string `json:"proposal"` // canonical proposal bytes
	// Signature, optional: the proposer's officer signature (canonical JSON
	// of officer.Signature) over the proposal digest; it counts as their
	// approval. Without it, proposing is not approving.
	Signature string `json:"signature,omitempty"`
	// EscrowShare, for escrow.recover only: the proposer's opened escrow
	// share (threshold.Share encoding), kept by the leader in memory until
	// the recovery executes. Sent only inside mutual TLS; never logged.
	EscrowShare []byte `json:"escrow_share,omitempty"`
}

// ApproveRequest is POST /v1/ceremonies/{id}/approvals (officer).
type ApproveRequest struct {
	Officer   string `json:"officer"`   // must be the certificate's name
	Signature string `json:"signature"` // canonical JSON of officer.Signature over the proposal digest
	// EscrowShare, for escrow.recover only: as in ProposeRequest.
	EscrowShare []byte `json:"escrow_share,omitempty"`
}

// Ceremony is a proposal and where it stands.
type Ceremony struct {
	ID          string     `json:"id"`
	Operation   string     `json:"operation"`
	Proposer    string     `json:"proposer"`
	Proposal    string     `json:"proposal"`    // canonical bytes: what approvers sign the digest of
	Description string     `json:"description"` // ceremony.Describe with the current quorum
	Status      string     `json:"status"`      // pending, executed, refused
	Code        string     `json:"code,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	Approvals   []Approval `json:"approvals"`
	Proposed    uint64     `json:"proposed"`         // log index of its ceremony.propose entry
	Closed      uint64     `json:"closed,omitempty"` // log index of its ceremony.execute or ceremony.refuse entry
}

// Approval is an accepted approval.
type Approval struct {
	Officer string `json:"officer"`
	Entry   uint64 `json:"entry"` // log index of its ceremony.approve entry
	// Signature is the officer's hybrid signature over the proposal's
	// digest (canonical JSON of officer.Signature): what an auditor checks.
	Signature string `json:"signature"`
}

// Officers is GET /v1/officers: every officer ever recorded.
type Officers struct {
	Officers []Officer `json:"officers"`
}

// Officer is a recorded officer: its public key bundle (officer.PublicKey
// canonical encoding), whose SHA-256 is the fingerprint the log names.
type Officer struct {
	ID          string `json:"id"`
	Bundle      string `json:"bundle"`
	Fingerprint string `json:"fingerprint"`
	Active      bool   `json:"active"`
	Added       uint64 `json:"added"`             // log index of the entry that added it
	Removed     uint64 `json:"removed,omitempty"` // log index of its removal
}

// Ceremonies is GET /v1/ceremonies.
type Ceremonies struct {
	Ceremonies []Ceremony `json:"ceremonies"`
}

// Entries is GET /v1/ledger/entries: entries from Start, in order, as
// canonical bytes (base64 in JSON, so no byte an auditor hashes is changed).
type Entries struct {
	Start   uint64   `json:"start"`
	Entries [][]byte `json:"entries"`
}

// LogIndex is the answer of a request that appended a log entry (a receipt).
type LogIndex struct {
	LogIndex uint64 `json:"log_index"`
}

// JoinResult is the answer of POST /v1/sys/join.
type JoinResult struct {
	Node   string `json:"node"`   // the node that joined
	Leader string `json:"leader"` // the leader that added it
}

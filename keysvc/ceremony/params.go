// Operations and their parameters: one type per operation, each with a
// deterministic Validate.

package ceremony

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Operation names what a proposal does. It is the "operation" field of the
// proposal's JSON.
type Operation string

// The operations. Genesis is not among them: it runs before there are
// officers to approve anything (see the package documentation).
const (
	OpNodeAdd          Operation = "node.add"
	OpNodeRemove       Operation = "node.remove"
	OpOfficerAdd       Operation = "officer.add"
	OpOfficerRemove    Operation = "officer.remove"
	OpQuorumSet        Operation = "quorum.set"
	OpRegionsSet       Operation = "regions.set"
	OpKEKCreate        Operation = "kek.create"
	OpKEKRotate        Operation = "kek.rotate"
	OpKEKDisable       Operation = "kek.disable"
	OpKEKEnable        Operation = "kek.enable"
	OpKEKDestroy       Operation = "kek.destroy"
	OpKEKPolicy        Operation = "kek.policy"
	OpLegalHoldSet     Operation = "legal_hold.set"
	OpLegalHoldRelease Operation = "legal_hold.release"
	OpEscrowRecover    Operation = "escrow.recover"
	OpIdentityRevoke   Operation = "identity.revoke"
)

// decoders maps each operation to the strict decoder of its parameters.
var decoders = map[Operation]func([]byte) (Params, error){
	OpNodeAdd:          decodeParams[NodeAdd],
	OpNodeRemove:       decodeParams[NodeRemove],
	OpOfficerAdd:       decodeParams[OfficerAdd],
	OpOfficerRemove:    decodeParams[OfficerRemove],
	OpQuorumSet:        decodeParams[QuorumSet],
	OpRegionsSet:       decodeParams[RegionsSet],
	OpKEKCreate:        decodeParams[KEKCreate],
	OpKEKRotate:        decodeParams[KEKRotate],
	OpKEKDisable:       decodeParams[KEKDisable],
	OpKEKEnable:        decodeParams[KEKEnable],
	OpKEKDestroy:       decodeParams[KEKDestroy],
	OpKEKPolicy:        decodeParams[KEKPolicy],
	OpLegalHoldSet:     decodeParams[LegalHoldSet],
	OpLegalHoldRelease: decodeParams[LegalHoldRelease],
	OpEscrowRecover:    decodeParams[EscrowRecover],
	OpIdentityRevoke:   decodeParams[IdentityRevoke],
}

// Operations returns every operation, sorted.
func Operations() []Operation {
	ops := make([]Operation, 0, len(decoders))
	for op := range decoders {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	return ops
}

func decodeParams[T Params](data []byte) (Params, error) {
	var v T
	if err := strictDecode(data, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// Params are an operation's parameters: one of the types below, always as a
// value (NodeAdd, not *NodeAdd). The set is closed: the unexported method
// keeps other types out, so every proposal has the one canonical encoding
// this package defines. Validate looks at the parameters alone; whatever
// depends on the cluster's state (does the KEK exist, is the region
// allowed, is M at most the number of officers) is checked by the state
// machine when it executes the proposal.
type Params interface {
	Operation() Operation
	Validate() error
	describe() string
}

// opOf returns the operation of ps if it is one of the parameter value
// types, and "" otherwise (nil, or a pointer, whose methods could panic).
func opOf(ps Params) Operation {
	switch ps.(type) {
	case NodeAdd, NodeRemove, OfficerAdd, OfficerRemove, QuorumSet, RegionsSet,
		KEKCreate, KEKRotate, KEKDisable, KEKEnable, KEKDestroy, KEKPolicy,
		LegalHoldSet, LegalHoldRelease, EscrowRecover, IdentityRevoke:
		return ps.Operation()
	}
	return ""
}

// NodeAdd registers a node and makes it a voter. Its fields are those of
// state.NodeInfo, which the state machine checks in full (key names, key
// parsing) when it executes; the region must be one the cluster allows.
type NodeAdd struct {
	ID       string `json:"id"`             // node id: identity name rule
	Region   string `json:"region"`         // EU/EEA code
	RaftAddr string `json:"raft_addr"`      // host:port raft peers dial
	APIAddr  string `json:"api_addr"`       // https base URL
	Keys     string `json:"keys"`           // checkpoint verifier key lines
	KEM      string `json:"kem"`            // X-Wing public key, standard base64
	Cert     string `json:"cert,omitempty"` // TLS certificate fingerprint, sha256:<hex>
}

func (NodeAdd) Operation() Operation { return OpNodeAdd }

func (p NodeAdd) Validate() error {
	if err := checkName("node id", p.ID); err != nil {
		return err
	}
	if err := checkRegion("region", p.Region); err != nil {
		return err
	}
	if err := checkToken("raft address", p.RaftAddr, 256); err != nil {
		return err
	}
	if err := checkAPIAddr(p.APIAddr); err != nil {
		return err
	}
	if err := checkASCIILines("keys", p.Keys, MaxNodeKeysLen); err != nil {
		return err
	}
	if err := checkToken("kem", p.KEM, 2048); err != nil {
		return err
	}
	if p.Cert != "" {
		return checkToken("cert", p.Cert, 80)
	}
	return nil
}

// NodeRemove removes a node from the cluster.
type NodeRemove struct {
	ID string `json:"id"`
}

func (NodeRemove) Operation() Operation { return OpNodeRemove }

func (p NodeRemove) Validate() error { return checkName("node id", p.ID) }

// OfficerAdd adds a security officer. Bundle is the officer's public key
// bundle in its canonical encoding (officer.PublicKey.Marshal: one line of
// printable ASCII), opaque here but for its fingerprint: Validate checks that
// Fingerprint is "sha256:" and the lowercase hex SHA-256 of Bundle
// (officer.PublicKey.Fingerprint), so the fingerprint officers compare is
// the bundle's. When it executes, the state machine must check that the
// bundle parses and names ID.
type OfficerAdd struct {
	ID          string `json:"id"`          // officer id: identity name rule
	Bundle      string `json:"bundle"`      // canonical public key bundle, at most MaxBundleLen bytes
	Fingerprint string `json:"fingerprint"` // "sha256:<hex SHA-256 of Bundle>"
}

func (OfficerAdd) Operation() Operation { return OpOfficerAdd }

func (p OfficerAdd) Validate() error {
	if err := checkName("officer id", p.ID); err != nil {
		return err
	}
	if err := checkPrintableASCII("bundle", p.Bundle, MaxBundleLen); err != nil {
		return err
	}
	if want := BundleFingerprint(p.Bundle); p.Fingerprint != want {
		return fmt.Errorf("fingerprint %q is not the bundle's (%s)", p.Fingerprint, want)
	}
	return nil
}

// BundleFingerprint returns the fingerprint of an officer's public key
// bundle: "sha256:" and the lowercase hex SHA-256 of its bytes.
func BundleFingerprint(bundle string) string {
	sum := sha256.Sum256([]byte(bundle))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// OfficerRemove removes a security officer. The state machine refuses it if
// fewer officers than the quorum would remain.
type OfficerRemove struct {
	ID string `json:"id"`
}

func (OfficerRemove) Operation() Operation { return OpOfficerRemove }

func (p OfficerRemove) Validate() error { return checkName("officer id", p.ID) }

// QuorumSet changes M, the number of distinct officers whose approvals
// execute a proposal. M is 2..MaxQuorum: a quorum of one would make one
// officer all-powerful. The state machine checks M against the number of
// officers.
type QuorumSet struct {
	M int `json:"m"`
}

func (QuorumSet) Operation() Operation { return OpQuorumSet }

func (p QuorumSet) Validate() error {
	if p.M < 2 || p.M > MaxQuorum {
		return fmt.Errorf("quorum m %d: must be 2-%d (one officer alone must not decide)", p.M, MaxQuorum)
	}
	return nil
}

// RegionsSet replaces the cluster's allowed regions. The state machine
// refuses it if a node, or a KEK policy, is in a region left out.
type RegionsSet struct {
	Regions []string `json:"regions"` // sorted set of EU/EEA codes, at least one
}

func (RegionsSet) Operation() Operation { return OpRegionsSet }

func (p RegionsSet) Validate() error {
	if len(p.Regions) == 0 {
		return fmt.Errorf("regions: at least one is required")
	}
	return checkRegions("regions", p.Regions)
}

// KEKCreate creates a KEK, its version 1 split across the cluster's nodes.
type KEKCreate struct {
	KEKID  string `json:"kek_id"`
	Policy Policy `json:"policy"`
}

func (KEKCreate) Operation() Operation { return OpKEKCreate }

func (p KEKCreate) Validate() error {
	if err := checkKEKID(p.KEKID); err != nil {
		return err
	}
	if err := p.Policy.Validate(); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	return nil
}

// KEKRotate creates a KEK's next version under its current policy.
type KEKRotate struct {
	KEKID string `json:"kek_id"`
}

func (KEKRotate) Operation() Operation { return OpKEKRotate }

func (p KEKRotate) Validate() error { return checkKEKID(p.KEKID) }

// KEKDisable stops all use of one version of a KEK, or of all its versions.
// Exactly one of Version (at least 1) and All is set, so the zero value
// never means "all". Refused under legal hold.
type KEKDisable struct {
	KEKID   string `json:"kek_id"`
	Version uint32 `json:"version"` // 0 with All
	All     bool   `json:"all"`
}

func (KEKDisable) Operation() Operation { return OpKEKDisable }

func (p KEKDisable) Validate() error { return checkVersions(p.KEKID, p.Version, p.All) }

// KEKEnable re-enables one disabled version of a KEK, or all of them.
// Exactly one of Version (at least 1) and All is set.
type KEKEnable struct {
	KEKID   string `json:"kek_id"`
	Version uint32 `json:"version"` // 0 with All
	All     bool   `json:"all"`
}

func (KEKEnable) Operation() Operation { return OpKEKEnable }

func (p KEKEnable) Validate() error { return checkVersions(p.KEKID, p.Version, p.All) }

func checkVersions(id string, version uint32, all bool) error {
	if err := checkKEKID(id); err != nil {
		return err
	}
	switch {
	case all && version != 0:
		return fmt.Errorf("version %d with all: set one or the other", version)
	case !all && version == 0:
		return fmt.Errorf("version: set a version (at least 1) or all")
	}
	return nil
}

// KEKDestroy destroys one version of a KEK: every node deletes its HSM
// sealing key for it. Refused under legal hold.
type KEKDestroy struct {
	KEKID   string `json:"kek_id"`
	Version uint32 `json:"version"` // at least 1
}

func (KEKDestroy) Operation() Operation { return OpKEKDestroy }

func (p KEKDestroy) Validate() error { return checkVersion(p.KEKID, p.Version) }

func checkVersion(id string, version uint32) error {
	if err := checkKEKID(id); err != nil {
		return err
	}
	if version == 0 {
		return fmt.Errorf("version: must be at least 1")
	}
	return nil
}

// KEKPolicy replaces a KEK's policy. Access rules, context fields and the
// activation TTL apply at once; threshold and escrow apply to the versions
// created after the change (existing versions keep the split they were
// dealt with).
type KEKPolicy struct {
	KEKID  string `json:"kek_id"`
	Policy Policy `json:"policy"`
}

func (KEKPolicy) Operation() Operation { return OpKEKPolicy }

func (p KEKPolicy) Validate() error {
	if err := checkKEKID(p.KEKID); err != nil {
		return err
	}
	if err := p.Policy.Validate(); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	return nil
}

// LegalHoldSet places a KEK under legal hold: while held, none of its
// versions can be disabled or destroyed.
type LegalHoldSet struct {
	KEKID  string `json:"kek_id"`
	Reason string `json:"reason"` // required; printable text, at most MaxTextLen bytes
}

func (LegalHoldSet) Operation() Operation { return OpLegalHoldSet }

func (p LegalHoldSet) Validate() error { return checkReason(p.KEKID, p.Reason) }

// LegalHoldRelease releases a KEK's legal hold.
type LegalHoldRelease struct {
	KEKID  string `json:"kek_id"`
	Reason string `json:"reason"` // required; printable text, at most MaxTextLen bytes
}

func (LegalHoldRelease) Operation() Operation { return OpLegalHoldRelease }

func (p LegalHoldRelease) Validate() error { return checkReason(p.KEKID, p.Reason) }

func checkReason(id, reason string) error {
	if err := checkKEKID(id); err != nil {
		return err
	}
	return checkText("reason", reason)
}

// EscrowRecover restores one version of a KEK from its officer escrow
// shares onto the cluster's current nodes, when the node HSMs that held it
// are gone.
type EscrowRecover struct {
	KEKID   string `json:"kek_id"`
	Version uint32 `json:"version"` // at least 1
	Reason  string `json:"reason"`  // required; printable text, at most MaxTextLen bytes
}

func (EscrowRecover) Operation() Operation { return OpEscrowRecover }

func (p EscrowRecover) Validate() error {
	if err := checkVersion(p.KEKID, p.Version); err != nil {
		return err
	}
	return checkText("reason", p.Reason)
}

// IdentityRevoke revokes client or node certificates: one certificate by
// its Fingerprint, or every certificate of an Identity, whatever region
// it names. Exactly one of the two is set. A revoked certificate is refused
// on the API and raft ports from the moment the ceremony is applied, and
// for good: there is no operation that lifts a revocation. The state
// machine refuses to revoke a current member node's identity (node.remove
// does that) or an officer's identity when fewer usable officers than the
// quorum would remain.
type IdentityRevoke struct {
	Fingerprint string `json:"fingerprint"` // "sha256:" and 64 lowercase hex digits (identity.Fingerprint), or ""
	Identity    string `json:"identity"`    // "<role>/<name>", e.g. "agent/agent-payroll", or ""
	Reason      string `json:"reason"`      // required; printable text, at most MaxTextLen bytes
}

func (IdentityRevoke) Operation() Operation { return OpIdentityRevoke }

func (p IdentityRevoke) Validate() error {
	switch {
	case p.Fingerprint == "" && p.Identity == "":
		return fmt.Errorf("fingerprint or identity: set one")
	case p.Fingerprint != "" && p.Identity != "":
		return fmt.Errorf("fingerprint and identity: set one or the other")
	case p.Fingerprint != "":
		if err := checkFingerprint(p.Fingerprint); err != nil {
			return err
		}
	default:
		if err := checkPrincipal(p.Identity); err != nil {
			return err
		}
	}
	return checkText("reason", p.Reason)
}

// checkFingerprint checks a certificate fingerprint: "sha256:" and 64
// lowercase hex digits.
func checkFingerprint(s string) error {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return fmt.Errorf("fingerprint %q is not sha256:<64 hex digits>", s)
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("fingerprint %q is not sha256:<64 lowercase hex digits>", s)
		}
	}
	return nil
}

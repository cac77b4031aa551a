// The log's vocabulary: the entry types the cluster writes, the states of a
// KEK version, and the names checkpoints carry. The node that writes the
// log and every reader of it (audit, the report, the agent, the CLI) use
// these names; none spells them again.

package ledger

// Entry types of the cluster's own bookkeeping. Only the state machine
// writes them; a client may not append them.
const (
	TypeGenesis    = "cluster.genesis"  // cluster, allowed regions, the first node
	TypeInit       = "cluster.init"     // officers, quorum, default threshold and regions: where trust starts
	TypeNodeAdd    = "node.add"         // a node registered (its keys, KEM key and certificate)
	TypeNodeRemove = "node.remove"      // a node removed
	TypeJoin       = "node.join"        // a refused POST /v1/sys/join (accepted ones are node.add)
	TypeCanary     = "sys.canary"       // POST /v1/sys/canary
	TypeDestroyed  = "kek.destroyed"    // a node's attestation that its sealing key of a version is gone
	TypeAttest     = "kek.attest"       // a node's attestation, as a raft command
	TypePropose    = "ceremony.propose" // a proposal submitted (ok) or refused (denied, reason = code)
	TypeApprove    = "ceremony.approve" // an approval accepted (ok) or refused (denied)
	TypeExecute    = "ceremony.execute" // a proposal executed
	TypeRefuse     = "ceremony.refuse"  // a proposal closed without executing
	TypeDenied     = "ceremony.denied"  // a proposal or approval refused before raft (screening)
)

// Entry types of key operations.
const (
	TypeWrap     = "kek.wrap"
	TypeUnwrap   = "kek.unwrap"
	TypeDataKey  = "kek.datakey"
	TypeRewrap   = "kek.rewrap"
	TypeActivate = "kek.activate" // a node reconstituted a KEK version from t shares
	TypeRelease  = "kek.release"  // a node released its share to a peer's activation
)

// Entry types a backup agent attests (POST /v1/attestations).
const (
	// TypeTransfer: an archive left for a target. Details archive,
	// dataset, sha256 (of the ciphertext), size, target, region,
	// decision (the policy's reason it may go there).
	TypeTransfer = "backup.transfer"
	// TypeDrill: a restore drill. Details archive, dataset, result
	// ("ok" or why not), restore_seconds; and, from agents of this
	// release on, target and rto_seconds.
	TypeDrill = "backup.drill"
	// TypePrune: an archive deleted under retention. Details archive,
	// dataset, target, reason.
	TypePrune = "backup.prune"
)

// KEK version states, as the state machine records them and the API and
// the log's kek.* details report them.
const (
	KEKActive    = "active"
	KEKDisabled  = "disabled"
	KEKDestroyed = "destroyed"
)

// Origin returns the key-op log origin of a cluster: "custos/<cluster>",
// the first line of every checkpoint.
func Origin(cluster string) string { return "custos/" + cluster }

// KeyName returns the checkpoint key name of a node: "custos/<cluster>/<id>".
func KeyName(cluster, nodeID string) string { return "custos/" + cluster + "/" + nodeID }

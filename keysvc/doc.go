// Package keysvc is a Custos node: its HSM-held keys, the replicated state
// machine (cluster meta, node table, key-op log) persisted in bbolt, raft
// replication, group commit of log entries and signed checkpoints.
//
//	n, err := keysvc.Open(cfg)               // HSM keys, DataDir/state.db, raft
//	err = n.Bootstrap(ctx)                   // once, on the first node: genesis
//	err = n.AddNode(ctx, other.Info(), actor) // leader: register, then make a voter
//	idx, err := n.Append(ctx, entry)         // returns once a quorum committed it
//	note, err := n.Checkpoint(ctx)           // leader: signed tree head
//
// # Keys
//
// Each node has an ECDSA P-256 identity key generated in its HSM
// (LabelIdentity) and an ML-DSA-65 key whose 32-byte seed is generated at
// first start and kept in DataDir only sealed by an HSM AES key
// (LabelMLDSASeal, the AAD binding cluster and node). Checkpoints carry both
// signatures under the key name KeyName(cluster, id); the log origin is
// Origin(cluster). NodeKeys lists every registered node's public keys, for
// ledger.VerifyCheckpoint. The node's TLS key is a third HSM key
// (LabelTLS, see TLSSigner): its certificate is issued from a CSR, and no
// node private key is ever a file.
//
// # State machine
//
// Raft commands are a versioned JSON envelope, {"v":1,"type":…}, of eight
// types: "ledger.append" (entries in canonical form with index 0),
// "cluster.genesis", "node.add", "node.remove", "kek.attest" (a node's
// statement that it destroyed a sealing key), and for officers
// "cluster.init", "ceremony.propose" and "ceremony.approve" (see
// Ceremonies). Apply is deterministic (no
// clock, HSM, randomness or network: the leader stamps entry times before
// proposing, and Apply only keeps them non-decreasing) and idempotent by raft
// index (the last applied index is stored with the effects, in one bbolt
// transaction, and replays at or below it are skipped). Every command that
// changes the state logs its entry in the same transaction; membership
// commands log denied requests too. Unknown or malformed commands are
// rejected with a *CommandError on every node alike. The state lives in
// DataDir/state.db (buckets meta, nodes, ledger, drills and more; see fsm.go), never whole in
// memory. Snapshots stream a read transaction of the database; Restore keeps
// a database that already contains the snapshot's state (the restart case)
// and replaces it otherwise.
//
// # Ceremonies
//
// Genesis (Bootstrap) forms the cluster; trust starts at the "cluster.init"
// entry that Init commits once: the officers' bundles (parsed strictly, ids
// unique), the quorum M (2 ≤ M ≤ officers: one officer must never decide
// alone, in development too), the default KEK threshold and optionally new
// allowed regions; the entry names officer fingerprints, node key hashes,
// quorum and regions. Until then Propose and Approve return
// ErrNotInitialized. Propose and Approve decide with package ceremony inside
// Apply, with the leader's time and a VerifyFunc over the recorded officer
// bundles (verification is deterministic); the submitter (the caller's
// certificate name) must be the proposer or the approver. Each proposal and
// approval, accepted or refused, is a "ceremony.propose" or
// "ceremony.approve" entry (a refusal: outcome denied, its code as reason,
// and a *CeremonyRefusal to the caller); a proposal's signature counts as
// its proposer's approval. The approval that reaches the quorum executes
// the operation in the same command ("ceremony.execute"), or closes it
// refused ("ceremony.refuse") when the state forbids it; a final refusal
// (expired, superseded) also closes it. officer.add/remove, quorum.set,
// regions.set, identity.revoke, node.add/remove and the KEK, legal hold
// and escrow operations execute; node ceremonies are then followed by the
// leader's raft AddVoter or RemoveServer. A proposal or approval the state
// machine would only refuse (an officer who is not active, an unknown or
// closed proposal, an oversized signature, …) is refused by the leader
// before raft and logged as "ceremony.denied" (screen.go). The
// state version (meta) is 1 at init and grows with every executed ceremony,
// so an executed ceremony supersedes every other open proposal: each was
// reviewed against a state that no longer holds.
//
// # Appending
//
// Append stamps the entry, queues it, and a batcher proposes queued entries
// as one raft command per batch (GroupCommit bounds entries, bytes and
// delay). It returns only once the command is committed by a quorum and
// applied: any error means the entry must be treated as not logged
// (ErrNoQuorum: outcome unknown; *NotLeaderError, ErrClosed: not proposed).
// A follower forwards its batches to the leader through its Forwarder: the
// peer channel (keysvc/peer on the raft listener's custos-peer/1 ALPN),
// whose leader end checks them (CheckForwarded) and calls AppendBatch.
//
// # Errors
//
// Sentinels for what callers branch on (ErrNotLeader, ErrNoQuorum,
// ErrRegionNotAllowed, …); *NotLeaderError carries the leader's ID and API
// address; *CommandError is the state machine's deterministic rejection.
// Package keysvctest runs in-memory clusters of nodes for tests.
package keysvc

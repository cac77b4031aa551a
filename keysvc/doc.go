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
// ledger.VerifyCheckpoint.
//
// # State machine
//
// Raft commands are a versioned JSON envelope, {"v":1,"type":…}, of four
// types: "ledger.append" (entries in canonical form with index 0),
// "cluster.genesis", "node.add" and "node.remove". Apply is deterministic (no
// clock, HSM, randomness or network: the leader stamps entry times before
// proposing, and Apply only keeps them non-decreasing) and idempotent by raft
// index (the last applied index is stored with the effects, in one bbolt
// transaction, and replays at or below it are skipped). Every command that
// changes the state logs its entry in the same transaction; membership
// commands log denied requests too. Unknown or malformed commands are
// rejected with a *CommandError on every node alike. The state lives in
// DataDir/state.db (buckets meta, nodes, ledger; see fsm.go), never whole in
// memory. Snapshots stream a read transaction of the database; Restore keeps
// a database that already contains the snapshot's state (the restart case)
// and replaces it otherwise.
//
// # Appending
//
// Append stamps the entry, queues it, and a batcher proposes queued entries
// as one raft command per batch (GroupCommit bounds entries, bytes and
// delay). It returns only once the command is committed by a quorum and
// applied: any error means the entry must be treated as not logged
// (ErrNoQuorum: outcome unknown; *NotLeaderError, ErrClosed: not proposed).
// A follower forwards its batches to the leader through a Forwarder (the
// HTTP layer's mutual-TLS client, calling AppendBatch on the leader).
//
// # Errors
//
// Sentinels for what callers branch on (ErrNotLeader, ErrNoQuorum,
// ErrRegionNotAllowed, …); *NotLeaderError carries the leader's ID and API
// address; *CommandError is the state machine's deterministic rejection.
// Package keysvctest runs in-memory clusters of nodes for tests.
package keysvc

// Package keysvc is a Custos node's runtime: everything around the
// deterministic state machine (package state) that touches its HSM, the
// network, raft or the clock.
//
//	n, err := keysvc.Open(cfg)                // HSM keys, DataDir/state.db, raft
//	err = n.Bootstrap(ctx)                    // once, on the first node: genesis
//	err = n.AddNode(ctx, other.Info(), actor) // leader: register, then make a voter
//	idx, err := n.Append(ctx, entry)          // returns once a quorum committed it
//	note, err := n.Checkpoint(ctx)            // leader: signed tree head
//
// # What it owns
//
//   - The state database (fsm.go): DataDir/state.db, opened, applied to by
//     state.Apply one transaction per raft command, snapshotted and
//     restored; a snapshot that contradicts what the node applied or
//     signed is refused (snapguard.go).
//   - Group commit (groupcommit.go): Append stamps an entry with the
//     leader's time, queues it, and one raft command per batch carries the
//     queue. Any error means the entry must be treated as not logged
//     (ErrNoQuorum: outcome unknown; *NotLeaderError, ErrClosed: not
//     proposed). A follower forwards its batches to the leader over the
//     peer channel (package peer), whose leader end checks them
//     (CheckForwarded).
//   - Key operations (keyops.go): wrap, unwrap, datakey and rewrap, checked
//     against the KEK's policy and logged; activation (activation.go): a
//     node reconstitutes a KEK version from t shares its peers release.
//   - The leader side of ceremonies (ceremonies.go, kekprep.go, screen.go):
//     requests become commands, refusals the state machine would only log
//     are logged before raft, and KEK versions are dealt to the nodes
//     (each seals its share in its HSM) before the approval that creates
//     them; kekreconcile.go destroys sealing keys of destroyed versions.
//   - The node's keys (nodekeys.go): an ECDSA P-256 identity key in the HSM
//     and an ML-DSA-65 key whose seed is sealed by the HSM sign checkpoints
//     under ledger.KeyName(cluster, id); an X-Wing KEM key receives
//     released shares. Its TLS key is package nodetls's.
//   - Config, metrics and the denial folder (denials.go).
//
// # Errors
//
// Sentinels for what callers branch on (ErrNotLeader, ErrNoQuorum,
// ErrRegionNotAllowed, …; the state machine's verdicts are package
// state's, re-exported); *NotLeaderError carries the leader's ID and API
// address; a *state.CommandError (wrapped in a *raft.CommandError) is the
// state machine's deterministic rejection.
// Package keysvctest runs in-memory clusters of nodes for tests.
package keysvc

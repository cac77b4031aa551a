// Package raft replicates opaque commands across the Custos cluster. It wraps
// hashicorp/raft and knows nothing of keys: the caller supplies a StateMachine, proposes
// commands on the leader with Node.Apply, and every node applies the committed commands
// in the same order.
//
//	n, err := raft.Open(cfg, sm)               // storage in cfg.DataDir, mutual TLS on cfg.Addr
//	err = n.Bootstrap(servers)                 // once, on a fresh node, to form the cluster
//	res, err := n.Apply(ctx, cmd)              // leader only; returns after a quorum committed cmd
//	err = n.AddVoter(ctx, "node-4", "n4:7000") // membership changes, leader only
//	err = n.Shutdown()
//
// # Results and errors
//
// Apply returns the state machine's result only after the command is committed by a
// quorum and applied on the leader; it never reports success otherwise. Failures say
// what the caller can do: *NotLeaderError (errors.Is ErrNotLeader) names the leader to
// forward to and nothing was proposed; ErrNoQuorum (deadline passed) and
// ErrLeadershipLost mean the outcome is unknown, so the command must be treated as not
// done and retried only if it is idempotent; *CommandError wraps the state machine's own
// rejection of a command that did commit.
//
// # Determinism
//
// StateMachine.Apply runs on every node, for every committed command, and again after a
// restart for the entries that follow the latest snapshot. It must be deterministic: no
// clock reads, no randomness, no HSM calls, no network, no I/O but the state machine's own
// store. The proposer decides time, random values and anything else that varies, and puts
// them in the command. Snapshot captures a point-in-time handle cheaply; the expensive
// streaming happens in Snapshot.WriteTo, concurrently with later Applies.
//
// # Storage and transport
//
// The log and stable store are a bbolt file (raft.db, fsync on every write) in
// Config.DataDir, with file snapshots beside it (the latest two kept). Peers talk raft
// over TCP inside mutual TLS 1.3 with the hybrid X25519MLKEM768 key exchange only and
// the ALPN protocol "custos-raft/1": each side presents its node certificate and requires
// the other's to chain to the cluster CA pool (Config.CAs), then runs the optional
// Config.VerifyPeer. A dialled peer's certificate must also name the host it was dialled
// at, so node certificates carry their cluster address as a DNS or IP name and allow both
// serverAuth and clientAuth. Connections that fail the handshake never reach raft; they
// are logged and counted in Stats.TLSRejected.
//
// At most 64 inbound handshakes run at once. A connection must begin its handshake
// within Config.FirstBytesTimeout (1 s), so an idle one holds its slot no longer; one IP
// address holds at most Config.MaxHandshakesPerIP (4) of them, and a connection over
// that cap is closed at once without taking a slot (Stats.TLSOverIPCap). A node keeps at
// most 1 of its own handshakes in flight to any one address, so that its own bursts of
// new connections stay within a peer's cap.
//
// # Who may say what
//
// hashicorp/raft believes the sender id and address an RPC claims. Here, with
// Config.PeerID set, every inbound RPC (AppendEntries and heartbeats, RequestVote,
// RequestPreVote, InstallSnapshot, TimeoutNow) is decoded before raft sees it, and must
// claim the node id of its connection's certificate and an address of that node (named
// by the certificate, and the one in this node's configuration). An InstallSnapshot must
// also come from a voter of this node's latest configuration and pass
// Config.AcceptSnapshot. A refused RPC closes its connection and is counted in
// Stats.RPCRejected (Stats.SnapshotRefused for snapshots); raft never sees it.
// VerifyPeer runs at every handshake, inbound and outbound, with no session resumption;
// Node.DropPeer and Node.ReverifyPeers close established connections of a peer that is
// no longer accepted.
//
// # Peer channel
//
// The raft listener also speaks ALPN "custos-peer/1", with the same TLS and the same
// checks, for the owner's node-to-node protocol: Node.DialPeer dials another node's raft
// address, Node.PeerListener accepts. Each side gets a *PeerConn carrying the other's
// node id and certificate. Raft and peer-channel connections never cross.
//
// # Tests
//
// Config.Memory runs nodes on an in-process MemNetwork, with in-memory storage that
// survives a node restart; package rafttest builds clusters on it. There is no TLS in
// memory, so no RPC binding; the peer channel runs over net.Pipe, with identities set
// by MemNetwork.SetPeerIdentity.
package raft

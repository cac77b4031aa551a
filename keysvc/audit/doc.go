// Package audit is the auditor's side of the key-op log: the evidence pack
// format (custos-evidence/1), the trust file an auditor pins, and Verify,
// which checks a pack offline, trusting nothing but the trust file. It is a
// leaf: it reads what the API serves (package client's types) and checks it
// with packages ledger, ceremony and officer, never with the node.
//
//	trust, _ := audit.NewTrust(cluster, genesis, genesisProof, nodeKeys, note) // custos audit checkpoint
//	w, _ := audit.NewWriter(f, audit.Header{Cluster: cluster, Origin: "custos/" + cluster, From: 0, To: size})
//	w.NodeKeys(…); w.Officer(…); w.Ceremony(…); w.Certificate(…); w.Entry(i, b); w.Checkpoint(note); w.Close()
//	report, err := audit.Verify(pack, trust, audit.Options{})                // custos audit verify
//	next, _ := trust.Advance(report)                                          // pin what was verified
//
// # The pack
//
// A pack is JSON Lines: one JSON object per line, each ending in "\n", the
// first field "t" naming the record. Each record has exactly one encoding,
// the one [Writer] produces (encoding/json of the fields below, in this
// order, compact, without HTML escaping; an entry record as shown): the
// [Reader] re-encodes every line and refuses any other bytes, unknown
// types or fields, and lines over [MaxLineSize]. Records come in this
// order:
//
//	{"t":"header","format":"custos-evidence/1","cluster":C,"origin":"custos/"+C,"from":F,"to":T,"created":"<RFC 3339 UTC, 9 digits>"}
//	{"t":"node_keys","text":"<verifier key lines>"}                       any number
//	{"t":"officer","id":…,"bundle":…,"fingerprint":"sha256:<hex>"}       any number
//	{"t":"ceremony","id":…,"proposal":"<canonical bytes>","approvals":[{"officer":…,"signature":…,"entry":N}],"status":…,"proposed":N,"closed":N}
//	{"t":"certificate",…}                                                client.DestructionCertificate's fields, any number
//	{"t":"frontier","size":F,"hashes":["<base64>",…]}                     exactly when F > 0
//	{"t":"entry","i":N,"e":"<base64 of the canonical entry>"}             for N = F … T-1, in order
//	{"t":"checkpoint","note":"<signed note>"}                            the checkpoint of size T
//	{"t":"consistency","old":M,"new":N,"hashes":["<base64>",…]}          optional
//
// node_keys hold checkpoint verifier key lines (ledger.NodeKey.MarshalText),
// each node's lines exactly as it registered them: the log names the
// SHA-256 of that text. officer records hold the bundles (officer.PublicKey
// canonical encoding) of the officers; a bundle's fingerprint is
// "sha256:" and the hex SHA-256 of its bytes. ceremony records are the
// transcripts the API serves (client.Ceremony; see [CeremonyFromClient]):
// proposal bytes, accepted approvals with their hybrid signatures and the
// log indexes of their entries. certificate records are destruction
// certificates, each holder's statement a signed note. The frontier holds
// the RFC 6962 hashes of the maximal complete subtrees covering entries
// [0, F), left to right, one per set bit of F ([Tree.Frontier];
// [FrontierFromProof] computes it from entry F-1 and its inclusion proof).
// The consistency proof relates the auditor's pinned checkpoint (size P)
// and the pack's (size T): old = min(P, T), new = max(P, T).
//
// Everything before the entries is small and held in memory; entries are
// streamed and never held, so verifying a pack of millions of entries
// takes a few megabytes.
//
// # The trust file
//
// [Trust] is what `custos audit checkpoint` saves: the cluster, entry 0
// (cluster.genesis, which names the cluster and origin), the node keys the
// auditor trusts at pin time, and a signed checkpoint, checked when made
// ([NewTrust]: the checkpoint verifies with those keys and an inclusion
// proof shows the genesis entry is entry 0 of its tree) and when read
// ([ParseTrust]). [Trust.Advance] pins the checkpoint of a pack that
// verified in full, with the state the log had established by then
// ([State]: nodes and key hashes, officers and key fingerprints, quorum,
// state version), so that the next pack may start there.
//
// # What Verify checks
//
// In one pass, stopping at the first failure, which it names (a [*Failure]:
// kind, entry index, pack line, message):
//
//   - the pack is well formed, complete and of the trust file's cluster;
//   - from entry 0, that entry 0 is the pinned genesis entry; from F > 0, a
//     frontier, and a trusted state at F (or Options.AllowPartial);
//   - every entry: numbered in sequence, the canonical encoding of an entry
//     of that index (ledger.ParseEntry's rules), times never decreasing;
//     every leaf is hashed into the tree;
//   - the log's account of membership, replayed: nodes registered by
//     node.add entries before cluster.init and by node.add ceremonies after
//     (a node added after cluster.init without one fails), removals,
//     cluster.init naming exactly the registered nodes and the officers by
//     fingerprint (whose bundles the pack must hold), officer and quorum
//     changes by ceremony only;
//   - every executed ceremony: its transcript is in the pack, its proposal
//     parses and has the digest the log names, it was made against the
//     state version then current and executed before it expired, and at
//     least the quorum then in force of distinct officers then active
//     signed that digest (both parts of each hybrid signature verify with
//     the bundle whose fingerprint the log recorded); the approvers the
//     entry names are the transcript's; the log's account of the change
//     (officer, quorum, node and its keys) matches the proposal;
//   - every accepted proposal and approval is by an officer active at that
//     entry ("entry 412: approval by officer carol, removed at entry 380"),
//     and matches the transcript's record of it;
//   - every destruction certificate: each holder's statement is signed by
//     that node's registered keys (ECDSA and ML-DSA-65), says exactly that
//     the node destroyed its sealing key of that version for that ceremony,
//     and hashes to what its kek.destroyed entry records; the certificate's
//     ceremony, approvers and holders are those of the kek.destroy
//     execution (each cross-check where the pack holds the entry);
//   - every activation and share release ([ShareReleases]): an ok
//     kek.activate carries the client's signed request (reqsig), whose
//     signature verifies with the certificate it carries, whose identity
//     and fingerprint are the entry's actor, and which asks for this
//     cluster, KEK, version and request id (unwrap, rewrap or
//     unwrap-batch), once; an ok kek.release names an earlier such
//     activation of its KEK, version and request id, served by the node it
//     released to, for the same client, within [ReleaseWindow]; no node
//     releases to itself or twice for one activation. Releases of the
//     earlier format (no activation) are counted, not refused, until the
//     log's first entry of the current format (State.ReleasesBound);
//   - every activation ShareReleases verified is of a client the unwrap
//     access of its KEK's policy in force at that entry grants (role, or
//     role/name, and region; [CodeActivationNotPermitted]). Policies are
//     followed from the executed kek.create and kek.policy ceremonies (and
//     State.KEKs); required context fields cannot be checked (the log
//     holds only the context's hash), and activations of a KEK whose
//     policy was not followed are counted, not checked ([PolicyCounts]);
//   - the checkpoint: both signatures of an active node whose keys the log
//     registered (a node removed earlier, or a key the log never
//     registered, fails), size T, and the root of the entries;
//   - against the pinned checkpoint (size P): if the pack covers size P,
//     the root it computes there equals the pinned root (else ErrFork); if
//     P < F, a consistency proof from P (else ErrNotExtension); if P > T, a
//     proof that the pack is a prefix of the pinned tree (else
//     ErrRollback).
//
// Options.OnEntry sees every entry once it passed its checks, so a report
// can be aggregated in the same pass (package audit/report does); [Scan]
// reads a pack without verifying it.
//
// # Node statements
//
// [ParseSealedStatement] and [ParseDestroyedStatement] read back the
// statements nodes sign (ledger.ShareSealedStatement,
// ShareDestroyedStatement): exactly the writer's lines, in its order, none
// missing or extra, or a [*StatementError]. [CheckSealed] and
// [CheckDestroyed] also compare them with what the reader expects; Verify
// and the CLI's kek commands use them.
//
// # What a verified pack proves
//
// That the cluster's nodes, as the log itself registered them from the
// pinned genesis, signed a tree whose leaves are exactly these entries; that
// this tree extends (or is a prefix of) the one the auditor pinned, so the
// log was not rewritten or forked between the two; and that every change of
// officers, quorum, nodes, KEKs, legal holds and escrow was approved by a
// quorum of officers who were officers at the time, with their own keys.
//
// # What it cannot prove
//
//   - That the client certificate behind an activation chains to the
//     cluster CA, was not revoked, or that the KEK policy let that client
//     unwrap: neither the pack nor the trust file holds the CA, and the
//     verifier does not follow KEK policies. The nodes check both before
//     they serve and before they release; the verifier checks the client's
//     signature with the certificate's own key.
//   - That key operations happened as logged. Entries of agents' requests
//     (wrap, unwrap, activations) are written by the serving node and
//     signed only as part of the tree: a compromised node can serve a
//     request and not log it, or log one that never happened. The log is
//     append-only, not truthful.
//   - Anything a quorum of officers approves: a compromised quorum can
//     remove honest officers, add nodes, change policies, recover escrowed
//     keys; the pack then shows exactly who approved it, no more.
//   - Anything a node's keys sign: whoever holds a registered node's HSM
//     key and ML-DSA seed can sign a checkpoint of a forked log. Two
//     checkpoints of one size with different roots (ErrFork) are the
//     evidence; auditors who compare pinned checkpoints between them (or
//     watch) see it, one auditor alone sees only its own view.
//   - Nodes registered before cluster.init: the operator adds them
//     without officers; the log names their keys, which is all it can do.
//   - The genesis: an auditor must get it (or the first checkpoint and the
//     node keys) from the cluster out of band once.
//   - That a destroyed key is gone from a node that never attested, from
//     the officers' escrow shares (the certificate names the escrow
//     officers), or from a node's HSM if the node lied about destroying it.
//   - Approvals the log refused, proposals never executed, times: the
//     leader stamps entry times; Verify checks only that they never go back.
//
// A partial verification (Options.AllowPartial) proves less: the entries
// and the tree, the checkpoint against the trust file's node keys and the
// nodes the pack adds, and the relation to the pinned checkpoint; not who
// approved what.
package audit

// Package ceremony decides officer quorum ceremonies: what a proposal is,
// how it is encoded and signed, and when it executes. It is pure: no I/O,
// clock, HSM or randomness (but [NewID]'s, from the reader it is given), so
// the state machine calls it inside its deterministic Apply. Every function
// is safe for concurrent use.
//
//	id, _ := ceremony.NewID(rand.Reader)
//	p := ceremony.Proposal{Cluster: "prod", ID: id, Params: ceremony.KEKRotate{KEKID: "payroll"},
//		Proposer: "alice", Created: now, Expires: now.Add(24 * time.Hour), StateVersion: 41}
//	b, err := p.Marshal()      // canonical JSON: what officers review
//	d := p.Digest()            // SHA-256(DomainLabel || b): what officers sign
//	fmt.Println(ceremony.Describe(p, 2))
//
//	// In Apply, with the state's rules and the leader's time for the command:
//	err = ceremony.CheckProposal(p, rules, now, version)                       // submission
//	err = ceremony.CheckApproval(p, accepted, a, rules, now, version, verify) // each approval
//	out, err := ceremony.Evaluate(p, append(accepted, a), rules, now, version, verify)
//	if out.Ready { /* execute, bump the state version, close p */ }
//
// # Proposals
//
// A [Proposal] carries the cluster id, a random id, the operation and its
// [Params] (one type per [Operation], each with a Validate), the proposer,
// creation and expiry times and the state version it was made against.
// [Proposal.Marshal] gives its one canonical JSON encoding and
// [ParseProposal] accepts exactly those bytes and nothing else (errors are
// [*ParseError]). KEK policies are a [Policy]. [Describe] says in words what
// a proposal will do, for `custos officer show`.
//
// Genesis is not a proposal: it runs before there are officers (custos
// operator init), and it fixes the first [Rules].
//
// # Decisions
//
// A proposal executes once [Rules].Quorum distinct active officers have
// approved it, before it expires, and only while the state version is the
// one it was made against (no bait-and-switch). Proposing is not
// approving: the proposer counts only with a signed approval of their own,
// like anyone else, since a proposal is submitted over mTLS while an
// approval is a signature by the officer's own keys over the exact bytes.
// Signatures are checked by a [VerifyFunc] the caller passes, so this
// package needs no cryptography but SHA-256.
//
// What the state machine must do around these calls:
//   - change the state version whenever something a proposal could act on
//     changes (officers, quorum, nodes, allowed regions, KEKs and their
//     policies, legal holds), and never for logging proposals or approvals;
//     executing a proposal therefore supersedes every other open one;
//   - keep proposals' state (open, executed, refused) and refuse approvals
//     of closed ones with [CodeClosed];
//   - check that the submitter of a proposal is its Proposer, and the
//     submitter of an approval its Officer;
//   - at execution, check what depends on state: the KEK exists (or not,
//     for kek.create), the region is allowed, M and escrow m do not exceed
//     the officers, t does not exceed the nodes, legal holds, an officer
//     bundle that parses and names its id (Validate checked its
//     fingerprint), a node's keys (state.NodeInfo's own validation).
//
// # Errors
//
// Decisions return a [*RefusalError] whose [Code] is stable (a log reason
// and an API error code); [Code.Final] tells whether the proposal is dead.
// A plain error means the caller broke a precondition (invalid [Rules], a
// zero time, a nil VerifyFunc).
package ceremony

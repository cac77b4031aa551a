// Package errcode defines, once, every stable error code a custos node
// answers: in the "code" of an API error body, in a peer-channel answer, or
// as the reason of a refusal in the key-op log ("code: why"). Codes are
// stable; messages are not. The node (keysvc, httpapi) uses these names;
// the client SDK re-exports them as client.Code….
//
// Each line says the HTTP status the API answers with it, or where else
// it appears. Refusal codes of package ceremony (invalid_proposal,
// unknown_officer, expired…) and of package reqsig are defined there.
package errcode

// Request and node errors of the API.
const (
	BadRequest       = "bad_request"         // 400: invalid parameters, or a well-formed body with invalid values (unknown fields, wrong types)
	MalformedRequest = "malformed_request"   // 400: the body is not one well-formed JSON object in valid UTF-8 (syntax, invalid UTF-8, a lone surrogate escape, data after it, none)
	Unauthenticated  = "unauthenticated"     // 401: no verified client certificate
	Forbidden        = "forbidden"           // 403: the certificate's role (or name) may not do this
	CertRevoked      = "certificate_revoked" // 403: the certificate, or every certificate of its identity, was revoked by ceremony
	RegionNotAllowed = "region_not_allowed"  // 403: a region outside the cluster's allowed regions (also a node.add denial)
	NotFound         = "not_found"           // 404: no such route, node, entry or tree size (yet)
	MethodNotAllowed = "method_not_allowed"  // 405
	Conflict         = "conflict"            // 409: contradicts the cluster state (node id taken, already bootstrapped, last node)
	TooLarge         = "too_large"           // 413: body or batch over its limit
	Rejected         = "rejected"            // 422: the state machine rejected the command
	Internal         = "internal"            // 500: the node failed; the cause is in its log under the request id
	NotLeader        = "not_leader"          // 307: ask the leader (client.HeaderLeader); nothing was done
	NoLeader         = "no_leader"           // 503: no leader known (an election is under way); nothing was done
	NoQuorum         = "no_quorum"           // 503: not confirmed committed in time: the outcome is unknown, treat it as failed
	NotReady         = "not_ready"           // 503: the node cannot serve yet (not bootstrapped, not caught up)
	Unavailable      = "unavailable"         // 503: the node is shutting down or its state is broken; try another
	NotBootstrapped  = "not_bootstrapped"    // 503: the cluster has no genesis yet
	RequestCanceled  = "canceled"            // 503: the request was canceled before it finished
	RateLimited      = "rate_limited"        // 429: over this identity's rate limit; retry after Retry-After seconds; nothing was done
)

// Denials of node membership commands (the reason of a denied node.add or
// node.remove entry; the API answers them as the status in brackets, under
// the code in brackets when it differs).
const (
	NodeConflict     = "node_conflict"     // [409 conflict] a node id registered with other details or keys
	UnknownNode      = "unknown_node"      // [404 not_found] no registered node has that id
	LastNode         = "last_node"         // [409 conflict] removing the node would leave the cluster without members
	InvalidNode      = "invalid_node"      // [400 bad_request] a node description that breaks its rules
	CeremonyRequired = "ceremony_required" // 403: after initialisation a node joins only once a node.add ceremony has executed
)

// Officers and ceremonies. A refused proposal or approval answers one of
// these or a refusal code of package ceremony; every refusal is also a
// denied log entry.
const (
	NotInitialized     = "not_initialized"     // 409: no officers yet: run custos operator init
	AlreadyInitialized = "already_initialized" // [409 conflict] a second cluster.init (its denied entry's reason)
	InvalidInit        = "invalid_init"        // [400 bad_request] a cluster.init that breaks its rules
	NotProposer        = "not_proposer"        // 403: the certificate's name is not the proposal's proposer
	ProposalExists     = "proposal_exists"     // 409: a proposal with that id was already submitted
	UnknownProposal    = "unknown_proposal"    // 404: no proposal with that id
	// NotSupportedYet: 501 when the server behind the API does not serve a
	// route (a service built without it). Nodes of earlier releases also
	// answered it (422) to proposals of operations they could not execute;
	// this release executes them all.
	NotSupportedYet = "not_supported_yet"
)

// Refusals of an approved ceremony by the state (the reason of a
// ceremony.refuse entry; the approval that closed it succeeds).
const (
	OfficerExists      = "officer_exists"       // officer.add of an active officer
	BelowQuorum        = "below_quorum"         // an officer removal, revocation or quorum change leaving fewer officers than the quorum
	RegionInUse        = "region_in_use"        // regions change leaving out a member's or a policy's region
	KEKExists          = "kek_exists"           // kek.create of an existing KEK
	LegalHold          = "legal_hold"           // a change of a KEK that its legal hold forbids
	NotHeld            = "not_held"             // legal hold release of a KEK not held
	AlreadyHeld        = "already_held"         // legal hold of a KEK already held
	NothingToChange    = "nothing_to_change"    // a change that changes nothing
	InvalidPolicy      = "invalid_policy"       // a KEK policy that breaks its rules
	NoEscrow           = "no_escrow"            // escrow recovery of a version without escrow
	KEKCreationFailed  = "kek_creation_failed"  // the leader could not deal the version (its prep_error)
	InvalidKEKMaterial = "invalid_kek_material" // dealt material that does not verify
	AlreadyRevoked     = "already_revoked"      // identity.revoke of what is already revoked
	NodeMember         = "node_member"          // identity.revoke of a member node: node.remove revokes it
	IdentityRevoked    = "identity_revoked"     // officer.add or node.add of a revoked identity (also a node.add denial): choose another name
)

// KEK reads and KEK ceremonies.
const (
	UnknownKEK     = "unknown_kek"      // 404: no such KEK or version (also a ceremony.refuse reason)
	NotDestroyed   = "not_destroyed"    // 409: a destruction certificate of a version not destroyed
	BadEscrowShare = "bad_escrow_share" // 400: an escrow share that is not the officer's or does not verify
)

// Refused key operations. Each refusal is also logged in the key-op log:
// as a denied entry of its own for a single operation, in the batch's
// entry for a batch item.
const (
	AccessDenied      = "access_denied"      // 403: the KEK's policy grants the operation to neither the identity nor its role
	RegionDenied      = "region_denied"      // 403: the caller's region is not among the policy's regions for the operation
	ContextMissing    = "context_missing"    // 400: a context field the policy requires is absent or empty
	InvalidContext    = "invalid_context"    // 400: the context breaks the wrapping format's bounds
	InvalidPlaintext  = "invalid_plaintext"  // 400: a data key outside 1..4096 bytes
	MalformedBlob     = "malformed_blob"     // 400: the wrapped blob does not parse
	WrongKEK          = "wrong_kek"          // 400: the blob is wrapped with another KEK than the one in the path
	UnwrapFailed      = "unwrap_failed"      // 400: the blob does not open: modified, or wrapped under another context
	UnknownVersion    = "unknown_version"    // 404: the blob names a version the KEK does not have (also a ceremony.refuse reason)
	KEKDisabled       = "kek_disabled"       // 409: the version is disabled
	NoActiveVersion   = "no_active_version"  // 409: wrap, datakey or rewrap with no active version
	KEKDestroyed      = "kek_destroyed"      // 410: the version is destroyed (also a ceremony.refuse reason)
	NotCaughtUp       = "not_caught_up"      // 503: the node could not confirm its answer against its own state in time; retry
	SharesUnavailable = "shares_unavailable" // 503: fewer than t nodes released their shares; retry later
)

// The node-to-node channel. Its answers also use BadRequest,
// MalformedRequest, TooLarge, Rejected, Internal, NotLeader and NoQuorum,
// meaning what they mean in the API. The first four are also API codes
// of errors a peer's refusal causes.
const (
	SealRefused    = "seal_refused"    // 403: a node refused to seal a share
	LiveShare      = "live_share"      // 409: a discard of a key that protects a committed share
	ReleaseRefused = "release_refused" // 403: a peer refused to release its share
	DiscardRefused = "discard_refused" // 403: a discard not from the leader or for another dealing
	ForgedEntry    = "forged_entry"    // peer only: an entry not in the forwarding node's own name
	NotMember      = "not_member"      // peer only: the caller is not a current member
)

// Share release refusals: in the refusing peer's kek.release entry
// (reason "code: why") and in its answer (the requester's activation
// fails with ReleaseRefused or SharesUnavailable).
const (
	ReleaseToSelf       = "release_to_self"          // a node never releases to itself over the network
	ReleaseNotMember    = "release_not_member"       // the requester is not a current member
	ReleaseNotCaughtUp  = "release_not_caught_up"    // this peer has not applied the activation yet
	ReleaseNoActivation = "release_no_activation"    // no committed kek.activate of this node, KEK and version at that index
	ReleaseSignature    = "release_bad_signature"    // the activation's client signature does not verify
	ReleaseReplayed     = "release_replayed"         // the signed request was used by an earlier activation
	ReleaseDenied       = "release_policy_denied"    // the verified client may not unwrap with this KEK
	ReleaseInactive     = "release_version_inactive" // the version is not active
	ReleaseDuplicate    = "release_duplicate"        // this peer already released for that activation
	ReleaseNoShare      = "release_no_share"         // this peer holds no share of the version
)

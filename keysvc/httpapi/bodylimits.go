// Request body limits. Each route takes up to the largest valid body it
// can receive, computed from the limits the code enforces on what the body
// carries, written as encoding/json (and so the SDK) writes it, plus
// jsonMargin; one byte more is 413 too_large (decodeJSON). A limit is an
// upper bound, not the exact largest body: the bounds below are kept
// simple where exactness would tie them to every field's format.

package httpapi

import (
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

// How many bytes of JSON a value takes at most. Standard base64 with
// padding of n bytes is (n+2)/3*4 bytes; a string adds its two quotes.
const (
	// jsonTextByte: a byte of free UTF-8 text (a context, an entry's
	// details, an address, a proposal's reasons) in a JSON string.
	// encoding/json writes control characters and <, > and & as \u00XX;
	// no JSON escape of a byte is longer.
	jsonTextByte = 6
	// jsonCanonicalByte: a byte of an officer's key bundle or signature in
	// a JSON string. Both are canonical JSON of names and base64 (their
	// parsers accept nothing else): only their quotes and a final newline
	// are escaped, in two bytes each.
	jsonCanonicalByte = 2
	// jsonMargin: the field names, separators and braces a route's limit
	// does not count, and a little whitespace. The widest body (a node
	// description) has 7 fields, whose names and framing take under 100
	// bytes.
	jsonMargin = 1 << 10

	jsonPlaintext = (wrapkey.MaxDEKSize+2)/3*4 + 2  // a data key in base64
	jsonBlob      = (wrapkey.MaxBlobSize+2)/3*4 + 2 // a wrapped blob in base64
	// jsonContext: a context's braces, each entry's quotes, colon and
	// comma, and its keys and values: fewer than wrapkey.MaxContextSize
	// bytes of text in all (the size of their canonical encoding).
	jsonContext = 2 + wrapkey.MaxContextEntries*len(`"":"",`) + jsonTextByte*wrapkey.MaxContextSize
	// jsonEscrowShare: an officer's opened escrow share in base64.
	jsonEscrowShare = (threshold.ShareLen+2)/3*4 + 2
	// jsonSignature: an officer's signature (ceremony.MaxSignatureSize).
	jsonSignature = 2 + jsonCanonicalByte*ceremony.MaxSignatureSize
)

// The routes' limits, for decodeJSON.
const (
	// POST /v1/sys/canary: {} or no body.
	maxCanaryBody = int64(jsonMargin)

	// POST /v1/sys/join: a node description. Its keys are bounded by the
	// rule for nodes added by ceremony (ceremony.MaxNodeKeysLen): before
	// init, when nodes join without one, keysvc sets no bound on them (the
	// verifier key text may hold comments), and this limit is the bound.
	maxJoinBody = int64(2 + identity.MaxNameLen + // id
		2 + len("DE") + // region
		2*(2+jsonTextByte*state.MaxAddrLen) + // raft_addr, api_addr
		2 + jsonTextByte*ceremony.MaxNodeKeysLen + // keys
		2 + (wrapkey.PublicKeySize+2)/3*4 + // kem
		2 + len("sha256:") + 64 + // cert
		jsonMargin)

	// POST /v1/sys/init: officers' key bundles, distinct EU/EEA regions
	// (fewer than ceremony.MaxListLen), two small numbers.
	maxInitBody = int64(state.MaxInitOfficers*(2+jsonCanonicalByte*ceremony.MaxBundleLen+len(",")) +
		ceremony.MaxListLen*len(`"DE",`) + jsonMargin)

	// POST /v1/ceremonies: the proposal (canonical JSON that may carry
	// free text), the proposer's signature and escrow share.
	maxProposeBody = int64(2 + jsonTextByte*ceremony.MaxProposalSize + jsonSignature + jsonEscrowShare + jsonMargin)

	// POST /v1/ceremonies/{id}/approvals: officer id, signature, escrow
	// share.
	maxApproveBody = int64(2 + identity.MaxNameLen + jsonSignature + jsonEscrowShare + jsonMargin)

	// POST /v1/attestations: everything the body carries (type, KEK id
	// and version, details' keys and values) is in the entry it becomes,
	// whose canonical encoding is at most ledger.MaxEntrySize bytes;
	// details add their quotes, colons and commas.
	maxAttestBody = int64(jsonTextByte*ledger.MaxEntrySize + ledger.MaxDetails*len(`"":"",`) + jsonMargin)

	// Key operations: wrap; unwrap and rewrap; datakey (a context and a
	// bool).
	maxWrapBody    = int64(jsonPlaintext + jsonContext + jsonMargin)
	maxUnwrapBody  = int64(jsonBlob + jsonContext + jsonMargin)
	maxDataKeyBody = int64(jsonContext + jsonMargin)

	// Batches of at most keysvc.MaxBatchItems items, each framed as an
	// object in a list.
	maxWrapBatchBody   = int64(keysvc.MaxBatchItems*(jsonPlaintext+jsonContext+len(`{"plaintext":,"context":},`)) + jsonMargin)
	maxUnwrapBatchBody = int64(keysvc.MaxBatchItems*(jsonBlob+jsonContext+len(`{"wrapped":,"context":},`)) + jsonMargin)
)

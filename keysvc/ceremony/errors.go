// Refusals: the stable codes a ceremony decision gives, and their error type.

package ceremony

import "fmt"

// Code names why a proposal or an approval was refused. Codes are stable:
// the state machine logs them as entry reasons and the HTTP API returns them
// as error codes.
type Code string

// The refusal codes. [Code.Final] tells which of them end a proposal.
const (
	// CodeInvalidProposal: the proposal itself is malformed (cluster, id,
	// proposer or times break a rule), or was created too far in the future.
	CodeInvalidProposal Code = "invalid_proposal"
	// CodeInvalidParams: the operation is unknown or its parameters fail
	// their Validate.
	CodeInvalidParams Code = "invalid_params"
	// CodeWrongCluster: the proposal names another cluster than the rules.
	CodeWrongCluster Code = "wrong_cluster"
	// CodeExpired: now is at or after the proposal's expiry.
	CodeExpired Code = "expired"
	// CodeSuperseded: the state version moved since the proposal was made.
	CodeSuperseded Code = "superseded"
	// CodeClosed: the proposal was already executed or refused. This package
	// never returns it (it keeps no state); the state machine does, with a
	// *RefusalError of its own, for an approval of a proposal no longer open.
	CodeClosed Code = "closed"
	// CodeWrongProposal: the approval names another proposal id.
	CodeWrongProposal Code = "wrong_proposal"
	// CodeUnknownOfficer: the proposer or approver is not an active officer
	// (never was, or was removed).
	CodeUnknownOfficer Code = "unknown_officer"
	// CodeDuplicateApprover: this officer has already approved the proposal.
	CodeDuplicateApprover Code = "duplicate_approver"
	// CodeBadSignature: the approval's signature does not verify over the
	// proposal digest with the officer's keys (or is empty or oversized).
	CodeBadSignature Code = "bad_signature"
)

var codes = []Code{
	CodeInvalidProposal, CodeInvalidParams, CodeWrongCluster, CodeExpired, CodeSuperseded,
	CodeClosed, CodeWrongProposal, CodeUnknownOfficer, CodeDuplicateApprover, CodeBadSignature,
}

// Codes returns every refusal code, in a fresh slice.
func Codes() []Code { return append([]Code(nil), codes...) }

// Final reports whether a proposal refused with c can never execute, so the
// state machine may close it. The other codes refuse one approval (or one
// submission) and leave an open proposal open.
func (c Code) Final() bool {
	switch c {
	case CodeInvalidProposal, CodeInvalidParams, CodeWrongCluster, CodeExpired, CodeSuperseded, CodeClosed:
		return true
	}
	return false
}

// RefusalError is a deterministic refusal of a proposal or an approval:
// every node evaluating the same inputs returns the same Code and Msg, so
// both may go into the key-op log.
type RefusalError struct {
	Code Code
	Msg  string // lower case, with the proposal id and officer where known
}

func (e *RefusalError) Error() string { return "ceremony: refused (" + string(e.Code) + "): " + e.Msg }

func refuse(code Code, format string, args ...any) *RefusalError {
	return &RefusalError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// ParseError reports bytes that are not the canonical encoding of a valid
// proposal. It is the only error type ParseProposal returns. When the bytes
// are canonical JSON but the proposal breaks a rule, Err is the
// *RefusalError Validate gave (invalid_proposal or invalid_params).
type ParseError struct {
	Msg string
	Err error
}

func (e *ParseError) Error() string { return "ceremony: malformed proposal: " + e.Msg }

func (e *ParseError) Unwrap() error { return e.Err }

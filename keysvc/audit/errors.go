// Failure: the one error type of reading and verifying a pack.

package audit

import (
	"errors"
	"fmt"
)

// Failure kinds: what failed.
const (
	KindPack          = "pack"          // the pack is malformed: syntax, order, missing or extra records
	KindEntry         = "entry"         // an entry: not canonical, misnumbered, out of time order
	KindCheckpoint    = "checkpoint"    // the pack's checkpoint: signature, signer, size or root
	KindConsistency   = "consistency"   // the pack against the pinned checkpoint: fork, rollback, bad proof
	KindAuthorisation = "authorisation" // a change not authorised: quorum, removed officer, unknown node, statement
	KindTrust         = "trust"         // the pack does not fit the trust file (cluster, genesis, state)
)

// Sentinels a Failure may wrap, for errors.Is.
var (
	// ErrFork: the pinned checkpoint and the pack disagree on the tree at
	// one size.
	ErrFork = errors.New("audit: fork")
	// ErrRollback: the pack's tree is smaller than the pinned one and
	// nothing shows it is a prefix of it.
	ErrRollback = errors.New("audit: rollback")
	// ErrNotExtension: the pack does not provably extend the pinned
	// checkpoint.
	ErrNotExtension = errors.New("audit: not an extension of the pinned checkpoint")
	// ErrPartial: the pack starts after entry 0 and the trust file holds no
	// verified state at its start, so authorisation cannot be checked
	// (Options.AllowPartial accepts that).
	ErrPartial = errors.New("audit: partial pack")
)

// PartialHint is what the CLI adds to an ErrPartial failure's message: how
// to verify such a pack in full, or accept it as partial.
const PartialHint = " (a pack from entry N verifies in full against the trust file whose verified state is at N: the one `verify --advance` wrote after the pack before it; --partial accepts it with officers, quorum and ceremonies unchecked)"

// Failure is the first thing that does not hold in a pack. Msg names it
// precisely ("entry 12: approval by officer carol, removed at entry 9").
type Failure struct {
	Kind  string `json:"kind"`           // one of the Kind constants
	Code  string `json:"code,omitempty"` // a finding's stable code (CodeRelease…, CodeActivation…), when it has one
	Index int64  `json:"index"`          // the entry concerned, or -1
	Line  int    `json:"line,omitempty"` // the pack line concerned, when known (1-based)
	Msg   string `json:"message"`
	Err   error  `json:"-"` // a sentinel (ErrFork, …) or the underlying error, if any
}

func (f *Failure) Error() string {
	s := "audit: " + f.Kind + ": " + f.Msg
	if f.Line > 0 && f.Kind != KindPack {
		s += fmt.Sprintf(" (pack line %d)", f.Line)
	}
	return s
}

// Unwrap returns f.Err.
func (f *Failure) Unwrap() error { return f.Err }

func fail(kind string, index int64, line int, err error, format string, args ...any) *Failure {
	return &Failure{Kind: kind, Index: index, Line: line, Msg: fmt.Sprintf(format, args...), Err: err}
}

// packErr is a malformed pack at line.
func packErr(line int, format string, args ...any) *Failure {
	return fail(KindPack, -1, line, nil, "line %d: %s", line, fmt.Sprintf(format, args...))
}

package hsm

// Errors: sentinels to branch on, and *Error to carry the operation and key label.

import (
	"errors"
	"strconv"
)

// Sentinel errors. Every error from this package and its backends wraps one of these
// (or is a configuration mistake), inside an *Error.
var (
	ErrKeyNotFound   = errors.New("key not found")
	ErrKeyExists     = errors.New("key label already in use")
	ErrWrongPIN      = errors.New("wrong PIN") // also a locked, expired or malformed PIN
	ErrTokenNotFound = errors.New("token not found")
	ErrDevice        = errors.New("HSM device error")
	ErrOpen          = errors.New("message authentication failed")
	ErrNoPIN         = errors.New("no PIN available")
	ErrModule        = errors.New("cannot load PKCS#11 module")
	ErrClosed        = errors.New("token is closed")
)

var errBadLabel = errors.New("key label must be 1 to " + strconv.Itoa(MaxLabelLen) + " bytes")

// Operation names used in Error.Op.
const (
	OpOpenToken      = "open token" // Error.Label is then the token label (or "slot N")
	OpGenerateAESKey = "generate aes key"
	OpGenerateSigner = "generate signer"
	OpFindSigner     = "find signer"
	OpSign           = "sign"
	OpSeal           = "seal"
	OpOpen           = "open"
	OpDestroy        = "destroy"
	OpList           = "list"
	OpRescan         = "rescan"
)

// Error is what every Token method and Open return on failure.
//
// Its message names the operation, the key label and the kind of failure, and never a
// raw PKCS#11 return value; those stay in Detail, for operator logs only.
type Error struct {
	Op    string // one of the Op constants
	Label string // key label; for OpOpenToken, the token
	Err   error  // a sentinel, possibly wrapped with a reason that is not PKCS#11 text

	detail string // raw PKCS#11 return value and library message, for Detail
}

func (e *Error) Error() string {
	msg := "hsm: " + e.Op
	switch {
	case e.Label == "":
	case e.Op == OpOpenToken:
		msg += " " + strconv.Quote(e.Label)
	default:
		msg += " with key " + strconv.Quote(e.Label)
	}
	return msg + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Detail returns the underlying cause as the PKCS#11 library reported it, such as
// "pkcs11: 0xA0: CKR_PIN_INCORRECT", or "" if there is none. It is for operator logs;
// never send it to a client.
func (e *Error) Detail() string { return e.detail }

// NewError returns the *Error of a failed operation whose underlying cause, as the
// PKCS#11 library reported it, is detail. It is for backends; detail is what Detail
// returns and never goes into the message.
func NewError(op, label string, err error, detail string) *Error {
	return &Error{Op: op, Label: label, Err: err, detail: detail}
}

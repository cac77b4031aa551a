package officer

// Errors: the sentinels callers branch on, and the one error type of the parsers.

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors that wrap them say more (which part, which file).
var (
	// ErrBadSignature: a signature does not verify — a part is missing, malformed,
	// of the wrong algorithm, or fails under this key and digest. Both parts must
	// verify for a signature to be valid.
	ErrBadSignature = errors.New("officer: bad signature")
	// ErrBadPassphrase: the passphrase does not open the key file.
	ErrBadPassphrase = errors.New("officer: wrong passphrase for key file")
	// ErrKeyMismatch: the key material found (in a key file, or on the PKCS#11 token
	// it names) is not the key the file was made with.
	ErrKeyMismatch = errors.New("officer: key does not match the key file")
	// ErrOpen: an HPKE ciphertext does not open under the officer's X-Wing key: it
	// was sealed to another key or with other info or aad, or it was modified.
	ErrOpen = errors.New("officer: cannot open: not sealed to this officer's key, or modified")
	// ErrClosed: the Signer was closed; its private keys are gone.
	ErrClosed = errors.New("officer: signer is closed")
)

// ParseError reports a malformed encoding: a public key, a signature, a key file's
// contents or a PKCS#11 URI. Every parser in this package returns only this type for
// malformed input, and its message never contains private key material.
type ParseError struct {
	Format string // what was parsed: "public key", "signature", "key file", "pkcs11 uri"
	Field  string // JSON field or URI attribute at fault; "" if the fault is not in one field
	Msg    string // what is wrong
}

func (e *ParseError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("officer: malformed %s: %s", e.Format, e.Msg)
	}
	return fmt.Sprintf("officer: malformed %s: %s: %s", e.Format, e.Field, e.Msg)
}

func parseErr(format, field, msg string, args ...any) *ParseError {
	return &ParseError{Format: format, Field: field, Msg: fmt.Sprintf(msg, args...)}
}

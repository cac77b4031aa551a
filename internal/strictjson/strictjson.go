// Package strictjson decodes untrusted JSON request bodies strictly, for the
// HTTP API and the peer channel alike. A body must be exactly one JSON
// object, well-formed, in valid UTF-8, with nothing after it; encoding/json
// alone would quietly turn invalid UTF-8 and lone UTF-16 surrogate escapes
// ("\ud800") into U+FFFD, which here are refused. Fields the target does not
// know are refused too.
//
// Two error types say whose fault a refusal is: *MalformedError for a body
// that is not well-formed JSON at all, *InvalidError for well-formed JSON
// whose values do not fit. Neither quotes the body: bodies may carry
// secrets (data keys, shares), and error messages end up in logs.
package strictjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MalformedError is a body that is not one well-formed JSON value in valid
// UTF-8: a syntax error, invalid UTF-8, a lone surrogate escape, data after
// the value, or nothing at all.
type MalformedError struct {
	Offset int64  // byte offset of the fault in the body
	Reason string // what is wrong, never the body's bytes
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("malformed JSON at byte %d: %s", e.Offset, e.Reason)
}

// InvalidError is well-formed JSON that does not decode into the target: a
// value of the wrong type, an unknown field, bad base64, a top-level value
// that is not an object.
type InvalidError struct {
	Reason string // what is wrong, never a string value of the body
}

func (e *InvalidError) Error() string { return "invalid JSON body: " + e.Reason }

// Check reports whether b is one well-formed JSON value in valid UTF-8 with
// no lone UTF-16 surrogate escape, surrounded by nothing but whitespace.
// Errors are *MalformedError.
func Check(b []byte) error {
	if i := invalidUTF8(b); i >= 0 {
		return &MalformedError{Offset: int64(i), Reason: "invalid UTF-8"}
	}
	if !json.Valid(b) {
		// Unmarshalling into a RawMessage runs the same syntax check of
		// the whole input, trailing data included, and says where it
		// failed.
		var raw json.RawMessage
		var se *json.SyntaxError
		if err := json.Unmarshal(b, &raw); errors.As(err, &se) {
			return syntaxError(b, se)
		}
		return &MalformedError{Offset: int64(len(b)), Reason: "not JSON"}
	}
	if i := loneSurrogate(b); i >= 0 {
		return &MalformedError{Offset: int64(i), Reason: "lone UTF-16 surrogate escape"}
	}
	return nil
}

// Decode checks b (see Check) and decodes it into v, which must be a
// pointer: b must hold a JSON object, every field of which v knows. Errors
// are *MalformedError (Check's) or *InvalidError.
func Decode(b []byte, v any) error {
	if err := Check(b); err != nil {
		return err
	}
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return &InvalidError{Reason: "the body must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &InvalidError{Reason: invalidReason(err)}
	}
	return nil
}

// invalidUTF8 returns the offset of b's first byte that is not part of
// valid UTF-8, or -1.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1 // not reached: utf8.Valid said otherwise
}

// loneSurrogate returns the offset of the first \u escape of a UTF-16
// surrogate that is not half of a high-low pair, in b, which must be
// well-formed JSON; or -1.
func loneSurrogate(b []byte) int {
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c != '\\':
		case i+1 < len(b) && b[i+1] != 'u':
			i++ // a one-character escape
		default:
			u, ok := hex4(b, i+2)
			if !ok {
				return i // not well-formed JSON after all
			}
			switch {
			case 0xdc00 <= u && u <= 0xdfff:
				return i
			case 0xd800 <= u && u <= 0xdbff:
				if i+11 >= len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
					return i
				}
				if lo, ok := hex4(b, i+8); !ok || lo < 0xdc00 || lo > 0xdfff {
					return i
				}
				i += 11
			default:
				i += 5
			}
		}
	}
	return -1
}

// hex4 reads four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// syntaxError describes a syntax error without quoting the body:
// encoding/json's messages quote the offending character, which may be a
// byte of a secret. Its offset is that of the offending byte (or the
// body's length, if the body ends too soon).
func syntaxError(b []byte, se *json.SyntaxError) *MalformedError {
	switch {
	case len(bytes.Trim(b, " \t\r\n")) == 0:
		return &MalformedError{Offset: int64(len(b)), Reason: "no JSON value"}
	case strings.HasPrefix(se.Error(), "unexpected end"):
		return &MalformedError{Offset: int64(len(b)), Reason: "unexpected end of input"}
	}
	at := max(se.Offset-1, 0) // encoding/json counts the offending byte as read
	var raw json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if dec.Decode(&raw) == nil && dec.InputOffset() <= at {
		return &MalformedError{Offset: at, Reason: "data after the JSON value"}
	}
	return &MalformedError{Offset: at, Reason: "syntax error"}
}

// invalidReason describes a decoding error of well-formed JSON.
func invalidReason(err error) string {
	var (
		te *json.UnmarshalTypeError
		ce base64.CorruptInputError
	)
	switch {
	case errors.As(err, &te) && te.Field != "":
		return fmt.Sprintf("field %q: want %s, not a JSON %s", te.Field, te.Type, kind(te.Value))
	case errors.As(err, &te):
		return fmt.Sprintf("want %s, not a JSON %s", te.Type, kind(te.Value))
	case errors.As(err, &ce):
		return fmt.Sprintf("invalid base64 at byte %d of a byte string", int64(ce))
	}
	// Unknown fields ("json: unknown field \"x\"": the name only), and the
	// errors of UnmarshalJSON methods of the targets (times).
	return err.Error()
}

// kind reduces an UnmarshalTypeError's Value ("number 1e9", "string") to
// the JSON kind, dropping the literal.
func kind(v string) string {
	k, _, _ := strings.Cut(v, " ")
	return k
}

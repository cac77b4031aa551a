// The caller's context and the HPKE info that binds it.

package wrapkey

import (
	"encoding/binary"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Context is the caller's context; canonically encoded (sorted keys,
// length-prefixed) into info. A blob opens only under the same context,
// byte for byte.
type Context map[string]string

// Bounds on a Context.
const (
	MaxContextEntries  = 32
	MaxContextKeyLen   = 128  // bytes; keys are at least 1 byte
	MaxContextValueLen = 1024 // bytes; values may be empty
	MaxContextSize     = 4096 // bytes of canonical encoding
)

// infoLabel starts every info, separating it from other uses of the key.
const infoLabel = "custos/v1/wrap"

// Validate reports whether c is within the bounds above and all of it is
// valid UTF-8. Wrap and Unwrap call it; callers may too, to reject bad
// input early.
func (c Context) Validate() error {
	_, err := c.appendCanonical(nil)
	return err
}

// Canonical returns c's canonical encoding (see appendCanonical), the bytes
// that Info binds and that a signed key-op request hashes.
func (c Context) Canonical() ([]byte, error) { return c.appendCanonical(nil) }

// appendCanonical appends uint16 count, then for each entry in bytewise key
// order uint16 len(key), key, uint16 len(value), value.
func (c Context) appendCanonical(out []byte) ([]byte, error) {
	if len(c) > MaxContextEntries {
		return nil, fmt.Errorf("wrapkey: context has %d entries, more than %d", len(c), MaxContextEntries)
	}
	keys := make([]string, 0, len(c))
	size := 2
	for k, v := range c {
		switch {
		case k == "":
			return nil, fmt.Errorf("wrapkey: context has an empty key")
		case len(k) > MaxContextKeyLen:
			return nil, fmt.Errorf("wrapkey: context key of %d bytes, more than %d", len(k), MaxContextKeyLen)
		case !utf8.ValidString(k):
			return nil, fmt.Errorf("wrapkey: context key %q is not valid utf-8", k)
		case len(v) > MaxContextValueLen:
			return nil, fmt.Errorf("wrapkey: context value for %q has %d bytes, more than %d", k, len(v), MaxContextValueLen)
		case !utf8.ValidString(v):
			return nil, fmt.Errorf("wrapkey: context value for %q is not valid utf-8", k)
		}
		keys = append(keys, k)
		size += 2 + len(k) + 2 + len(v)
	}
	if size > MaxContextSize {
		return nil, fmt.Errorf("wrapkey: context encodes to %d bytes, more than %d", size, MaxContextSize)
	}
	slices.Sort(keys) // Go strings compare bytewise
	out = slices.Grow(out, size)
	out = binary.BigEndian.AppendUint16(out, uint16(len(keys)))
	for _, k := range keys {
		out = binary.BigEndian.AppendUint16(out, uint16(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(c[k])))
		out = append(out, c[k]...)
	}
	return out, nil
}

// Info returns the HPKE info for a KEK id, version and context:
// "custos/v1/wrap" || uint8 len(id) || id || uint32 version || canonical ctx.
// It validates all three.
func Info(kekID string, version uint32, ctx Context) ([]byte, error) {
	if err := ValidateKEKID(kekID); err != nil {
		return nil, err
	}
	if version == 0 {
		return nil, fmt.Errorf("wrapkey: kek version 0, versions start at 1")
	}
	out := make([]byte, 0, len(infoLabel)+1+len(kekID)+4+64)
	out = append(out, infoLabel...)
	out = append(out, byte(len(kekID)))
	out = append(out, kekID...)
	out = binary.BigEndian.AppendUint32(out, version)
	return ctx.appendCanonical(out)
}

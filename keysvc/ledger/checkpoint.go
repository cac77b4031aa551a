// Checkpoints: the c2sp.org/tlog-checkpoint body, signed as a
// c2sp.org/signed-note by one node's ECDSA and ML-DSA-65 keys.

package ledger

import (
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// MaxCheckpointSize bounds a signed checkpoint note accepted by
// VerifyCheckpoint. One node's two signatures take about 4.6 KB.
const MaxCheckpointSize = 64 << 10

// Checkpoint is a signed tree head: the log's origin, its size and the
// RFC 6962 root hash of the first Size entries.
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   tlog.Hash
}

// Marshal returns the checkpoint body: origin, decimal size and base64 root
// hash, each on its own newline-terminated line, with no extension lines.
// The origin must be a valid note key name (non-empty UTF-8, no spaces,
// '+' or control characters) and Size at most 2^63-1; otherwise Marshal
// returns a *ParseError.
func (c Checkpoint) Marshal() ([]byte, error) {
	if !validName(c.Origin) {
		return nil, parseErr("checkpoint", "invalid origin %q", c.Origin)
	}
	if c.Size > maxTreeSize {
		return nil, parseErr("checkpoint", "size %d out of range", c.Size)
	}
	b := make([]byte, 0, len(c.Origin)+70)
	b = append(b, c.Origin...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, c.Size, 10)
	b = append(b, '\n')
	b = base64.StdEncoding.AppendEncode(b, c.Hash[:])
	return append(b, '\n'), nil
}

// ParseCheckpoint parses a checkpoint body (the note text, without
// signatures). It accepts exactly what [Checkpoint.Marshal] produces:
// extension lines, leading zeros, non-canonical base64 and sizes over
// 2^63-1 are rejected with a *ParseError.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	bad := func(format string, args ...any) (Checkpoint, error) {
		return Checkpoint{}, parseErr("checkpoint", format, args...)
	}
	if len(text) > MaxCheckpointSize {
		return bad("%d bytes, over the limit", len(text))
	}
	lines := strings.Split(string(text), "\n")
	if len(lines) != 4 || lines[3] != "" {
		return bad("want exactly 3 newline-terminated lines")
	}
	var c Checkpoint
	c.Origin = lines[0]
	if !validName(c.Origin) {
		return bad("invalid origin %q", c.Origin)
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || n > maxTreeSize || strconv.FormatUint(n, 10) != lines[1] {
		return bad("size %q is not a canonical decimal below 2^63", lines[1])
	}
	c.Size = n
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize || base64.StdEncoding.EncodeToString(h) != lines[2] {
		return bad("root hash %q is not canonical base64 of 32 bytes", lines[2])
	}
	copy(c.Hash[:], h)
	return c, nil
}

// Errors in a *CheckpointError, for callers to branch on with errors.Is.
var (
	ErrMalformedCheckpoint = errors.New("ledger: malformed checkpoint")
	ErrCheckpointSignature = errors.New("ledger: checkpoint signature does not verify")
	ErrCheckpointUntrusted = errors.New("ledger: checkpoint lacks both signatures of a trusted node")
	ErrCheckpointOrigin    = errors.New("ledger: checkpoint has another origin")
)

// CheckpointError is every error VerifyCheckpoint returns. Err is one of
// ErrMalformedCheckpoint, ErrCheckpointSignature, ErrCheckpointUntrusted
// and ErrCheckpointOrigin; Detail says what exactly.
type CheckpointError struct {
	Err    error
	Detail string
}

func (e *CheckpointError) Error() string { return e.Err.Error() + ": " + e.Detail }
func (e *CheckpointError) Unwrap() error { return e.Err }

func cpErr(err error, format string, args ...any) *CheckpointError {
	return &CheckpointError{Err: err, Detail: fmt.Sprintf(format, args...)}
}

// SignCheckpoint returns c as a signed note carrying two signatures under
// key name name: ECDSA P-256 by ec (typically the node's HSM identity key)
// and ML-DSA-65 by ml. ECDSA signatures are randomised and ML-DSA is hedged,
// so the bytes differ between calls; all of them verify.
func SignCheckpoint(c Checkpoint, name string, ec crypto.Signer, ml *mldsa65.PrivateKey) ([]byte, error) {
	body, err := c.Marshal()
	if err != nil {
		return nil, fmt.Errorf("ledger: sign checkpoint: %w", err)
	}
	es, err := NewECDSASigner(name, ec)
	if err != nil {
		return nil, fmt.Errorf("ledger: sign checkpoint: %w", err)
	}
	ms, err := NewMLDSASigner(name, ml)
	if err != nil {
		return nil, fmt.Errorf("ledger: sign checkpoint: %w", err)
	}
	msg, err := note.Sign(&note.Note{Text: string(body)}, es, ms)
	if err != nil {
		return nil, fmt.Errorf("ledger: sign checkpoint: %w", err)
	}
	return msg, nil
}

// VerifyCheckpoint opens a signed checkpoint and returns it with the name
// of the trusted node that signed it. It accepts the note only if some node
// in trusted has both its ECDSA and its ML-DSA-65 signature on it and every
// signature by a trusted key verifies; signatures by unknown keys (other
// nodes, witnesses) are ignored. The body must be canonical and its origin
// equal origin. If several trusted nodes signed, the first in trusted wins.
// Every error is a *CheckpointError. VerifyCheckpoint never panics on any
// input and is safe for concurrent use.
func VerifyCheckpoint(msg []byte, origin string, trusted ...NodeKey) (Checkpoint, string, error) {
	if len(msg) > MaxCheckpointSize {
		return Checkpoint{}, "", cpErr(ErrMalformedCheckpoint, "%d bytes, over the %d-byte limit", len(msg), MaxCheckpointSize)
	}
	type pair struct{ ec, ml *verifier }
	nodes := make([]pair, 0, len(trusted))
	var vs []note.Verifier
	seen := map[string]bool{}
	for _, k := range trusted {
		ec, ml, err := k.verifiers()
		if err != nil {
			return Checkpoint{}, "", cpErr(ErrCheckpointUntrusted, "trusted key %q: %v", k.Name, err)
		}
		nodes = append(nodes, pair{ec, ml})
		for _, v := range []*verifier{ec, ml} {
			id := fmt.Sprintf("%s+%08x", v.name, v.hash)
			if seen[id] {
				continue // the same key listed twice; note would call it ambiguous
			}
			seen[id] = true
			vs = append(vs, v)
		}
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, "", cpErr(ErrCheckpointUntrusted, "no signature by a trusted key")
		case errors.As(err, &invalid):
			return Checkpoint{}, "", cpErr(ErrCheckpointSignature, "key %s+%08x", invalid.Name, invalid.Hash)
		default:
			return Checkpoint{}, "", cpErr(ErrMalformedCheckpoint, "%v", err)
		}
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, "", cpErr(ErrMalformedCheckpoint, "body: %v", err)
	}
	if c.Origin != origin {
		return Checkpoint{}, "", cpErr(ErrCheckpointOrigin, "got %q, want %q", c.Origin, origin)
	}
	signed := func(v *verifier) bool {
		for _, s := range n.Sigs {
			if s.Name == v.name && s.Hash == v.hash {
				return true
			}
		}
		return false
	}
	var partial []string
	for _, p := range nodes {
		ec, ml := signed(p.ec), signed(p.ml)
		if ec && ml {
			return c, p.ec.name, nil
		}
		if ec {
			partial = append(partial, fmt.Sprintf("%q has no ml-dsa-65 signature", p.ec.name))
		} else if ml {
			partial = append(partial, fmt.Sprintf("%q has no ecdsa signature", p.ec.name))
		}
	}
	return Checkpoint{}, "", cpErr(ErrCheckpointUntrusted, "%s", strings.Join(partial, "; "))
}

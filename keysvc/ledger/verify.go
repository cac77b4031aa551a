// Pure verification of inclusion and consistency proofs against
// checkpoints, and the JSON shapes in which the API serves those proofs.

package ledger

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrInvalidProof: a proof does not prove what it was checked for.
var ErrInvalidProof = errors.New("ledger: invalid proof")

// maxProofHashes bounds the hashes in any proof for a tree of at most
// 2^63-1 entries.
const maxProofHashes = 64

// VerifyInclusion checks that entry is entry number index of the tree that
// cp describes. entry must be the entry's canonical bytes and carry index
// as its Index. It needs no storage. Every failure wraps ErrInvalidProof;
// a non-canonical entry also wraps its *ParseError.
func VerifyInclusion(cp Checkpoint, index uint64, entry []byte, proof tlog.RecordProof) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("ledger: entry %d in tree of size %d: %s: %w", index, cp.Size, fmt.Sprintf(format, args...), ErrInvalidProof)
	}
	if cp.Size > maxTreeSize || index >= cp.Size {
		return fail("index out of range")
	}
	if len(proof) > maxProofHashes {
		return fail("%d hashes", len(proof))
	}
	e, err := ParseEntry(entry)
	if err != nil {
		return fmt.Errorf("ledger: entry %d in tree of size %d: %w: %w", index, cp.Size, ErrInvalidProof, err)
	}
	if e.Index != index {
		return fail("entry says index %d", e.Index)
	}
	if err := tlog.CheckRecord(proof, int64(cp.Size), cp.Hash, int64(index), tlog.RecordHash(entry)); err != nil {
		return fail("proof does not lead to the root")
	}
	return nil
}

// VerifyConsistency checks that the tree of newer extends the tree of older:
// same origin, older.Size <= newer.Size, and proof links the two roots
// (RFC 6962). An empty older tree must carry the empty-tree hash, and equal
// sizes need equal hashes; both take an empty proof. It needs no storage.
// Every failure wraps ErrInvalidProof.
func VerifyConsistency(older, newer Checkpoint, proof tlog.TreeProof) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("ledger: consistency of size %d with size %d: %s: %w", older.Size, newer.Size, fmt.Sprintf(format, args...), ErrInvalidProof)
	}
	switch {
	case older.Origin != newer.Origin:
		return fail("origins %q and %q differ", older.Origin, newer.Origin)
	case newer.Size > maxTreeSize || older.Size > newer.Size:
		return fail("sizes out of order")
	case len(proof) > maxProofHashes:
		return fail("%d hashes", len(proof))
	case older.Size == 0:
		empty, _ := tlog.TreeHash(0, nil)
		if older.Hash != empty || len(proof) != 0 {
			return fail("bad proof from the empty tree")
		}
		return nil
	}
	if err := tlog.CheckTree(proof, int64(newer.Size), newer.Hash, int64(older.Size), older.Hash); err != nil {
		return fail("proof does not link the roots")
	}
	return nil
}

// InclusionProof is an inclusion proof as the HTTP API carries it:
//
//	{"index":5,"size":12,"hashes":["<base64>",...]}
type InclusionProof struct {
	Index  uint64
	Size   uint64
	Hashes tlog.RecordProof
}

// ConsistencyProof is a consistency proof as the HTTP API carries it:
//
//	{"old":5,"new":12,"hashes":["<base64>",...]}
type ConsistencyProof struct {
	Old    uint64
	New    uint64
	Hashes tlog.TreeProof
}

// MarshalJSON encodes p compactly in the documented field order; an empty
// proof has "hashes":[].
func (p InclusionProof) MarshalJSON() ([]byte, error) {
	return marshalProof("index", p.Index, "size", p.Size, p.Hashes), nil
}

// MarshalJSON encodes p compactly in the documented field order.
func (p ConsistencyProof) MarshalJSON() ([]byte, error) {
	return marshalProof("old", p.Old, "new", p.New, p.Hashes), nil
}

// UnmarshalJSON is ParseInclusionProof.
func (p *InclusionProof) UnmarshalJSON(data []byte) error {
	q, err := ParseInclusionProof(data)
	if err == nil {
		*p = q
	}
	return err
}

// UnmarshalJSON is ParseConsistencyProof.
func (p *ConsistencyProof) UnmarshalJSON(data []byte) error {
	q, err := ParseConsistencyProof(data)
	if err == nil {
		*p = q
	}
	return err
}

func marshalProof(k1 string, v1 uint64, k2 string, v2 uint64, hashes []tlog.Hash) []byte {
	b := make([]byte, 0, 40+len(hashes)*47)
	b = append(b, `{"`...)
	b = append(b, k1...)
	b = append(b, `":`...)
	b = strconv.AppendUint(b, v1, 10)
	b = append(b, `,"`...)
	b = append(b, k2...)
	b = append(b, `":`...)
	b = strconv.AppendUint(b, v2, 10)
	b = append(b, `,"hashes":[`...)
	for i, h := range hashes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, h[:])
		b = append(b, '"')
	}
	return append(b, "]}"...)
}

// ParseInclusionProof decodes the JSON of an InclusionProof strictly:
// exactly the three fields (exact case), index < size <= 2^63-1, at most
// 64 hashes, each canonical base64 of 32 bytes, nothing after the object.
// Whitespace is allowed. Errors are *ParseError.
func ParseInclusionProof(data []byte) (InclusionProof, error) {
	const what = "inclusion proof"
	a, b, hs, err := parseProof(what, data, "index", "size")
	if err != nil {
		return InclusionProof{}, err
	}
	if a >= b {
		return InclusionProof{}, parseErr(what, "index %d not below size %d", a, b)
	}
	return InclusionProof{Index: a, Size: b, Hashes: hs}, nil
}

// ParseConsistencyProof is ParseInclusionProof for a ConsistencyProof:
// fields "old", "new" and "hashes", with old <= new <= 2^63-1.
func ParseConsistencyProof(data []byte) (ConsistencyProof, error) {
	const what = "consistency proof"
	a, b, hs, err := parseProof(what, data, "old", "new")
	if err != nil {
		return ConsistencyProof{}, err
	}
	if a > b {
		return ConsistencyProof{}, parseErr(what, "old size %d above new size %d", a, b)
	}
	return ConsistencyProof{Old: a, New: b, Hashes: hs}, nil
}

func parseProof(what string, data []byte, k1, k2 string) (v1, v2 uint64, hashes []tlog.Hash, err error) {
	if len(data) > 16<<10 {
		return 0, 0, nil, parseErr(what, "%d bytes, over the limit", len(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return 0, 0, nil, parseErr(what, "%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, 0, nil, parseErr(what, "data after the object")
	}
	if len(m) != 3 || m[k1] == nil || m[k2] == nil || m["hashes"] == nil {
		return 0, 0, nil, parseErr(what, "want exactly the fields %q, %q and \"hashes\"", k1, k2)
	}
	for _, f := range []struct {
		k string
		v *uint64
	}{{k1, &v1}, {k2, &v2}} {
		raw := string(m[f.k])
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil || n > maxTreeSize || strconv.FormatUint(n, 10) != raw {
			return 0, 0, nil, parseErr(what, "%s is not a decimal integer below 2^63", f.k)
		}
		*f.v = n
	}
	var strs []string
	if err := json.Unmarshal(m["hashes"], &strs); err != nil || strs == nil {
		return 0, 0, nil, parseErr(what, "hashes is not an array of strings")
	}
	if len(strs) > maxProofHashes {
		return 0, 0, nil, parseErr(what, "%d hashes, over the limit of %d", len(strs), maxProofHashes)
	}
	hashes = make([]tlog.Hash, len(strs))
	for i, s := range strs {
		h, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(h) != tlog.HashSize || base64.StdEncoding.EncodeToString(h) != s {
			return 0, 0, nil, parseErr(what, "hash %d is not canonical base64 of 32 bytes", i)
		}
		copy(hashes[i][:], h)
	}
	return v1, v2, hashes, nil
}

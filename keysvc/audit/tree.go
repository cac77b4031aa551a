// A streaming RFC 6962 Merkle tree: leaves are added one at a time and only
// the hashes of the maximal complete subtrees (the frontier) are kept.

package audit

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/custos-eu/custos/keysvc/ledger"
	"golang.org/x/mod/sumdb/tlog"
)

// maxTreeSize is the largest tree tlog (and the ledger) can describe.
const maxTreeSize = 1<<63 - 1

// Tree computes the RFC 6962 root of a growing list of leaf hashes in
// O(log n) memory: it keeps only its frontier, the hashes of the maximal
// complete subtrees covering the leaves so far, left to right (one per set
// bit of the size, largest first). Its roots are those of tlog.TreeHash.
// The zero Tree is empty and ready to use. A Tree is not safe for
// concurrent use.
type Tree struct {
	size     uint64
	frontier []tlog.Hash
}

// NewTreeFromFrontier returns a tree of size leaves given only its frontier,
// as [Tree.Frontier] returns it, so that later leaves can be added without
// the earlier ones. The number of hashes must be the number of set bits of
// size.
func NewTreeFromFrontier(size uint64, hashes []tlog.Hash) (*Tree, error) {
	if size > maxTreeSize {
		return nil, fmt.Errorf("audit: frontier of size %d: out of range", size)
	}
	if want := bits.OnesCount64(size); len(hashes) != want {
		return nil, fmt.Errorf("audit: frontier of size %d has %d hashes, want %d", size, len(hashes), want)
	}
	return &Tree{size: size, frontier: slices.Clone(hashes)}, nil
}

// Add appends a leaf hash (tlog.RecordHash of the entry's bytes).
func (t *Tree) Add(leaf tlog.Hash) {
	h := leaf
	// Each trailing one bit of the old size is a complete subtree the
	// same size as the one being built: merge them, right to left.
	for s := t.size; s&1 == 1; s >>= 1 {
		last := len(t.frontier) - 1
		h = tlog.NodeHash(t.frontier[last], h)
		t.frontier = t.frontier[:last]
	}
	t.frontier = append(t.frontier, h)
	t.size++
}

// Size returns the number of leaves.
func (t *Tree) Size() uint64 { return t.size }

// Root returns the RFC 6962 root hash: the hash of the empty string for
// an empty tree.
func (t *Tree) Root() tlog.Hash {
	if len(t.frontier) == 0 {
		h, _ := tlog.TreeHash(0, nil)
		return h
	}
	h := t.frontier[len(t.frontier)-1]
	for i := len(t.frontier) - 2; i >= 0; i-- {
		h = tlog.NodeHash(t.frontier[i], h)
	}
	return h
}

// Frontier returns a copy of the hashes of the maximal complete subtrees
// covering the leaves, left to right.
func (t *Tree) Frontier() []tlog.Hash { return slices.Clone(t.frontier) }

// FrontierFromProof computes the frontier of the tree of size leaves from
// the canonical bytes of its last entry (index size-1) and that entry's
// inclusion proof in the tree of that size (as the API serves it): what an
// exporter writes in a pack that starts at entry size. The frontier is not
// checked against any root here; a verifier binds it to the signed root
// at the end of the pack.
func FrontierFromProof(size uint64, last []byte, proof tlog.RecordProof) ([]tlog.Hash, error) {
	if size == 0 || size > maxTreeSize {
		return nil, fmt.Errorf("audit: frontier of size %d: out of range", size)
	}
	e, err := ledger.ParseEntry(last)
	if err != nil {
		return nil, fmt.Errorf("audit: frontier of size %d: last entry: %w", size, err)
	}
	if e.Index != size-1 {
		return nil, fmt.Errorf("audit: frontier of size %d: the last entry has index %d, want %d", size, e.Index, size-1)
	}
	// The last leaf is the rightmost of the lowest complete subtree, of
	// 2^low leaves: the first low proof hashes are its left siblings inside
	// that subtree; the rest are the larger complete subtrees to its left,
	// nearest first.
	low := bits.TrailingZeros64(size)
	others := bits.OnesCount64(size) - 1
	if len(proof) != low+others {
		return nil, fmt.Errorf("audit: frontier of size %d: inclusion proof of entry %d has %d hashes, want %d", size, size-1, len(proof), low+others)
	}
	h := tlog.RecordHash(last)
	for _, sib := range proof[:low] {
		h = tlog.NodeHash(sib, h)
	}
	out := make([]tlog.Hash, 0, others+1)
	for i := len(proof) - 1; i >= low; i-- {
		out = append(out, proof[i])
	}
	return append(out, h), nil
}

// The persistent Merkle tree: entries and tlog stored hashes in bbolt,
// appended inside the caller's write transaction, read and proved inside
// any transaction.

package ledgerdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// BucketName is the top-level bbolt bucket that holds the log. Nothing else
// may write into it. Its nested buckets are:
//
//	entries  uint64 big-endian index       -> canonical entry bytes
//	hashes   uint64 big-endian stored index -> 32-byte hash (tlog.StoredHashIndex order)
//	meta     "size"                         -> uint64 big-endian number of entries
const BucketName = "ledger"

var (
	bucketName  = []byte(BucketName)
	entriesName = []byte("entries")
	hashesName  = []byte("hashes")
	metaName    = []byte("meta")
	sizeKey     = []byte("size")
)

// maxTreeSize is ledger's bound on a log's size: tlog counts records with int64.
const maxTreeSize = math.MaxInt64

func u64key(n uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n) }

// Append appends entries, each the canonical bytes of a [ledger.Entry] whose Index
// is its position: the first gets the current size, the next size+1 and so
// on. It returns that first index. It writes into tx, which must be a bbolt
// write transaction the caller owns, so the append commits or rolls back
// atomically with the caller's other state.
//
// Append is deterministic (no clock, no randomness): the same entries
// appended to the same log leave the same keys and values and the same
// root, whether they come in one call or many.
//
// Every entry is checked (ledger.ParseEntry, then the index) before anything is
// written: on a *[ledger.ParseError] or ledger.ErrIndexMismatch tx is unchanged. Any other
// error may leave tx half written; roll it back. Append copies the entries.
func Append(tx *bbolt.Tx, entries ...[]byte) (first uint64, err error) {
	if first, err = Size(tx); err != nil {
		return 0, err
	}
	if len(entries) == 0 {
		return first, nil
	}
	if uint64(len(entries)) > maxTreeSize-first {
		return first, fmt.Errorf("ledger: append %d entries at %d: %w", len(entries), first, ledger.ErrIndexOutOfRange)
	}
	for i, raw := range entries {
		e, err := ledger.ParseEntry(raw)
		if err != nil {
			return first, fmt.Errorf("ledger: append entry %d: %w", first+uint64(i), err)
		}
		if e.Index != first+uint64(i) {
			return first, fmt.Errorf("ledger: append entry %d: has index %d: %w", first+uint64(i), e.Index, ledger.ErrIndexMismatch)
		}
	}
	s, err := openWrite(tx)
	if err != nil {
		return first, err
	}
	for _, raw := range entries {
		if err := s.put(bytes.Clone(raw)); err != nil {
			return first, err
		}
	}
	return first, s.commitSize()
}

// AppendEntries is Append for entries not yet encoded: it sets each
// entry's Index to its position (callers may leave it zero), encodes it
// with [ledger.Entry.Marshal] and appends it. It returns the first index. An
// entry that does not marshal is a *[ledger.ParseError] and leaves tx unchanged;
// other errors are as for Append.
func AppendEntries(tx *bbolt.Tx, entries ...ledger.Entry) (first uint64, err error) {
	if first, err = Size(tx); err != nil {
		return 0, err
	}
	if len(entries) == 0 {
		return first, nil
	}
	if uint64(len(entries)) > maxTreeSize-first {
		return first, fmt.Errorf("ledger: append %d entries at %d: %w", len(entries), first, ledger.ErrIndexOutOfRange)
	}
	raws := make([][]byte, len(entries))
	for i, e := range entries {
		e.Index = first + uint64(i)
		raws[i], err = e.Marshal()
		if err != nil {
			return first, fmt.Errorf("ledger: append entry %d: %w", e.Index, err)
		}
	}
	s, err := openWrite(tx)
	if err != nil {
		return first, err
	}
	for _, raw := range raws {
		if err := s.put(raw); err != nil {
			return first, err
		}
	}
	return first, s.commitSize()
}

// writer appends to the buckets of one write transaction.
type writer struct {
	entries, hashes, meta *bbolt.Bucket
	size                  uint64
}

func openWrite(tx *bbolt.Tx) (*writer, error) {
	if !tx.Writable() {
		return nil, fmt.Errorf("ledger: append: %w", bbolt.ErrTxNotWritable)
	}
	top, err := tx.CreateBucketIfNotExists(bucketName)
	if err != nil {
		return nil, fmt.Errorf("ledger: append: %w", err)
	}
	w := &writer{}
	for _, b := range []struct {
		name []byte
		dst  **bbolt.Bucket
	}{{entriesName, &w.entries}, {hashesName, &w.hashes}, {metaName, &w.meta}} {
		if *b.dst, err = top.CreateBucketIfNotExists(b.name); err != nil {
			return nil, fmt.Errorf("ledger: append: %w", err)
		}
	}
	// Keys only ever grow, so fill pages completely.
	w.entries.FillPercent = 1.0
	w.hashes.FillPercent = 1.0
	if w.size, err = readSize(w.meta); err != nil {
		return nil, err
	}
	return w, nil
}

// put appends one entry; raw must stay untouched until the tx ends.
func (w *writer) put(raw []byte) error {
	n := int64(w.size)
	hashes, err := tlog.StoredHashes(n, raw, hashReader{w.hashes})
	if err != nil {
		return fmt.Errorf("ledger: append entry %d: %w", n, err)
	}
	base := uint64(tlog.StoredHashIndex(0, n))
	for i := range hashes {
		if err := w.hashes.Put(u64key(base+uint64(i)), hashes[i][:]); err != nil {
			return fmt.Errorf("ledger: append entry %d: %w", n, err)
		}
	}
	if err := w.entries.Put(u64key(w.size), raw); err != nil {
		return fmt.Errorf("ledger: append entry %d: %w", n, err)
	}
	w.size++
	return nil
}

func (w *writer) commitSize() error {
	if err := w.meta.Put(sizeKey, u64key(w.size)); err != nil {
		return fmt.Errorf("ledger: append: %w", err)
	}
	return nil
}

func readSize(meta *bbolt.Bucket) (uint64, error) {
	v := meta.Get(sizeKey)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 || binary.BigEndian.Uint64(v) > maxTreeSize {
		return 0, fmt.Errorf("ledger: size record: %w", ledger.ErrCorrupt)
	}
	return binary.BigEndian.Uint64(v), nil
}

// hashReader is a tlog.HashReader over the hashes bucket of one
// transaction: nothing is cached, so memory stays flat as the log grows.
type hashReader struct{ b *bbolt.Bucket }

func (r hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		v := r.b.Get(u64key(uint64(x)))
		if len(v) != tlog.HashSize {
			return nil, fmt.Errorf("ledger: stored hash %d: %w", x, ledger.ErrCorrupt)
		}
		copy(out[i][:], v)
	}
	return out, nil
}

// reader reads the buckets of one transaction; a log never appended to
// reads as empty.
type reader struct {
	entries, hashes *bbolt.Bucket
	size            uint64
}

func openRead(tx *bbolt.Tx) (*reader, error) {
	top := tx.Bucket(bucketName)
	if top == nil {
		return &reader{}, nil
	}
	r := &reader{entries: top.Bucket(entriesName), hashes: top.Bucket(hashesName)}
	meta := top.Bucket(metaName)
	if r.entries == nil || r.hashes == nil || meta == nil {
		return nil, fmt.Errorf("ledger: missing bucket: %w", ledger.ErrCorrupt)
	}
	var err error
	r.size, err = readSize(meta)
	return r, err
}

// The read functions below work in any transaction, read-only or not, and
// see that transaction's snapshot (including its own uncommitted appends).
// Like the *bbolt.Tx they take, they are not for concurrent use on one tx;
// separate read transactions may run concurrently. Out-of-range arguments
// give ledger.ErrIndexOutOfRange; damaged storage gives ledger.ErrCorrupt.

// Size returns the number of entries in the log.
func Size(tx *bbolt.Tx) (uint64, error) {
	r, err := openRead(tx)
	if err != nil {
		return 0, err
	}
	return r.size, nil
}

// ReadEntry returns a copy of the canonical bytes of entry i.
func ReadEntry(tx *bbolt.Tx, i uint64) ([]byte, error) {
	r, err := openRead(tx)
	if err != nil {
		return nil, err
	}
	if i >= r.size {
		return nil, fmt.Errorf("ledger: entry %d of %d: %w", i, r.size, ledger.ErrIndexOutOfRange)
	}
	v := r.entries.Get(u64key(i))
	if v == nil {
		return nil, fmt.Errorf("ledger: entry %d: %w", i, ledger.ErrCorrupt)
	}
	return bytes.Clone(v), nil
}

// ReadEntries returns copies of up to limit entries starting at start, in
// order, for paging through the log. start == Size gives none; start >
// Size and limit < 1 are ledger.ErrIndexOutOfRange.
func ReadEntries(tx *bbolt.Tx, start uint64, limit int) ([][]byte, error) {
	r, err := openRead(tx)
	if err != nil {
		return nil, err
	}
	if start > r.size || limit < 1 {
		return nil, fmt.Errorf("ledger: entries from %d (limit %d) of %d: %w", start, limit, r.size, ledger.ErrIndexOutOfRange)
	}
	n := min(uint64(limit), r.size-start)
	out := make([][]byte, 0, n)
	if n == 0 {
		return out, nil
	}
	c := r.entries.Cursor()
	for k, v := c.Seek(u64key(start)); uint64(len(out)) < n; k, v = c.Next() {
		want := start + uint64(len(out))
		if k == nil || len(k) != 8 || binary.BigEndian.Uint64(k) != want {
			return nil, fmt.Errorf("ledger: entry %d: %w", want, ledger.ErrCorrupt)
		}
		out = append(out, bytes.Clone(v))
	}
	return out, nil
}

// LeafHash returns the stored leaf hash of entry i, which equals
// tlog.RecordHash of its bytes.
func LeafHash(tx *bbolt.Tx, i uint64) (tlog.Hash, error) {
	r, err := openRead(tx)
	if err != nil {
		return tlog.Hash{}, err
	}
	if i >= r.size {
		return tlog.Hash{}, fmt.Errorf("ledger: leaf %d of %d: %w", i, r.size, ledger.ErrIndexOutOfRange)
	}
	h, err := hashReader{r.hashes}.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(i))})
	if err != nil {
		return tlog.Hash{}, err
	}
	return h[0], nil
}

// Root returns the RFC 6962 root hash of the log's first size entries;
// size 0 gives the hash of the empty tree.
func Root(tx *bbolt.Tx, size uint64) (tlog.Hash, error) {
	r, err := openRead(tx)
	if err != nil {
		return tlog.Hash{}, err
	}
	if size > r.size {
		return tlog.Hash{}, fmt.Errorf("ledger: root at %d of %d: %w", size, r.size, ledger.ErrIndexOutOfRange)
	}
	if size == 0 {
		return tlog.TreeHash(0, nil)
	}
	return tlog.TreeHash(int64(size), hashReader{r.hashes})
}

// TreeHead returns the checkpoint body of the whole log as it stands in tx,
// ready for [ledger.SignCheckpoint]. It does not check origin; signing does.
func TreeHead(tx *bbolt.Tx, origin string) (ledger.Checkpoint, error) {
	r, err := openRead(tx)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	h, err := Root(tx, r.size)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	return ledger.Checkpoint{Origin: origin, Size: r.size, Hash: h}, nil
}

// ProveInclusion returns the RFC 6962 inclusion proof of entry index in the
// tree of the first size entries (index < size <= Size).
func ProveInclusion(tx *bbolt.Tx, index, size uint64) (tlog.RecordProof, error) {
	r, err := openRead(tx)
	if err != nil {
		return nil, err
	}
	if index >= size || size > r.size {
		return nil, fmt.Errorf("ledger: inclusion proof of %d in %d (log size %d): %w", index, size, r.size, ledger.ErrIndexOutOfRange)
	}
	return tlog.ProveRecord(int64(size), int64(index), hashReader{r.hashes})
}

// ProveConsistency returns the RFC 6962 consistency proof that the tree of
// the first newSize entries extends the tree of the first oldSize
// (oldSize <= newSize <= Size). It is empty when oldSize is 0 or equals
// newSize.
func ProveConsistency(tx *bbolt.Tx, oldSize, newSize uint64) (tlog.TreeProof, error) {
	r, err := openRead(tx)
	if err != nil {
		return nil, err
	}
	if oldSize > newSize || newSize > r.size {
		return nil, fmt.Errorf("ledger: consistency proof from %d to %d (log size %d): %w", oldSize, newSize, r.size, ledger.ErrIndexOutOfRange)
	}
	if oldSize == 0 {
		return tlog.TreeProof{}, nil
	}
	return tlog.ProveTree(int64(newSize), int64(oldSize), hashReader{r.hashes})
}

// Reading and writing packs: the order rules both share, a streaming
// Reader and a Writer that produces exactly what the Reader accepts.

package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// Ceremony statuses as the API reports them.
const (
	StatusPending  = "pending"
	StatusExecuted = "executed"
	StatusRefused  = "refused"
)

// problem is a rule broken by the next record; the Reader turns it into a
// *Failure with the line, the Writer into an error.
type problem struct {
	kind  string
	index int64
	msg   string
}

func prob(format string, args ...any) *problem {
	return &problem{kind: KindPack, index: -1, msg: fmt.Sprintf(format, args...)}
}

// sequencer enforces the order and the structural rules of a pack.
type sequencer struct {
	hdr        *Header
	last       int    // rank of the last record; -1 before the header
	entries    uint64 // entry records so far
	frontier   bool
	checkpoint bool
}

func newSequencer() sequencer { return sequencer{last: -1} }

// order checks that a record of type typ may come now. It changes
// nothing: record and entry commit a record once it passed every check.
func (s *sequencer) order(typ string) *problem {
	r, ok := rank[typ]
	if !ok {
		return prob("unknown record type %q", typ)
	}
	switch {
	case s.last < 0 && typ != TypeHeader:
		return prob("the pack must start with a header, not a %s record", typ)
	case s.last > r:
		return prob("%s record after %s record: out of order", typ, typeOfRank(s.last))
	case s.last == r && (typ == TypeHeader || typ == TypeFrontier || typ == TypeCheckpoint || typ == TypeConsistency):
		return prob("a second %s record", typ)
	}
	if r >= rank[TypeEntry] && s.hdr.From > 0 && !s.frontier {
		return prob("the pack starts at entry %d but has no frontier record before its %s record", s.hdr.From, typ)
	}
	if r > rank[TypeEntry] && s.entries < s.hdr.To-s.hdr.From {
		next := s.hdr.From + s.entries
		p := prob("entries %d to %d are missing: a %s record follows %s (truncated?)", next, s.hdr.To-1, typ, s.afterWhat())
		p.kind, p.index = KindEntry, int64(next)
		return p
	}
	return nil
}

func (s *sequencer) afterWhat() string {
	if s.entries == 0 {
		return "no entry"
	}
	return fmt.Sprintf("entry %d", s.hdr.From+s.entries-1)
}

func typeOfRank(r int) string {
	for t, x := range rank {
		if x == r {
			return t
		}
	}
	return "?"
}

// record checks a record other than an entry.
func (s *sequencer) record(rec Record) *problem {
	if p := s.order(rec.Type()); p != nil {
		return p
	}
	frontier, checkpoint := s.frontier, s.checkpoint
	switch r := rec.(type) {
	case *Header:
		switch {
		case r.Format != Format:
			return prob("format %q, want %q", r.Format, Format)
		case r.Cluster == "":
			return prob("header without a cluster")
		case r.Origin != "custos/"+r.Cluster:
			return prob("origin %q is not custos/<cluster> for cluster %q", r.Origin, r.Cluster)
		case r.From > r.To || r.To > maxTreeSize:
			return prob("entry range [%d, %d) is not valid", r.From, r.To)
		case r.Created.IsZero():
			return prob("header without a creation time")
		}
	case *NodeKeys:
		if r.Text == "" {
			return prob("empty node_keys record")
		}
	case *Officer:
		if r.ID == "" {
			return prob("officer record without an id")
		}
		if want := bundleFingerprint(r.Bundle); r.Fingerprint != want {
			return prob("officer %q: fingerprint %q is not the bundle's (%s)", r.ID, r.Fingerprint, want)
		}
	case *Ceremony:
		if r.ID == "" || r.Proposal == "" {
			return prob("ceremony record without an id or proposal")
		}
		switch r.Status {
		case StatusPending, StatusExecuted, StatusRefused:
		default:
			return prob("ceremony %s: status %q", r.ID, r.Status)
		}
	case *Frontier:
		if s.hdr.From == 0 {
			return prob("a frontier record in a pack that starts at entry 0")
		}
		if r.Size != s.hdr.From {
			return prob("frontier of size %d in a pack that starts at entry %d", r.Size, s.hdr.From)
		}
		if want := bits.OnesCount64(r.Size); len(r.Hashes) != want {
			return prob("frontier of size %d has %d hashes, want %d", r.Size, len(r.Hashes), want)
		}
		frontier = true
	case *CheckpointRecord:
		if len(r.Note) == 0 || len(r.Note) > ledger.MaxCheckpointSize {
			return prob("checkpoint note of %d bytes", len(r.Note))
		}
		cp, err := checkpointBody(r.Note)
		if err != nil {
			return &problem{KindCheckpoint, -1, fmt.Sprintf("checkpoint: malformed: %v", err)}
		}
		if cp.Size != s.hdr.To {
			return &problem{KindCheckpoint, -1, fmt.Sprintf("checkpoint: size %d, but the pack's entries end at %d", cp.Size, s.hdr.To)}
		}
		checkpoint = true
	case *Consistency:
		if r.Old > r.New || r.New > maxTreeSize {
			return prob("consistency proof between sizes %d and %d", r.Old, r.New)
		}
		if len(r.Hashes) > maxProofHashes {
			return prob("consistency proof of %d hashes", len(r.Hashes))
		}
	case *EntryRecord:
		return prob("internal: entry through record()")
	}
	if h, ok := rec.(*Header); ok {
		c := *h
		s.hdr = &c
	}
	s.last, s.frontier, s.checkpoint = rank[rec.Type()], frontier, checkpoint
	return nil
}

// entry checks entry record i of n bytes.
func (s *sequencer) entry(i uint64, n int) *problem {
	if p := s.order(TypeEntry); p != nil {
		return p
	}
	want := s.hdr.From + s.entries
	switch {
	case want >= s.hdr.To:
		return &problem{KindEntry, int64(i), fmt.Sprintf("entry %d: beyond the pack's range [%d, %d) (appended?)", i, s.hdr.From, s.hdr.To)}
	case i < want:
		return &problem{KindEntry, int64(i), fmt.Sprintf("entry %d: out of order: it comes after entry %d", i, want-1)}
	case i > want && i == want+1:
		return &problem{KindEntry, int64(want), fmt.Sprintf("entry %d is missing: entry %d follows %s", want, i, s.afterWhat())}
	case i > want:
		return &problem{KindEntry, int64(want), fmt.Sprintf("entries %d to %d are missing: entry %d follows %s", want, i-1, i, s.afterWhat())}
	case n == 0 || n > ledger.MaxEntrySize:
		return &problem{KindEntry, int64(i), fmt.Sprintf("entry %d: %d bytes", i, n)}
	}
	s.last = rank[TypeEntry]
	s.entries++
	return nil
}

// end checks that the pack may end here.
func (s *sequencer) end() *problem {
	switch {
	case s.hdr == nil:
		return prob("empty pack: no header")
	case s.entries < s.hdr.To-s.hdr.From:
		next := s.hdr.From + s.entries
		return &problem{KindEntry, int64(next), fmt.Sprintf("the pack ends after %s: entries %d to %d and the checkpoint are missing (truncated?)",
			s.afterWhat(), next, s.hdr.To-1)}
	case !s.checkpoint:
		return prob("the pack ends without a checkpoint record (truncated?)")
	}
	return nil
}

func bundleFingerprint(bundle string) string {
	sum := sha256.Sum256([]byte(bundle))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Reader reads a pack record by record, checking its syntax (each line the
// canonical encoding of one record), the order of the records, the entry
// indexes and that nothing is missing at the end. It verifies nothing
// cryptographic: that is Verify's job. Memory is bounded by MaxLineSize.
type Reader struct {
	br   *bufio.Reader
	seq  sequencer
	line int
	err  error  // sticky
	buf  []byte // decoded entry bytes, reused by next
	long []byte // a line longer than br's buffer
}

// NewReader returns a Reader of the pack r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), seq: newSequencer()}
}

// readLine returns the next line, newline included, of at most
// MaxLineSize bytes, valid until the next call.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	r.long = append(r.long[:0], line...)
	for errors.Is(err, bufio.ErrBufferFull) && len(r.long) <= MaxLineSize {
		line, err = r.br.ReadSlice('\n')
		r.long = append(r.long, line...)
	}
	if len(r.long) > MaxLineSize {
		return nil, bufio.ErrBufferFull
	}
	return r.long, err
}

// Line returns the line number (1-based) of the last record returned.
func (r *Reader) Line() int { return r.line }

// Header returns the pack's header once Next has returned it, else nil.
func (r *Reader) Header() *Header {
	if r.seq.hdr == nil {
		return nil
	}
	h := *r.seq.hdr
	return &h
}

// Next returns the next record, io.EOF after the last record of a
// complete pack, or a *Failure naming the line (and the entry, for a
// missing or misplaced one). After an error every call returns it again.
// An *EntryRecord's bytes are the caller's.
func (r *Reader) Next() (Record, error) {
	rec, err := r.next()
	if e, ok := rec.(*EntryRecord); ok {
		e.Canonical = bytes.Clone(e.Canonical)
	}
	return rec, err
}

// next is Next, with an entry's bytes valid only until the following call.
func (r *Reader) next() (Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	rec, err := r.read()
	if err != nil {
		r.err = err
		return nil, err
	}
	return rec, nil
}

var entryPrefix = []byte(`{"t":"entry","i":`)

func (r *Reader) read() (Record, error) {
	line, err := r.readLine()
	switch {
	case err == io.EOF && len(line) == 0:
		if p := r.seq.end(); p != nil {
			return nil, r.failure(p, r.line)
		}
		return nil, io.EOF
	case err == io.EOF:
		return nil, packErr(r.line+1, "incomplete last line (no newline; truncated?)")
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, packErr(r.line+1, "longer than %d bytes", MaxLineSize)
	case err != nil:
		return nil, fmt.Errorf("audit: read pack: %w", err)
	}
	r.line++
	if bytes.HasPrefix(line, entryPrefix) {
		i, data, ok := r.parseEntryLine(line)
		if !ok {
			return nil, packErr(r.line, "entry record is not in canonical form")
		}
		if p := r.seq.entry(i, len(data)); p != nil {
			return nil, r.failure(p, r.line)
		}
		return &EntryRecord{Index: i, Canonical: data}, nil
	}
	typ, ok := recordType(line)
	if !ok {
		return nil, packErr(r.line, `not a record: want one JSON object whose first field is "t"`)
	}
	if _, known := rank[typ]; !known {
		return nil, packErr(r.line, "unknown record type %q", typ)
	}
	if typ == TypeEntry {
		return nil, packErr(r.line, "entry record is not in canonical form")
	}
	rec, derr := decodeRecord(typ, line)
	if derr != nil {
		return nil, packErr(r.line, "%v", derr)
	}
	if p := r.seq.record(rec); p != nil {
		return nil, r.failure(p, r.line)
	}
	return rec, nil
}

func (r *Reader) failure(p *problem, line int) *Failure {
	if p.kind == KindPack {
		return packErr(line, "%s", p.msg)
	}
	return fail(p.kind, p.index, line, nil, "%s", p.msg)
}

// recordType returns the "t" of a line that starts {"t":"….
func recordType(line []byte) (string, bool) {
	const head = `{"t":"`
	if !bytes.HasPrefix(line, []byte(head)) {
		return "", false
	}
	rest := line[len(head):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || end > 32 {
		return "", false
	}
	return string(rest[:end]), true
}

// parseEntryLine parses {"t":"entry","i":N,"e":"<base64>"}\n exactly.
func (r *Reader) parseEntryLine(line []byte) (uint64, []byte, bool) {
	rest := line[len(entryPrefix):]
	n := 0
	for n < len(rest) && n < 20 && '0' <= rest[n] && rest[n] <= '9' {
		n++
	}
	if n == 0 || (n > 1 && rest[0] == '0') {
		return 0, nil, false
	}
	i, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	if err != nil || i > maxTreeSize {
		return 0, nil, false
	}
	rest = rest[n:]
	const mid, tail = `,"e":"`, "\"}\n"
	if !bytes.HasPrefix(rest, []byte(mid)) || !bytes.HasSuffix(rest, []byte(tail)) {
		return 0, nil, false
	}
	b64 := rest[len(mid) : len(rest)-len(tail)]
	max := base64.StdEncoding.DecodedLen(len(b64))
	if cap(r.buf) < max {
		r.buf = make([]byte, max)
	}
	m, err := base64.StdEncoding.Strict().Decode(r.buf[:max], b64)
	// Strict still skips CR and LF: the length check rejects them.
	if err != nil || base64.StdEncoding.EncodedLen(m) != len(b64) {
		return 0, nil, false
	}
	return i, r.buf[:m], true
}

// appendEntryLine appends the canonical line of entry i.
func appendEntryLine(b []byte, i uint64, canonical []byte) []byte {
	b = append(b, entryPrefix...)
	b = strconv.AppendUint(b, i, 10)
	b = append(b, `,"e":"`...)
	b = base64.StdEncoding.AppendEncode(b, canonical)
	return append(b, "\"}\n"...)
}

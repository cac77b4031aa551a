// Writer: streams a pack in the order the Reader demands.

package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
	"golang.org/x/mod/sumdb/tlog"
)

// Writer writes a pack. Call its methods in the pack's order: NodeKeys,
// Officer, Ceremony, Certificate (each any number of times, in that
// order), Frontier (when the header's From > 0), Entry for every index
// From..To-1, Checkpoint, optionally Consistency, then Close. A call out of
// order, or with a record the Reader would refuse, returns an error and
// writes nothing (the Writer stays usable); after an error of the
// underlying writer every call fails. Output is buffered:
// Close flushes it (it does not close the underlying writer). A Writer is
// not safe for concurrent use.
type Writer struct {
	w    *bufio.Writer
	seq  sequencer
	err  error
	line []byte
}

// NewWriter writes h as the header of a pack on w. An empty h.Format is
// Format; a zero h.Created is the current time.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if h.Format == "" {
		h.Format = Format
	}
	if h.Created.IsZero() {
		h.Created = time.Now()
	}
	h.Created = h.Created.UTC()
	pw := &Writer{w: bufio.NewWriterSize(w, 64<<10), seq: newSequencer()}
	if err := pw.write(&h); err != nil {
		return nil, err
	}
	return pw, nil
}

func (w *Writer) write(rec Record) error {
	if w.err != nil {
		return w.err
	}
	if p := w.seq.record(rec); p != nil {
		return fmt.Errorf("audit: write pack: %s", p.msg)
	}
	line, err := encodeRecord(rec)
	if err == nil && len(line) > MaxLineSize {
		err = fmt.Errorf("a %s record of %d bytes, over the limit of %d", rec.Type(), len(line), MaxLineSize)
	}
	if err != nil {
		w.err = fmt.Errorf("audit: write pack: %w", err)
		return w.err
	}
	return w.emit(line)
}

func (w *Writer) emit(line []byte) error {
	if _, err := w.w.Write(line); err != nil {
		w.err = fmt.Errorf("audit: write pack: %w", err)
		return w.err
	}
	return nil
}

// NodeKeys writes verifier key lines of one or more nodes (each node's
// lines exactly as it registered them).
func (w *Writer) NodeKeys(text string) error { return w.write(&NodeKeys{Text: text}) }

// Officer writes an officer's public key bundle.
func (w *Writer) Officer(o Officer) error { return w.write(&o) }

// Ceremony writes a ceremony's transcript.
func (w *Writer) Ceremony(c Ceremony) error { return w.write(&c) }

// Certificate writes a destruction certificate.
func (w *Writer) Certificate(c client.DestructionCertificate) error {
	return w.write(&Certificate{DestructionCertificate: c})
}

// Frontier writes the frontier of the tree of size entries (size must be
// the header's From; see FrontierFromProof).
func (w *Writer) Frontier(size uint64, hashes []tlog.Hash) error {
	return w.write(&Frontier{Size: size, Hashes: hashes})
}

// Entry writes entry i (canonical bytes, as the API serves them). Entries
// must come in order, From first.
func (w *Writer) Entry(i uint64, canonical []byte) error {
	if w.err != nil {
		return w.err
	}
	if p := w.seq.entry(i, len(canonical)); p != nil {
		return fmt.Errorf("audit: write pack: %s", p.msg)
	}
	w.line = appendEntryLine(w.line[:0], i, canonical)
	return w.emit(w.line)
}

// Checkpoint writes the signed checkpoint of the tree of To entries. Its
// body must parse and name size To.
func (w *Writer) Checkpoint(note []byte) error {
	return w.write(&CheckpointRecord{Note: note})
}

// Consistency writes a consistency proof between the trees of old and new
// entries: from the auditor's pinned checkpoint to the pack's (or from
// the pack's to the pinned one, when that is larger).
func (w *Writer) Consistency(old, new uint64, hashes []tlog.Hash) error {
	return w.write(&Consistency{Old: old, New: new, Hashes: hashes})
}

// Close checks that the pack is complete and flushes it.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if p := w.seq.end(); p != nil {
		w.err = fmt.Errorf("audit: write pack: incomplete: %s", p.msg)
		return w.err
	}
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("audit: write pack: %w", err)
		return w.err
	}
	w.err = errors.New("audit: write pack: closed")
	return nil
}

// checkpointBody parses the body of a signed checkpoint without checking
// any signature.
func checkpointBody(note []byte) (ledger.Checkpoint, error) {
	text, _, ok := cutNote(note)
	if !ok {
		return ledger.Checkpoint{}, errors.New("checkpoint is not a signed note (no blank line before the signatures)")
	}
	return ledger.ParseCheckpoint(text)
}

// cutNote splits a signed note into its text (with its final newline) and
// signature lines.
func cutNote(note []byte) (text, sigs []byte, ok bool) {
	i := bytes.LastIndex(note, []byte("\n\n"))
	if i < 0 {
		return nil, nil, false
	}
	return note[:i+1], note[i+2:], true
}

package main

// The CLI's seam over keysvc/audit: writing a pack, reading its records
// for a report, the trust file and verification.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

type packHeader struct {
	Cluster, Origin string
	From, To        uint64
	Created         time.Time
}

// packWriter writes a pack in its order.
type packWriter struct{ w *audit.Writer }

func newPackWriter(w io.Writer, h packHeader) (*packWriter, error) {
	aw, err := audit.NewWriter(w, audit.Header{Format: audit.Format, Cluster: h.Cluster, Origin: h.Origin, From: h.From, To: h.To, Created: h.Created})
	if err != nil {
		return nil, err
	}
	return &packWriter{aw}, nil
}

func (p *packWriter) nodeKeys(text string) error { return p.w.NodeKeys(text) }

func (p *packWriter) officer(o client.Officer) error {
	return p.w.Officer(audit.Officer{ID: o.ID, Bundle: o.Bundle, Fingerprint: o.Fingerprint})
}

func (p *packWriter) ceremony(c client.Ceremony) error {
	return p.w.Ceremony(audit.CeremonyFromClient(c))
}

func (p *packWriter) certificate(dc client.DestructionCertificate) error { return p.w.Certificate(dc) }

func (p *packWriter) frontier(size uint64, hashes []tlog.Hash) error {
	return p.w.Frontier(size, hashes)
}

func (p *packWriter) entry(i uint64, raw []byte) error { return p.w.Entry(i, raw) }

func (p *packWriter) checkpoint(note []byte) error { return p.w.Checkpoint(note) }

func (p *packWriter) consistency(old, new uint64, hashes []tlog.Hash) error {
	return p.w.Consistency(old, new, hashes)
}

func (p *packWriter) close() error { return p.w.Close() }

// checkpointBody parses a signed checkpoint's body, checking no signature.
func checkpointBody(note []byte) (ledger.Checkpoint, error) {
	for i := len(note) - 2; i >= 0; i-- {
		if note[i] == '\n' && note[i+1] == '\n' {
			return ledger.ParseCheckpoint(note[:i+1])
		}
	}
	return ledger.Checkpoint{}, errors.New("not a signed note")
}

// scanPack reads a pack without verifying it (the reader checks its syntax
// and order only), calling onEntry with each entry in order. It returns
// the other records it read, also when it stops at an error: what an
// unverified report shows.
func scanPack(r io.Reader, onEntry func(ledger.Entry) error) (*audit.Contents, error) {
	c := &audit.Contents{}
	rd := audit.NewReader(r)
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		switch rec := rec.(type) {
		case *audit.Header:
			c.Header = *rec
		case *audit.NodeKeys:
			c.NodeKeys = append(c.NodeKeys, rec.Text)
		case *audit.Officer:
			c.Officers = append(c.Officers, *rec)
		case *audit.Ceremony:
			c.Ceremonies = append(c.Ceremonies, *rec)
		case *audit.Certificate:
			c.Certificates = append(c.Certificates, rec.DestructionCertificate)
		case *audit.Frontier:
			c.Frontier = rec
		case *audit.EntryRecord:
			e, err := ledger.ParseEntry(rec.Canonical)
			if err == nil && e.Index != rec.Index {
				err = fmt.Errorf("it says it is entry %d", e.Index)
			}
			if err != nil {
				return c, fmt.Errorf("entry %d: %w", rec.Index, err)
			}
			if err := onEntry(e); err != nil {
				return c, err
			}
		case *audit.CheckpointRecord:
			c.Checkpoint = rec.Note
		case *audit.Consistency:
			c.Consistency = rec
		}
	}
}

// readPackHeader reads the header of the pack at path.
func readPackHeader(path string) (audit.Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return audit.Header{}, err
	}
	defer f.Close()
	rec, err := audit.NewReader(f).Next()
	if err != nil {
		return audit.Header{}, err
	}
	h, ok := rec.(*audit.Header)
	if !ok {
		return audit.Header{}, errors.New("the pack does not start with its header")
	}
	return *h, nil
}

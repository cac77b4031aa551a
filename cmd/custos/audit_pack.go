package main

// The CLI's seam over keysvc/audit for writing a pack.

import (
	"io"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/client"
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

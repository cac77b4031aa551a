// Scan: a pass over a pack's entries without verification, for tools that
// aggregate (the custody report) over a pack Verify already accepted.

package audit

import (
	"io"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// Scan reads a pack, checking only what the Reader checks (syntax, order,
// entry numbering) and that each entry is canonical, and calls fn with
// every entry in log order. It returns the pack's other records. It
// proves nothing: verify first (or aggregate with Options.OnEntry in
// Verify's own pass). An error from fn stops Scan and is returned as is;
// a malformed pack is a *Failure.
func Scan(r io.Reader, fn func(ledger.Entry) error) (*Contents, error) {
	c := &Contents{}
	rd := NewReader(r)
	for {
		rec, err := rd.next()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return nil, err
		}
		switch r := rec.(type) {
		case *Header:
			c.Header = *r
		case *NodeKeys:
			c.NodeKeys = append(c.NodeKeys, r.Text)
		case *Officer:
			c.Officers = append(c.Officers, *r)
		case *Ceremony:
			c.Ceremonies = append(c.Ceremonies, *r)
		case *Certificate:
			c.Certificates = append(c.Certificates, r.DestructionCertificate)
		case *Frontier:
			c.Frontier = r
		case *EntryRecord:
			e, err := parseEntry(r.Canonical)
			if err != nil {
				return nil, fail(KindEntry, int64(r.Index), rd.line, err, "entry %d: %v", r.Index, err)
			}
			if e.Index != r.Index {
				return nil, fail(KindEntry, int64(r.Index), rd.line, nil, "entry %d: the record holds an entry that says it is entry %d", r.Index, e.Index)
			}
			if fn != nil {
				if err := fn(e); err != nil {
					return nil, err
				}
			}
		case *CheckpointRecord:
			c.Checkpoint = r.Note
		case *Consistency:
			c.Consistency = r
		}
	}
}

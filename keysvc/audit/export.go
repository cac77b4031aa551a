// Export: an evidence pack assembled from what the cluster's API serves,
// ending at the leader's latest signed checkpoint (the only one the API
// serves). Pages of entries are fetched a few at a time and written in
// order, so memory stays bounded whatever the log's size; the tree is
// recomputed as they pass, and a pack whose entries do not hash to the
// checkpoint's root is refused before its end is written.

package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

const (
	// ExportPage is the entries per request: the API's largest page.
	ExportPage = 1000
	// ExportWorkers is the pages an export fetches at once.
	ExportWorkers = 4
)

// EntrySource is what fetching entries needs of the API (a
// *client.Client is one).
type EntrySource interface {
	Entries(ctx context.Context, start uint64, limit int) ([][]byte, error)
}

// LogSource is an EntrySource that also proves inclusion.
type LogSource interface {
	EntrySource
	InclusionProof(ctx context.Context, index, size uint64) (ledger.InclusionProof, error)
}

// Latest is the cluster's latest signed checkpoint, verified with the node
// keys the cluster serves, and the status of the node that answered.
type Latest struct {
	Status client.Status
	Keys   []ledger.NodeKey
	Note   []byte // the signed checkpoint as served
	CP     ledger.Checkpoint
	Signer string // the key name that signed it
}

// FetchLatest fetches and verifies the latest checkpoint.
func FetchLatest(ctx context.Context, cl *client.Client) (*Latest, error) {
	st, err := cl.Cluster(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := cl.NodeKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("node keys: %w", err)
	}
	note, err := cl.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	cp, signer, err := ledger.VerifyCheckpoint(note, ledger.Origin(st.Cluster), keys...)
	if err != nil {
		return nil, fmt.Errorf("the latest checkpoint does not verify with the cluster's node keys: %w", err)
	}
	return &Latest{Status: st, Keys: keys, Note: note, CP: cp, Signer: signer}, nil
}

// ExportOptions say which part of the log a pack holds.
type ExportOptions struct {
	From uint64 // first entry; those before it are summed up by the tree's frontier
	// Pin, when set, is a checkpoint the auditor verified earlier: the pack
	// then carries the consistency proof from it to the latest, checked
	// first (a latest checkpoint that does not extend it is an ALERT).
	Pin     *ledger.Checkpoint
	Created time.Time // the header's creation time
}

// Exported is what a pack holds.
type Exported struct {
	From, To                uint64
	Officers                int
	Ceremonies              int
	DestructionCertificates int
}

// Export writes to w the pack of entries [o.From, latest.CP.Size) with what
// verifying them needs: the node keys, the officers, the ceremonies and the
// destruction certificates as of the checkpoint, the frontier before
// o.From, the checkpoint, and the consistency proof from o.Pin. It fails,
// with w incomplete, if anything the cluster serves does not add up.
func Export(ctx context.Context, cl *client.Client, latest *Latest, w io.Writer, o ExportOptions) (*Exported, error) {
	st, keys, note, cp := latest.Status, latest.Keys, latest.Note, latest.CP
	origin := ledger.Origin(st.Cluster)
	from, to := o.From, cp.Size
	if from > to {
		return nil, fmt.Errorf("--from %d is beyond the latest checkpoint (size %d)", from, to)
	}
	var consistency ledger.ConsistencyProof
	if o.Pin != nil {
		pin := *o.Pin
		if pin.Size > cp.Size {
			return nil, fmt.Errorf("ALERT: rollback: the pinned checkpoint (size %d) is larger than the cluster's latest (size %d)", pin.Size, cp.Size)
		}
		var err error
		if consistency, err = cl.ConsistencyProof(ctx, pin.Size, cp.Size); err != nil {
			return nil, fmt.Errorf("consistency proof from %d to %d: %w", pin.Size, cp.Size, err)
		}
		if err := ledger.VerifyConsistency(pin, cp, consistency.Hashes); err != nil {
			return nil, fmt.Errorf("ALERT: the latest checkpoint does not extend the pinned one: %w", err)
		}
	}

	keyText, err := NodeKeysText(keys)
	if err != nil {
		return nil, err
	}
	officers, err := cl.Officers(ctx)
	if err != nil && !notInitialized(err) {
		return nil, fmt.Errorf("officers: %w", err)
	}
	ceremonies, err := cl.Ceremonies(ctx)
	if err != nil && !notInitialized(err) {
		return nil, fmt.Errorf("ceremonies: %w", err)
	}
	certs, err := destructionCertificates(ctx, cl, from, to)
	if err != nil {
		return nil, err
	}

	pw, err := NewWriter(w, Header{Format: Format, Cluster: st.Cluster, Origin: origin, From: from, To: to, Created: o.Created})
	if err != nil {
		return nil, err
	}
	if err := pw.NodeKeys(keyText); err != nil {
		return nil, err
	}
	out := &Exported{From: from, To: to, DestructionCertificates: len(certs)}
	for _, of := range officers {
		if of.Added < to { // officers added after the checkpoint are not in its log
			if err := pw.Officer(Officer{ID: of.ID, Bundle: of.Bundle, Fingerprint: of.Fingerprint}); err != nil {
				return nil, err
			}
			out.Officers++
		}
	}
	for _, c := range ceremonies {
		if c, in := ceremonyAsOf(c, from, to); in {
			if err := pw.Ceremony(CeremonyFromClient(c)); err != nil {
				return nil, err
			}
			out.Ceremonies++
		}
	}
	for _, dc := range certs {
		if err := pw.Certificate(dc); err != nil {
			return nil, err
		}
	}

	// The entries before from are summed up by the frontier of their tree,
	// from the last one's inclusion proof; the tree then grows with the
	// pack's entries, and its root at the end must be the checkpoint's: a
	// pack that would not verify is not finished.
	tree := &Tree{}
	if from > 0 {
		frontier, err := FrontierAt(ctx, cl, from)
		if err != nil {
			return nil, err
		}
		if tree, err = NewTreeFromFrontier(from, frontier); err != nil {
			return nil, err
		}
		if err := pw.Frontier(from, frontier); err != nil {
			return nil, err
		}
	}
	err = FetchEntries(ctx, cl, from, to, ExportWorkers, func(i uint64, raw []byte) error {
		tree.Add(tlog.RecordHash(raw))
		return pw.Entry(i, raw)
	})
	if err != nil {
		return nil, err
	}
	if root := tree.Root(); root != cp.Hash {
		return nil, fmt.Errorf("the entries the cluster served hash to root %s, not the checkpoint's %s: no pack written",
			rootText(root), rootText(cp.Hash))
	}
	if err := pw.Checkpoint(note); err != nil {
		return nil, err
	}
	if o.Pin != nil {
		if err := pw.Consistency(o.Pin.Size, cp.Size, consistency.Hashes); err != nil {
			return nil, err
		}
	}
	if err := pw.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// FetchEntries calls fn for every entry in [start, end), in order. Up to
// workers pages of ExportPage entries are in flight at once; a node that
// answers short pages is asked again for the rest, and one that does not
// have the entries yet (a follower behind the checkpoint) is retried for a
// few seconds.
func FetchEntries(ctx context.Context, src EntrySource, start, end uint64, workers int, fn func(i uint64, raw []byte) error) error {
	if start >= end {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		start, end uint64
		done       chan struct{}
		entries    [][]byte
		err        error
	}
	jobs := make(chan *job)
	ordered := make(chan *job, 2*workers)
	go func() { // make the jobs, in order
		defer close(jobs)
		defer close(ordered)
		for s := start; s < end; s += ExportPage {
			j := &job{start: s, end: min(s+ExportPage, end), done: make(chan struct{})}
			select {
			case ordered <- j:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				j.entries, j.err = fetchRange(ctx, src, j.start, j.end)
				close(j.done)
			}
		}()
	}
	defer wg.Wait()
	for j := range ordered {
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if j.err != nil {
			return j.err
		}
		for k, raw := range j.entries {
			if err := fn(j.start+uint64(k), raw); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// fetchRange fetches the entries [start, end).
func fetchRange(ctx context.Context, src EntrySource, start, end uint64) ([][]byte, error) {
	out := make([][]byte, 0, end-start)
	deadline := time.Now().Add(10 * time.Second)
	for s := start; s < end; {
		page, err := src.Entries(ctx, s, int(end-s))
		var ae *client.APIError
		if (errors.As(err, &ae) && ae.Code == client.CodeNotFound) || (err == nil && len(page) == 0) {
			// The node that answered is behind the checkpoint: wait for it.
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("entries from %d: the cluster does not serve them (%v)", s, err)
			}
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("entries from %d: %w", s, err)
		}
		if uint64(len(page)) > end-s {
			return nil, fmt.Errorf("entries from %d: asked for %d, got %d", s, end-s, len(page))
		}
		out = append(out, page...)
		s += uint64(len(page))
	}
	return out, nil
}

// notInitialized reports whether err is the API's answer of a cluster
// without officers yet: then there are none, and no ceremonies, to export.
func notInitialized(err error) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && ae.Code == client.CodeNotInitialized
}

// FrontierAt is the frontier of the tree of the first size entries, from
// entry size-1 and its inclusion proof in that tree.
func FrontierAt(ctx context.Context, cl LogSource, size uint64) ([]tlog.Hash, error) {
	page, err := cl.Entries(ctx, size-1, 1)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", size-1, err)
	}
	if len(page) != 1 {
		return nil, fmt.Errorf("entry %d: the node returned none", size-1)
	}
	proof, err := cl.InclusionProof(ctx, size-1, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of entry %d: %w", size-1, err)
	}
	return FrontierFromProof(size, page[0], proof.Hashes)
}

// NodeKeysText is the node keys as a trusted-keys file: each node's two
// verifier key lines.
func NodeKeysText(keys []ledger.NodeKey) (string, error) {
	var b []byte
	for _, k := range keys {
		t, err := k.MarshalText()
		if err != nil {
			return "", fmt.Errorf("node key %s: %w", k.Name, err)
		}
		b = append(b, t...)
	}
	return string(b), nil
}

// ceremonyAsOf is c as it stood at the checkpoint of size to (approvals
// and its closing after it left out), and whether the pack [from, to)
// includes it: all ceremonies proposed before to when from is 0, else
// those with an entry in [from, to).
func ceremonyAsOf(c client.Ceremony, from, to uint64) (client.Ceremony, bool) {
	if c.Proposed >= to {
		return c, false
	}
	in := from == 0 || c.Proposed >= from || (c.Closed >= from && c.Closed < to)
	var approvals []client.Approval
	for _, a := range c.Approvals {
		if a.Entry < to {
			approvals = append(approvals, a)
			in = in || a.Entry >= from
		}
	}
	c.Approvals = approvals
	if c.Closed >= to {
		c.Closed, c.Status, c.Code, c.Reason = 0, "pending", "", ""
	}
	return c, in
}

// destructionCertificates fetches the certificate of every destroyed KEK
// version destroyed before to (and, for a pack from from, not before it),
// each holder's attestation as of to.
func destructionCertificates(ctx context.Context, cl *client.Client, from, to uint64) ([]client.DestructionCertificate, error) {
	ks, err := cl.KEKs(ctx)
	if err != nil {
		return nil, fmt.Errorf("keks: %w", err)
	}
	var out []client.DestructionCertificate
	for _, k := range ks.KEKs {
		for _, v := range k.Versions {
			if v.State != ledger.KEKDestroyed || v.Destroyed == 0 || v.Destroyed >= to {
				continue
			}
			dc, err := cl.DestructionCertificate(ctx, k.ID, v.Version)
			if err != nil {
				return nil, fmt.Errorf("destruction certificate of %s v%d: %w", k.ID, v.Version, err)
			}
			attestedIn := false
			for i, h := range dc.Holders {
				if h.Attested && h.Entry >= to {
					dc.Holders[i] = client.DestroyedHolder{Node: h.Node} // attested after the checkpoint
					dc.Complete = false
				}
				attestedIn = attestedIn || (h.Attested && h.Entry >= from && h.Entry < to)
			}
			if from > 0 && v.Destroyed < from && !attestedIn {
				continue // nothing of it in this pack's entries
			}
			out = append(out, dc)
		}
	}
	slices.SortFunc(out, func(a, b client.DestructionCertificate) int {
		if a.KEKID != b.KEKID {
			if a.KEKID < b.KEKID {
				return -1
			}
			return 1
		}
		return int(a.Version) - int(b.Version)
	})
	return out, nil
}

// rootText is a tree root as a checkpoint writes it (standard base64).
func rootText(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

package main

// `custos audit export`: stream an evidence pack from the cluster to a
// file. The pack ends at the leader's latest signed checkpoint (the only
// one the API serves), so that checkpoint is fetched first and the entries
// up to its size follow; pages are fetched a few at a time and written in
// order, so memory stays bounded whatever the log's size.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

const (
	exportPage    = 1000 // entries per request: the API's largest page
	exportWorkers = 4    // pages fetched at once
)

// entrySource is what fetching entries needs of the API.
type entrySource interface {
	Entries(ctx context.Context, start uint64, limit int) ([][]byte, error)
}

// fetchEntries calls fn for every entry in [start, end), in order. Up to
// workers pages of exportPage entries are in flight at once; a node that
// answers short pages is asked again for the rest, and one that does not
// have the entries yet (a follower behind the checkpoint) is retried for a
// few seconds.
func fetchEntries(ctx context.Context, src entrySource, start, end uint64, workers int, fn func(i uint64, raw []byte) error) error {
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
		for s := start; s < end; s += exportPage {
			j := &job{start: s, end: min(s+exportPage, end), done: make(chan struct{})}
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
func fetchRange(ctx context.Context, src entrySource, start, end uint64) ([][]byte, error) {
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

func runAuditExport(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	fs.SetOutput(s.err)
	af := addAPIFlags(fs)
	out := fs.String("out", "", "the pack file to write (required)")
	from := fs.Uint64("from", 0, "first entry in the pack; the entries before it are summed up by the tree's frontier")
	to := fs.Uint64("to", 0, "end of the pack, exclusive (default, and the only value the API can serve a signed checkpoint for: the latest checkpoint's size)")
	format := addFormatFlag(fs)
	since := fs.String("since", "", "a trust file (custos audit checkpoint, verify --advance, watch): start at its verified state, or else its pinned checkpoint, and add the consistency proof from the pin")
	if _, err := parsePositional(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out PACK is required")
	}
	set := setFlags(fs)
	if *since != "" && set["from"] {
		return usagef("give --from or --since, not both (--since starts at the pinned checkpoint's size)")
	}
	var pinned *pinnedTrust
	var pin ledger.Checkpoint
	if *since != "" {
		t, err := readTrust(*since)
		if err != nil {
			return err
		}
		if pin, _, err = ledger.VerifyCheckpoint([]byte(t.checkpoint()), t.origin(), t.keys...); err != nil {
			return fmt.Errorf("--since %s: the pinned checkpoint does not verify with the file's node keys: %w", *since, err)
		}
		pinned, *from = t, pin.Size
		if s := t.t.State; s != nil {
			// Start where the verified state is, so the pack verifies in
			// full; it still covers the pin (the state never passes it).
			*from = s.Size
		}
	}
	cl, err := auditorClient(af)
	if err != nil {
		return err
	}
	defer cl.Close()
	start := time.Now()

	// The checkpoint first: the pack ends at its size.
	lc, err := fetchLatestCheckpoint(ctx, cl)
	if err != nil {
		return err
	}
	st, keys, note, cp, signer, origin := lc.status, lc.keys, lc.note, lc.cp, lc.signer, ledger.Origin(lc.status.Cluster)
	if set["to"] && *to != cp.Size {
		return fmt.Errorf("--to %d: the cluster serves a signed checkpoint of its latest size only (%d now), and a pack must end at a signed checkpoint: leave out --to (or give --to %d)", *to, cp.Size, cp.Size)
	}
	*to = cp.Size
	if *from > *to {
		return fmt.Errorf("--from %d is beyond the latest checkpoint (size %d)", *from, *to)
	}
	var consistency ledger.ConsistencyProof
	if pinned != nil {
		if pinned.origin() != origin {
			return fmt.Errorf("--since %s pins log %q, the cluster's is %q", *since, pinned.origin(), origin)
		}
		if pin.Size > cp.Size {
			return fmt.Errorf("ALERT: rollback: the pinned checkpoint (size %d) is larger than the cluster's latest (size %d)", pin.Size, cp.Size)
		}
		if consistency, err = cl.ConsistencyProof(ctx, pin.Size, cp.Size); err != nil {
			return fmt.Errorf("consistency proof from %d to %d: %w", pin.Size, cp.Size, err)
		}
		if err := ledger.VerifyConsistency(pin, cp, consistency.Hashes); err != nil {
			return fmt.Errorf("ALERT: the latest checkpoint does not extend the pinned one: %w", err)
		}
	}

	keyText, err := nodeKeysText(keys)
	if err != nil {
		return err
	}
	officers, err := cl.Officers(ctx)
	if err != nil && !notInitialized(err) {
		return fmt.Errorf("officers: %w", err)
	}
	ceremonies, err := cl.Ceremonies(ctx)
	if err != nil && !notInitialized(err) {
		return fmt.Errorf("ceremonies: %w", err)
	}
	certs, err := destructionCertificates(ctx, cl, *from, *to)
	if err != nil {
		return err
	}

	// Written to a temporary file renamed at the end: no half pack is left
	// behind, and an earlier pack of that name stays until this one is whole.
	f, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".tmp*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	pw, err := newPackWriter(bw, packHeader{Cluster: st.Cluster, Origin: origin, From: *from, To: *to, Created: time.Now().UTC()})
	if err != nil {
		return err
	}
	if err := pw.nodeKeys(keyText); err != nil {
		return err
	}
	for _, o := range officers {
		if o.Added < *to { // officers added after the checkpoint are not in its log
			if err := pw.officer(o); err != nil {
				return err
			}
		}
	}
	var nCeremonies int
	for _, c := range ceremonies {
		if c, in := ceremonyAsOf(c, *from, *to); in {
			if err := pw.ceremony(c); err != nil {
				return err
			}
			nCeremonies++
		}
	}
	for _, dc := range certs {
		if err := pw.certificate(dc); err != nil {
			return err
		}
	}

	// The entries before from are summed up by the frontier of their tree,
	// from the last one's inclusion proof; the tree then grows with the
	// pack's entries, and its root at the end must be the checkpoint's: a
	// pack that would not verify is not written.
	tree := &audit.Tree{}
	if *from > 0 {
		frontier, err := frontierAt(ctx, cl, *from)
		if err != nil {
			return err
		}
		if tree, err = audit.NewTreeFromFrontier(*from, frontier); err != nil {
			return err
		}
		if err := pw.frontier(*from, frontier); err != nil {
			return err
		}
	}
	err = fetchEntries(ctx, cl, *from, *to, exportWorkers, func(i uint64, raw []byte) error {
		tree.Add(tlog.RecordHash(raw))
		return pw.entry(i, raw)
	})
	if err != nil {
		return err
	}
	if root := tree.Root(); root != cp.Hash {
		return fmt.Errorf("the entries the cluster served hash to root %s, not the checkpoint's %s: no pack written", rootWords(root), rootWords(cp.Hash))
	}
	if err := pw.checkpoint(note); err != nil {
		return err
	}
	if pinned != nil {
		if err := pw.consistency(pin.Size, cp.Size, consistency.Hashes); err != nil {
			return err
		}
	}
	if err := pw.close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), *out); err != nil {
		return err
	}
	ok = true
	el := time.Since(start)
	if format.json {
		ej := exportJSON{Pack: *out, Cluster: st.Cluster, From: *from, To: *to, Entries: *to - *from, CheckpointSize: cp.Size,
			Root: rootWords(cp.Hash), Signer: signer, Officers: len(officers), Ceremonies: nCeremonies, DestructionCertificates: len(certs),
			Seconds: el.Seconds()}
		if pinned != nil {
			ej.ConsistencyFrom = pin.Size
		}
		return printJSON(s.out, ej)
	}
	fmt.Fprintf(s.out, "Wrote %s: entries %d to %d of cluster %s (%d entries), checkpoint size %d root %s signed by %s.\n",
		*out, *from, *to, st.Cluster, *to-*from, cp.Size, rootWords(cp.Hash), signer)
	fmt.Fprintf(s.out, "With %d officers, %d ceremonies, %d destruction certificates", len(officers), nCeremonies, len(certs))
	if pinned != nil {
		fmt.Fprintf(s.out, ", and the consistency proof from the pinned checkpoint (size %d)", pin.Size)
	}
	fmt.Fprintf(s.out, ".\nExported in %v: %s entries/s.\n", el.Round(time.Millisecond), rate(*to-*from, el))
	fmt.Fprintf(s.out, "Verify it offline: custos audit verify %s --trust TRUSTFILE\n", *out)
	return nil
}

// notInitialized reports whether err is the API's answer of a cluster
// without officers yet: then there are none, and no ceremonies, to export.
func notInitialized(err error) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && ae.Code == client.CodeNotInitialized
}

// frontierAt is the frontier of the tree of the first size entries, from
// entry size-1 and its inclusion proof in that tree.
func frontierAt(ctx context.Context, cl logSource, size uint64) ([]tlog.Hash, error) {
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
	return audit.FrontierFromProof(size, page[0], proof.Hashes)
}

// nodeKeysText is the node keys as a trusted-keys file.
func nodeKeysText(keys []ledger.NodeKey) (string, error) {
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

// exportJSON is what audit export --format json prints. consistency_from
// is the pinned checkpoint's size when the pack proves consistency from it.
type exportJSON struct {
	Pack                    string  `json:"pack"`
	Cluster                 string  `json:"cluster"`
	From                    uint64  `json:"from"`
	To                      uint64  `json:"to"`
	Entries                 uint64  `json:"entries"`
	CheckpointSize          uint64  `json:"checkpoint_size"`
	Root                    string  `json:"root"`
	Signer                  string  `json:"signer"`
	Officers                int     `json:"officers"`
	Ceremonies              int     `json:"ceremonies"`
	DestructionCertificates int     `json:"destruction_certificates"`
	ConsistencyFrom         uint64  `json:"consistency_from,omitempty"`
	Seconds                 float64 `json:"seconds"`
}

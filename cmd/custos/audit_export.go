package main

// `custos audit export`: an evidence pack from the cluster to a file,
// assembled by audit.Export; here are the flags, the trust file of
// --since, the file written whole or not at all, and the summary.

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ledger"
)

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
	lc, err := audit.FetchLatest(ctx, cl)
	if err != nil {
		return err
	}
	st, cp, signer, origin := lc.Status, lc.CP, lc.Signer, ledger.Origin(lc.Status.Cluster)
	if set["to"] && *to != cp.Size {
		return fmt.Errorf("--to %d: the cluster serves a signed checkpoint of its latest size only (%d now), and a pack must end at a signed checkpoint: leave out --to (or give --to %d)", *to, cp.Size, cp.Size)
	}
	*to = cp.Size
	if *from > *to {
		return fmt.Errorf("--from %d is beyond the latest checkpoint (size %d)", *from, *to)
	}
	opts := audit.ExportOptions{From: *from, Created: time.Now().UTC()}
	if pinned != nil {
		if pinned.origin() != origin {
			return fmt.Errorf("--since %s pins log %q, the cluster's is %q", *since, pinned.origin(), origin)
		}
		opts.Pin = &pin
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
	ex, err := audit.Export(ctx, cl, lc, bw, opts)
	if err != nil {
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
			Root: rootWords(cp.Hash), Signer: signer, Officers: ex.Officers, Ceremonies: ex.Ceremonies,
			DestructionCertificates: ex.DestructionCertificates, Seconds: el.Seconds()}
		if pinned != nil {
			ej.ConsistencyFrom = pin.Size
		}
		return printJSON(s.out, ej)
	}
	fmt.Fprintf(s.out, "Wrote %s: entries %d to %d of cluster %s (%d entries), checkpoint size %d root %s signed by %s.\n",
		*out, *from, *to, st.Cluster, *to-*from, cp.Size, rootWords(cp.Hash), signer)
	fmt.Fprintf(s.out, "With %d officers, %d ceremonies, %d destruction certificates", ex.Officers, ex.Ceremonies, ex.DestructionCertificates)
	if pinned != nil {
		fmt.Fprintf(s.out, ", and the consistency proof from the pinned checkpoint (size %d)", pin.Size)
	}
	fmt.Fprintf(s.out, ".\nExported in %v: %s entries/s.\n", el.Round(time.Millisecond), rate(*to-*from, el))
	fmt.Fprintf(s.out, "Verify it offline: custos audit verify %s --trust TRUSTFILE\n", *out)
	return nil
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

package main

// `custos audit checkpoint`: pin the cluster's latest signed checkpoint
// with the genesis entry (proved included in it) and the node keys, in the
// trust file every other audit command starts from.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/custos-eu/custos/internal/atomicfile"
	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ledger"
)

func runAuditCheckpoint(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("audit checkpoint", flag.ContinueOnError)
	fs.SetOutput(s.err)
	af := addAPIFlags(fs)
	out := fs.String("out", "", "the trust file to write (required)")
	format := addFormatFlag(fs)
	force := fs.Bool("force", false, "replace an existing trust file (its pin is lost: a rollback to before the new pin goes unnoticed)")
	if _, err := parsePositional(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out FILE is required")
	}
	if _, err := os.Stat(*out); err == nil && !*force {
		return fmt.Errorf("%s exists: it may hold a pin you rely on; move the pin forward with custos audit watch --once --trust %s, or give --force to replace it", *out, *out)
	}
	cl, err := auditorClient(af)
	if err != nil {
		return err
	}
	defer cl.Close()
	lc, err := audit.FetchLatest(ctx, cl)
	if err != nil {
		return err
	}
	st, keys, note, cp, signer := lc.Status, lc.Keys, lc.Note, lc.CP, lc.Signer
	if cp.Size == 0 {
		return errors.New("the log is empty: nothing to pin yet")
	}
	page, err := cl.Entries(ctx, 0, 1)
	if err != nil {
		return fmt.Errorf("genesis entry: %w", err)
	}
	if len(page) != 1 {
		return errors.New("genesis entry: the node returned none")
	}
	genesis := page[0]
	proof, err := cl.InclusionProof(ctx, 0, cp.Size)
	if err != nil {
		return fmt.Errorf("inclusion proof of the genesis entry: %w", err)
	}
	g, err := ledger.ParseEntry(genesis)
	if err != nil {
		return fmt.Errorf("genesis entry: %w", err)
	}
	keyText, err := audit.NodeKeysText(keys)
	if err != nil {
		return err
	}
	// NewTrust checks it all again: the checkpoint's signatures, that
	// entry 0 is this cluster's genesis and that the proof puts it in the
	// checkpoint's tree.
	data, err := newTrustFile(st.Cluster, genesis, proof.Hashes, keyText, note)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(*out, data, 0o644); err != nil {
		return err
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name
	}
	if format.json {
		return printJSON(s.out, checkpointPinJSON{Cluster: st.Cluster, TrustFile: *out, Size: cp.Size, Root: rootWords(cp.Hash),
			Signer: signer, GenesisFingerprint: fingerprint(genesis), GenesisTime: g.Time.UTC(), GenesisActor: g.Actor.Identity, NodeKeys: names})
	}
	fmt.Fprintf(s.out, "Pinned the key-op log of cluster %s in %s:\n", st.Cluster, *out)
	fmt.Fprintf(s.out, "  checkpoint  size %d, root %s\n", cp.Size, rootWords(cp.Hash))
	fmt.Fprintf(s.out, "  signed by   %s (ECDSA P-256 and ML-DSA-65 signatures verified)\n", signer)
	fmt.Fprintf(s.out, "  genesis     entry 0 of %s, %s, %s (proved included in the checkpoint)\n", g.Time.UTC().Format("2006-01-02 15:04:05Z"), fingerprint(genesis), g.Actor.Identity)
	fmt.Fprintf(s.out, "  node keys   %s\n", strings.Join(names, ", "))
	fmt.Fprintln(s.out, "The node keys and the genesis are as the cluster served them: compare the genesis fingerprint and the keys with the operators over another channel once.")
	fmt.Fprintf(s.out, "Next: custos audit export --out PACK, then custos audit verify PACK --trust %s --advance (which pins the pack's end with the state it verified);\n", *out)
	fmt.Fprintf(s.out, "later packs: custos audit export --since %s --out PACK2. To follow the log between packs: custos audit watch --trust %s.\n", *out, *out)
	return nil
}

// checkpointPinJSON is what audit checkpoint --format json prints.
type checkpointPinJSON struct {
	Cluster            string    `json:"cluster"`
	TrustFile          string    `json:"trust_file"`
	Size               uint64    `json:"size"`
	Root               string    `json:"root"`
	Signer             string    `json:"signer"`
	GenesisFingerprint string    `json:"genesis_fingerprint"`
	GenesisTime        time.Time `json:"genesis_time"`
	GenesisActor       string    `json:"genesis_actor"`
	NodeKeys           []string  `json:"node_keys"`
}

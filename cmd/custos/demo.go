package main

// The foundation demo: three SoftHSM tokens stand in for three nodes' HSMs.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/custos-eu/custos/keysvc/kek/kekhsm"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/pkcs11"
	"github.com/custos-eu/custos/hsm/softhsm"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

func runDemoCmd(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dir := fs.String("dir", ".demo", "working directory for the demo (created; must not hold an earlier demo)")
	part := fs.String("part", "all", "custody (threshold custody on three tokens), cluster (a 3-node cluster and its log), or all")
	custosd := fs.String("custosd", "", "custosd binary for the cluster part (default: next to custos, then $PATH)")
	keep := fs.Bool("keep", false, "leave the demo cluster running (stop it with `custos dev down --dir DIR/cluster`)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	switch *part {
	case "custody", "cluster", "all":
	default:
		return usagef("--part %q: want custody, cluster or all", *part)
	}
	if *part != "cluster" {
		if err := runDemo(stdout, filepath.Join(abs, "custody")); err != nil {
			return err
		}
	}
	if *part != "custody" {
		return runClusterDemo(ctx, stdout, filepath.Join(abs, "cluster"), *custosd, *keep)
	}
	return nil
}

type demoNode struct {
	name, region string
	index        uint16 // the node's share index
	tok          hsm.Token
	sealed       []byte
}

// runDemo deals a KEK 2-of-3 over three SoftHSM tokens, wraps and unwraps a data
// key, then crypto-shreds node shares and shows what can no longer be unwrapped.
func runDemo(w io.Writer, dir string) (err error) {
	say := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	step := 0
	title := func(s string) { step++; fmt.Fprintf(w, "\n== %d. %s\n", step, s) }

	title("Three nodes, each with its own HSM")
	env, err := softhsm.Setup(filepath.Join(dir, "softhsm"))
	if err != nil {
		return err
	}
	if err := env.Activate(); err != nil {
		return err
	}
	nodes := []*demoNode{
		{name: "node-1", region: "FR", index: 1}, {name: "node-2", region: "DE", index: 2}, {name: "node-3", region: "NL", index: 3},
	}
	for _, n := range nodes {
		cfg, err := env.InitToken(n.name)
		if err != nil {
			return err
		}
		n.tok, err = pkcs11.Open(cfg)
		if err != nil {
			return err
		}
		defer n.tok.Close()
		say("%s (region %s): SoftHSM token %q, PIN read from %s", n.name, n.region, n.name, cfg.PINFile)
	}

	title("Create KEK \"demo\" version 1, split 2-of-3 across the nodes")
	v, shares, err := kek.Deal(rand.Reader, "demo", 1, 2, 3)
	if err != nil {
		return err
	}
	say("The seed was split with Pedersen VSS; no single node ever holds it.")
	say("Public key (X-Wing, %d bytes), SHA-256 %x…", len(v.PublicKey), sha256.Sum256(v.PublicKey))
	say("%d Pedersen commitments published so each node can check its share.", v.Commitments.Threshold())
	for _, n := range nodes {
		n.sealed, err = kekhsm.SealShare(n.tok, v, &shares[n.index-1])
		shares[n.index-1].Zeroize()
		if err != nil {
			return err
		}
		say("%s verified share %d and sealed it in its HSM under AES key %q (%d bytes sealed)",
			n.name, n.index, kek.Label(v.ID, v.Version), len(n.sealed))
	}
	say("The dealer's copies of the shares are zeroised.")

	title("A backup agent wraps a data key with the public key alone")
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return err
	}
	defer clear(dek)
	ctx := wrapkey.Context{"dataset": "payroll", "classification": "confidential", "purpose": "backup"}
	blob, err := v.Wrap(rand.Reader, ctx, dek)
	if err != nil {
		return err
	}
	say("Context %v", map[string]string(ctx))
	say("Wrapped blob: %d bytes (HPKE X-Wing + HKDF-SHA256 + AES-256-GCM); no HSM was touched.", len(blob))

	title("Unwrap with two of the three nodes (node-1 and node-3)")
	got, err := demoUnwrap(v, blob, ctx, nodes[0], nodes[2])
	if err != nil {
		return fmt.Errorf("unwrap with node-1 and node-3: %w", err)
	}
	if !bytes.Equal(got, dek) {
		return errors.New("unwrap returned a different data key")
	}
	clear(got)
	say("Each node opened its share in its HSM; the shares were checked against the")
	say("commitments, the seed rebuilt, checked against the public key, used, and zeroised.")
	say("Recovered data key matches the original: yes")
	wrongCtx := wrapkey.Context{"dataset": "payroll", "classification": "public", "purpose": "backup"}
	if _, err := demoUnwrap(v, blob, wrongCtx, nodes[0], nodes[2]); errors.Is(err, wrapkey.ErrOpen) {
		say("Same blob with classification=public instead: refused (%v)", err)
	} else {
		return fmt.Errorf("unwrap under the wrong context: want refusal, got %v", err)
	}

	title("Destroy node-3's sealing key for demo v1")
	if err := kekhsm.Destroy(nodes[2].tok, v.ID, v.Version); err != nil {
		return err
	}
	say("node-3's HSM no longer holds %q; its sealed share is now ciphertext nobody can open.", kek.Label(v.ID, v.Version))
	if _, err := kekhsm.OpenShare(nodes[2].tok, v, 3, nodes[2].sealed); errors.Is(err, kek.ErrShareUnavailable) {
		say("node-3 opening its share: refused (%v)", err)
	} else {
		return fmt.Errorf("node-3 opened a share whose key is destroyed: %v", err)
	}
	if _, err := demoUnwrap(v, blob, ctx, nodes[0], nodes[2]); errors.Is(err, kek.ErrNotEnoughShares) {
		say("node-1's single remaining share cannot unwrap: refused (%v)", err)
	} else {
		return fmt.Errorf("unwrap with one share: want refusal, got %v", err)
	}
	if _, err := demoUnwrap(v, blob, ctx, nodes[0], nodes[1]); err != nil {
		return fmt.Errorf("unwrap with node-1 and node-2: %w", err)
	}
	say("node-1 with node-2 still reach the threshold: losing one node loses no data.")

	title("Crypto-shred demo v1: destroy its sealing key on the other nodes too")
	for _, n := range nodes[:2] {
		if err := kekhsm.Destroy(n.tok, v.ID, v.Version); err != nil {
			return err
		}
		say("%s destroyed %q", n.name, kek.Label(v.ID, v.Version))
	}
	if _, err := demoUnwrap(v, blob, ctx, nodes...); errors.Is(err, kek.ErrNotEnoughShares) {
		say("All three sealed shares still exist on disk, yet nothing can unwrap: refused (%v)", err)
	} else {
		return fmt.Errorf("unwrap after crypto-shredding: want refusal, got %v", err)
	}
	fmt.Fprintln(w, "\nCustody demo complete.")
	return nil
}

// demoUnwrap asks each node to open its share (skipping nodes that cannot), then
// reconstitutes the KEK and unwraps the blob.
func demoUnwrap(v *kek.Version, blob []byte, ctx wrapkey.Context, nodes ...*demoNode) ([]byte, error) {
	var shares []threshold.Share
	defer func() {
		for i := range shares {
			shares[i].Zeroize()
		}
	}()
	for _, n := range nodes {
		sh, err := kekhsm.OpenShare(n.tok, v, n.index, n.sealed)
		if errors.Is(err, kek.ErrShareUnavailable) {
			continue
		}
		if err != nil {
			return nil, err
		}
		shares = append(shares, *sh)
	}
	k, err := kek.Reconstitute(v, shares)
	if err != nil {
		return nil, err
	}
	defer k.Destroy()
	return k.Unwrap(blob, ctx)
}

package main

// The cluster part of the demo: three custosd processes, the key-op log, its
// signed checkpoints and proofs, and a leader crash.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/devcluster"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
)

func runClusterDemo(ctx context.Context, w io.Writer, dir, custosd string, keep bool) (err error) {
	say := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	step := 0
	title := func(s string) { step++; fmt.Fprintf(w, "\n== C%d. %s\n", step, s) }
	bound := func(d time.Duration) context.Context {
		c, cancel := context.WithTimeout(ctx, d)
		go func() { <-c.Done(); cancel() }()
		return c
	}

	title("Start a 3-node cluster, each node with its own SoftHSM token")
	c, err := devcluster.Create(devcluster.Options{Dir: dir, Nodes: 3, Custosd: custosd})
	if err != nil {
		return err
	}
	defer func() {
		if keep && err == nil {
			say("\nThe cluster keeps running. Try:  source %s/env && custos status", dir)
			say("Stop it with:                   custos dev down --dir %s", dir)
			return
		}
		c.StopAll(10 * time.Second)
		say("\nCluster stopped (its data stays in %s).", dir)
	}()
	if err := c.Up(bound(90*time.Second), say); err != nil {
		return err
	}
	if err := c.InitOfficers(bound(30 * time.Second)); err != nil {
		return err
	}
	op, err := c.Client(identity.RoleOperator)
	if err != nil {
		return err
	}
	defer op.Close()
	st, err := op.Cluster(bound(10 * time.Second))
	if err != nil {
		return err
	}
	say("Nodes talk raft over mutual TLS 1.3 with hybrid X25519+ML-KEM-768 key exchange;")
	say("only certificates from the cluster CA with role \"node\" get in. Leader: %s", st.Leader.ID)

	title("Officers: an M-of-N quorum ceremony")
	say("The operator initialised the cluster with three officers, alice, bob and carol, quorum %d:", st.Quorum)
	say("nothing sensitive happens without %d of them. alice proposes raising the quorum to 3,", st.Quorum)
	say("signing with her hybrid key (ECDSA P-256 + ML-DSA-65):")
	say("  $ custos officer propose quorum.set --m 3")
	var cli bytes.Buffer
	if err := runOfficerCmd(ctx, &cli, []string{"propose", "quorum.set", "--m", "3", "--env", c.OfficerEnv("alice")}); err != nil {
		return fmt.Errorf("officer propose: %w\n%s", err, cli.String())
	}
	alice, err := c.OfficerClient("alice")
	if err != nil {
		return err
	}
	defer alice.Close()
	cs, err := alice.Ceremonies(bound(10 * time.Second))
	if err != nil || len(cs) == 0 {
		return fmt.Errorf("listing ceremonies: %v", err)
	}
	prop := cs[len(cs)-1]
	say("  %s", prop.Description)
	say("  status: %s, %d approval(s)", prop.Status, len(prop.Approvals))
	say("bob reviews the same words and approves:")
	say("  $ custos officer approve %s", prop.ID)
	cli.Reset()
	if err := runOfficerCmd(ctx, &cli, []string{"approve", prop.ID, "--env", c.OfficerEnv("bob")}); err != nil {
		return fmt.Errorf("officer approve: %w\n%s", err, cli.String())
	}
	if prop, err = alice.Ceremony(bound(10*time.Second), prop.ID); err != nil {
		return err
	}
	if prop.Status != "executed" {
		return fmt.Errorf("ceremony %s is %s (%s), want executed", prop.ID, prop.Status, prop.Reason)
	}
	say("  status: %s at log index %d; proposal, both approvals and the execution are log entries.", prop.Status, prop.Closed)

	title("Record operations in the key-op log")
	say("Every key operation is an entry in an append-only Merkle log. The write-path probe")
	say("(\"canary\", operators only) appends an entry; the answer comes only after a raft quorum")
	say("committed it. Appending 5 through the cluster:")
	var last uint64
	for range 5 {
		if last, err = op.Canary(bound(10 * time.Second)); err != nil {
			return err
		}
	}
	say("  entries committed; the last is at log index %d", last)

	title("An auditor checks a signed checkpoint and an inclusion proof")
	aud, err := c.Client(identity.RoleAuditor)
	if err != nil {
		return err
	}
	defer aud.Close()
	keys, err := aud.NodeKeys(bound(10 * time.Second))
	if err != nil {
		return err
	}
	cp1, err := verifiedCheckpoint(bound(10*time.Second), aud, c.Name, keys, say)
	if err != nil {
		return err
	}
	if err := proveEntry(bound(10*time.Second), aud, cp1, last, say); err != nil {
		return err
	}

	title("Crash the leader (kill -9) while the log is in use")
	leader := st.Leader.ID
	if err := c.Kill(leader); err != nil {
		return err
	}
	killed := time.Now()
	say("%s killed.", leader)
	for {
		if _, err = op.Canary(bound(5 * time.Second)); err == nil {
			break
		}
		if time.Since(killed) > 60*time.Second {
			return fmt.Errorf("no new leader within 60s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, err = op.Cluster(bound(10 * time.Second))
	if err != nil {
		return err
	}
	say("%s took over; appends were acknowledged again after %v.", st.Leader.ID, time.Since(killed).Round(time.Millisecond))
	if err := c.Start(leader); err != nil {
		return err
	}
	if err := c.WaitMember(bound(60*time.Second), leader); err != nil {
		return err
	}
	say("%s restarted from its data directory and rejoined.", leader)

	title("The new leader's checkpoint extends the old one")
	cp2, err := verifiedCheckpoint(bound(10*time.Second), aud, c.Name, keys, say)
	if err != nil {
		return err
	}
	proof, err := aud.ConsistencyProof(bound(10*time.Second), cp1.Size, cp2.Size)
	if err != nil {
		return err
	}
	if err := ledger.VerifyConsistency(cp1, cp2, proof.Hashes); err != nil {
		return fmt.Errorf("consistency proof: %w", err)
	}
	say("Consistency proof %d -> %d verified: nothing acknowledged before the crash was rewritten.", cp1.Size, cp2.Size)
	fmt.Fprintln(w, "\nCluster demo complete.")
	return nil
}

// verifiedCheckpoint fetches the leader's checkpoint and verifies both of its
// signatures against the published node keys.
func verifiedCheckpoint(ctx context.Context, cl *client.Client, cluster string, keys []ledger.NodeKey, say func(string, ...any)) (ledger.Checkpoint, error) {
	note, err := cl.Checkpoint(ctx)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	cp, signer, err := ledger.VerifyCheckpoint(note, "custos/"+cluster, keys...)
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("checkpoint does not verify: %w", err)
	}
	say("Checkpoint: %d entries, root %x…, signed by %s", cp.Size, cp.Hash[:8], signer)
	say("  both signatures verified: ECDSA P-256 (key inside the node's HSM) and ML-DSA-65.")
	return cp, nil
}

// proveEntry fetches entry i and proves it is in checkpoint cp.
func proveEntry(ctx context.Context, cl *client.Client, cp ledger.Checkpoint, i uint64, say func(string, ...any)) error {
	entries, err := cl.Entries(ctx, i, 1)
	if err != nil {
		return err
	}
	if len(entries) != 1 {
		return errors.New("entry missing")
	}
	e, err := ledger.ParseEntry(entries[0])
	if err != nil {
		return err
	}
	p, err := cl.InclusionProof(ctx, i, cp.Size)
	if err != nil {
		return err
	}
	if err := ledger.VerifyInclusion(cp, i, entries[0], p.Hashes); err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	say("Entry %d (%s by %s, %s) is in the checkpoint: inclusion proof of %d hashes verified.",
		i, e.Type, e.Actor.Identity, e.Outcome, len(p.Hashes))
	return nil
}

package main

// The cluster part of the demo: three custosd processes, the key-op log, its
// signed checkpoints and proofs, and a leader crash.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/devcluster"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/wrapkey"
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

	title("Officers: genesis, then a KEK created by an M-of-N ceremony")
	say("Genesis is done: at init the operator named three officers, %s, quorum %d", strings.Join(devcluster.DemoOfficers, ", "), st.Quorum)
	say("(custos operator init; the cluster.init log entry records their key fingerprints). Nothing")
	say("sensitive happens without %d of them. alice proposes a KEK for backup agents, signing with her", st.Quorum)
	say("hybrid key (ECDSA P-256 + ML-DSA-65); her env file names her key and her client certificate:")
	regions := nodeRegions(c)
	proposeArgs := []string{"propose", "kek.create", "--kek", devcluster.DemoKEK, "--regions", regions, "--ttl", "5m"}
	say("  $ custos officer %s --env officers/alice.env", strings.Join(proposeArgs, " "))
	var cli bytes.Buffer
	if err := runOfficerCmd(ctx, &cli, append(proposeArgs, "--env", c.OfficerEnv("alice"))); err != nil {
		return fmt.Errorf("officer propose: %w\n%s", err, cli.String())
	}
	m := regexp.MustCompile(`Proposed ([0-9a-f]{32})`).FindStringSubmatch(cli.String())
	if m == nil {
		return fmt.Errorf("officer propose printed no proposal id:\n%s", cli.String())
	}
	id := m[1]
	printIndented(w, cli.String(), nil)
	say("bob reviews the same words and approves. The approval that completes the quorum executes it:")
	say("the leader deals the KEK 2-of-3 with Pedersen VSS and each node checks its share against the")
	say("commitments and seals it inside its own HSM:")
	say("  $ custos officer approve %s --env officers/bob.env", id)
	cli.Reset()
	if err := runOfficerCmd(ctx, &cli, []string{"approve", id, "--env", c.OfficerEnv("bob")}); err != nil {
		return fmt.Errorf("officer approve: %w\n%s", err, cli.String())
	}
	_, after, _ := strings.Cut(cli.String(), "Approved by")
	printIndented(w, "Approved by"+after, func(l string) bool {
		return l == "" || !(strings.HasPrefix(l, "Approved by") || strings.HasPrefix(l, "status ") || strings.HasPrefix(l, "approved ") || strings.HasPrefix(l, "log "))
	})
	alice, err := c.OfficerClient("alice")
	if err != nil {
		return err
	}
	defer alice.Close()
	prop, err := alice.Ceremony(bound(10*time.Second), id)
	if err != nil {
		return err
	}
	if prop.Status != "executed" {
		return fmt.Errorf("ceremony %s is %s (%s: %s), want executed", id, prop.Status, prop.Code, prop.Reason)
	}
	say("Proposal, both approvals and the execution are log entries. Anyone with a certificate of the")
	say("cluster reads the KEK; the CLI checks each node's signed statement about its share:")
	say("  $ custos kek show %s", devcluster.DemoKEK)
	cli.Reset()
	if err := runKEKCmd(ctx, &cli, []string{"show", devcluster.DemoKEK, "--env", agentEnv(c)}); err != nil {
		return fmt.Errorf("kek show: %w\n%s", err, cli.String())
	}
	if !strings.Contains(cli.String(), "statements verified:") {
		return fmt.Errorf("kek show did not verify the nodes' statements:\n%s", cli.String())
	}
	printIndented(w, cli.String(), func(l string) bool { return strings.HasPrefix(l, "policy JSON") })

	title("A backup agent wraps and unwraps a data key")
	agentDir := filepath.Join(dir, "agent")
	if err := os.MkdirAll(agentDir, 0o700); err != nil {
		return err
	}
	dek := make([]byte, 32)
	rand.Read(dek)
	dekFile, wrappedFile, outFile := filepath.Join(agentDir, "dek"), filepath.Join(agentDir, "dek.wrapped"), filepath.Join(agentDir, "dek.out")
	if err := os.WriteFile(dekFile, dek, 0o600); err != nil {
		return err
	}
	say("The agent (its client certificate, role agent in region %s, is the one %s/env names) has", devcluster.Regions[0], filepath.Base(dir))
	say("a fresh 32-byte data key in agent/dek. Wrapping uses the KEK's public key; the blob binds the")
	say("context, and the call is logged:")
	agentCLI := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		if err := ioCommands[args[0]](ctx, stdio{in: bytes.NewReader(nil), out: &out, err: &errOut}, append(args[1:], "--env", agentEnv(c))); err != nil {
			return fmt.Sprintf("custos %s: %v\n", args[0], err), err
		}
		return errOut.String(), nil
	}
	say("  $ custos wrap --kek %s --context dataset=payroll --in agent/dek --out agent/dek.wrapped", devcluster.DemoKEK)
	receipt, err := agentCLI("wrap", "--kek", devcluster.DemoKEK, "--context", "dataset=payroll", "--in", dekFile, "--out", wrappedFile)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, receipt)
	}
	printIndented(w, receipt, nil)
	blob, err := os.ReadFile(wrappedFile)
	if err != nil {
		return err
	}
	b, err := wrapkey.Parse(blob)
	if err != nil {
		return fmt.Errorf("the wrapped key does not parse: %w", err)
	}
	say("  agent/dek.wrapped: %d bytes, HPKE with X-Wing (X25519 + ML-KEM-768) to KEK %q v%d", len(blob), b.KEKID, b.KEKVersion)
	say("Unwrapping needs 2 of the 3 nodes: the serving node unseals its share in its HSM and asks a peer")
	say("for another, each checked against the commitments. The answer comes only after the entry is")
	say("committed by a raft quorum; its index is the receipt:")
	say("  $ custos unwrap --context dataset=payroll --in agent/dek.wrapped --out agent/dek.out")
	if receipt, err = agentCLI("unwrap", "--context", "dataset=payroll", "--in", wrappedFile, "--out", outFile); err != nil {
		return fmt.Errorf("%w\n%s", err, receipt)
	}
	printIndented(w, receipt, nil)
	unwrapEntry, err := receiptIndex(receipt)
	if err != nil {
		return err
	}
	got, err := os.ReadFile(outFile)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, dek) {
		return errors.New("the unwrapped data key differs from the original")
	}
	say("  Recovered data key matches the original: yes")
	say("The same blob under another context does not open, and the refusal is logged too:")
	say("  $ custos unwrap --context dataset=hr --in agent/dek.wrapped --out agent/dek.out")
	msg, err := agentCLI("unwrap", "--context", "dataset=hr", "--in", wrappedFile, "--out", outFile)
	if err == nil || !strings.Contains(msg, client.CodeUnwrapFailed) {
		return fmt.Errorf("unwrap under another context: %v, want %s:\n%s", err, client.CodeUnwrapFailed, msg)
	}
	printIndented(w, msg, nil)

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
	say("The agent's unwrap receipt too:")
	if err := proveEntry(bound(10*time.Second), aud, cp1, unwrapEntry, say); err != nil {
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
	say("With %s down, the two remaining nodes hold 2 of the 3 shares; the agent unwraps again:", leader)
	say("  $ custos unwrap --context dataset=payroll --in agent/dek.wrapped --out agent/dek.out")
	for {
		if receipt, err = agentCLI("unwrap", "--context", "dataset=payroll", "--in", wrappedFile, "--out", outFile); err == nil {
			break
		}
		if time.Since(killed) > 60*time.Second {
			return fmt.Errorf("unwrap with %s down: %w\n%s", leader, err, receipt)
		}
		time.Sleep(200 * time.Millisecond)
	}
	printIndented(w, receipt, nil)
	if got, err = os.ReadFile(outFile); err != nil || !bytes.Equal(got, dek) {
		return fmt.Errorf("unwrap with %s down: the data key differs (%v)", leader, err)
	}
	say("  Recovered data key matches the original: yes (2 of 3 node shares suffice)")
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

// agentEnv is the env file of the dev cluster's agent certificate.
func agentEnv(c *devcluster.Cluster) string { return filepath.Join(c.Dir, "env") }

// nodeRegions lists the cluster's nodes' regions, comma-separated.
func nodeRegions(c *devcluster.Cluster) string {
	var rs []string
	for _, n := range c.Nodes {
		rs = append(rs, n.Region)
	}
	return strings.Join(rs, ",")
}

var receiptRE = regexp.MustCompile(`receipt: log entry (\d+)`)

// receiptIndex reads the log index from a key operation's receipt line.
func receiptIndex(s string) (uint64, error) {
	m := receiptRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("no receipt in %q", s)
	}
	return strconv.ParseUint(m[1], 10, 64)
}

// printIndented prints text indented by two spaces, lines over 100
// characters folded at spaces, without the lines skip is true for (nil:
// every line) and without trailing blank lines.
func printIndented(w io.Writer, text string, skip func(line string) bool) {
	const width = 100
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for _, l := range lines {
		if skip != nil && skip(l) {
			continue
		}
		lead := len(l) - len(strings.TrimLeft(l, " "))
		for len(l) > width {
			cut := strings.LastIndexByte(l[:width], ' ')
			if cut <= lead {
				break
			}
			fmt.Fprintf(w, "  %s\n", l[:cut])
			l = strings.Repeat(" ", lead+2) + l[cut+1:]
		}
		fmt.Fprintf(w, "  %s\n", l)
	}
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

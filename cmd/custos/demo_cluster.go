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
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/custos-eu/custos/keysvc/errcode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	awstypes "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/custos-eu/custos/backup/agent"
	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/backup/policy"
	"github.com/custos-eu/custos/backup/s3/versitygw"
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
	say("only certificates from the cluster CA with role \"node\" get in, and each node's TLS key was made")
	say("inside its own HSM (custosd -csr; the CA signed the request): no node key is a file. Leader: %s", st.Leader.ID)

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
	if err == nil || !strings.Contains(msg, errcode.UnwrapFailed) {
		return fmt.Errorf("unwrap under another context: %v, want %s:\n%s", err, errcode.UnwrapFailed, msg)
	}
	printIndented(w, msg, nil)

	grabber := c.Nodes[0].ID
	say("A node cannot unwrap on its own. Playing a compromised %s, with its HSM key and certificate, ask", grabber)
	say("the other nodes over the peer channel for their shares, presenting the unwrap's entry %d (no client", unwrapEntry)
	say("request behind it) as the activation. Each peer checks the log itself, refuses and logs the refusal:")
	say("  $ custos dev grab-shares --as %s --kek %s --activation %d", grabber, devcluster.DemoKEK, unwrapEntry)
	var grab bytes.Buffer
	if err := devGrabShares(ctx, &grab, []string{"--dir", c.Dir, "--as", grabber, "--kek", devcluster.DemoKEK,
		"--activation", strconv.FormatUint(unwrapEntry, 10)}); err != nil {
		return fmt.Errorf("share grab: %w\n%s", err, grab.String())
	}
	printIndented(w, grab.String(), nil)
	say("  No share left a node: peers release only for a committed activation carrying a client's signed request.")

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
	if err := runBackupDemo(ctx, w, c, say, title, bound); err != nil {
		return err
	}
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

// demoS3 is the demo's versitygw, run by pid.
type demoS3 struct {
	endpoint, access, secret string
	dir, log                 string
	cmd                      *exec.Cmd
	done                     chan struct{}
}

// startDemoS3 starts versitygw (posix backend with versioning, so Object Lock
// works) on 127.0.0.1 under dir.
func startDemoS3(dir string) (*demoS3, error) {
	bin, err := versitygw.FindBinary()
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"iam", "versions", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &demoS3{
		endpoint: "http://" + addr,
		access:   "custos-demo-access",
		secret:   "custos-demo-secret-key-0123456789",
		dir:      dir,
		log:      filepath.Join(dir, "versitygw.log"),
		done:     make(chan struct{}),
	}
	logf, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", addr, "--access", s.access, "--secret", s.secret,
		"--region", versitygw.Region, "--iam-dir", filepath.Join(dir, "iam"),
		"posix", "--versioning-dir", filepath.Join(dir, "versions"), filepath.Join(dir, "data"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s.cmd = cmd
	go func() { cmd.Wait(); logf.Close(); close(s.done) }()
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case <-s.done:
			return nil, fmt.Errorf("versitygw exited during start-up; log %s", s.log)
		default:
		}
		if resp, err := hc.Get(s.endpoint + "/"); err == nil {
			resp.Body.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("versitygw not answering on %s after 30s; log %s", s.endpoint, s.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM to versitygw's pid, waits up to 10s, then SIGKILLs it
// and waits up to 5s more.
func (s *demoS3) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return
	case <-time.After(10 * time.Second):
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
}

func (s *demoS3) client() *awss3.Client {
	return awss3.New(awss3.Options{
		Region:       versitygw.Region,
		BaseEndpoint: aws.String(s.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.access, s.secret, ""),
	})
}

// countObjects counts the object versions in bucket.
func (s *demoS3) countObjects(ctx context.Context, bucket string) (int, error) {
	out, err := s.client().ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	if err != nil {
		return 0, err
	}
	return len(out.Versions), nil
}

// runBackupDemo backs a sample directory up to a local versitygw bucket
// named as off-region, restores it, drills it, and has the auditor export
// and verify the log.
func runBackupDemo(ctx context.Context, w io.Writer, c *devcluster.Cluster, say func(string, ...any), title func(string), bound func(time.Duration) context.Context) (err error) {
	dir := filepath.Join(c.Dir, "backup")
	title("Back up a directory to an off-region S3 bucket with Object Lock")
	gw, err := startDemoS3(filepath.Join(dir, "versitygw"))
	if err != nil {
		return err
	}
	defer func() {
		gw.stop()
		say("versitygw (pid %d) stopped.", gw.cmd.Process.Pid)
	}()
	const bucket = "custos-offsite"
	if _, err := gw.client().CreateBucket(bound(30*time.Second), &awss3.CreateBucketInput{
		Bucket: aws.String(bucket), ObjectLockEnabledForBucket: aws.Bool(true),
	}); err != nil {
		return fmt.Errorf("create bucket %q with Object Lock: %w (log %s)", bucket, err, gw.log)
	}
	say("versitygw (an S3-compatible server, pid %d) serves %s; bucket %q has Object Lock enabled.", gw.cmd.Process.Pid, gw.endpoint, bucket)
	say("The policy calls it a store in the US, under US law.")
	for k, v := range map[string]string{envS3AccessKey: gw.access, envS3SecretKey: gw.secret, envS3Region: versitygw.Region} {
		old, had := os.LookupEnv(k)
		os.Setenv(k, v)
		defer func() {
			if had {
				os.Setenv(k, old)
			} else {
				os.Unsetenv(k)
			}
		}()
	}

	src, hr := filepath.Join(dir, "payroll"), filepath.Join(dir, "hr")
	if err := writeSampleTree(src, hr); err != nil {
		return err
	}
	pol := filepath.Join(dir, "agent.toml")
	policyText := fmt.Sprintf(`region = "DE"

[[dataset]]
name           = "payroll"
paths          = [%q]
classification = "confidential"
residency      = "encrypted-off-region-allowed"
kek            = %q
retention      = "1h"
rpo            = "24h"
rto            = "5m"

[[dataset]]
name           = "hr"
paths          = [%q]
classification = "restricted"
residency      = "eu-only"
kek            = %q
retention      = "1h"
rpo            = "24h"
rto            = "5m"

[[target]]
name         = "offsite-us"
kind         = "s3"
region       = "US"
jurisdiction = "US"
bucket       = %q
endpoint     = %q
legal_hold   = false
[target.object_lock]
mode      = "GOVERNANCE"
retention = "10m"
`, src, devcluster.DemoKEK, hr, devcluster.DemoKEK, bucket, gw.endpoint)
	if err := os.WriteFile(pol, []byte(policyText), 0o600); err != nil {
		return err
	}
	say("The agent's policy, backup/agent.toml (credentials come from $%s and $%s):", envS3AccessKey, envS3SecretKey)
	printIndented(w, policyText, func(l string) bool {
		return l == "" || strings.HasPrefix(l, "paths") || strings.HasPrefix(l, "endpoint")
	})

	backup := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := runBackupCmd(ctx, stdio{in: bytes.NewReader(nil), out: &out, err: &errOut}, append(args, "--policy", pol))
		if err != nil {
			return out.String() + errOut.String() + "error: " + err.Error() + "\n", err
		}
		return out.String() + errOut.String(), nil
	}
	say("hr is eu-only: the policy refuses to send it to the US target, before the cluster is contacted:")
	say("  $ custos backup run --policy backup/agent.toml --dataset hr --target offsite-us")
	out, err := backup("run", "--dataset", "hr", "--target", "offsite-us", "--env", agentEnv(c))
	if err == nil || !strings.Contains(err.Error(), "refused by policy") {
		return fmt.Errorf("backup of the eu-only dataset to a US target: %v, want a refusal:\n%s", err, out)
	}
	printIndented(w, out, nil)
	n, err := gw.countObjects(bound(10*time.Second), bucket)
	if err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("the refused backup left %d objects in the bucket", n)
	}
	say("  The bucket holds %d objects: nothing was sent.", n)

	say("payroll (backup/payroll: a few files and a symlink) may leave the EU as ciphertext. Its age file key is")
	say("wrapped by the cluster with KEK %q; the transfer is attested in the key-op log:", devcluster.DemoKEK)
	say("  $ custos backup run --policy backup/agent.toml --dataset payroll")
	if out, err = backup("run", "--dataset", "payroll", "--env", agentEnv(c), "--progress", "none"); err != nil {
		return fmt.Errorf("backup run: %w\n%s", err, out)
	}
	printIndented(w, out, func(l string) bool { return strings.HasPrefix(l, "sha256") || strings.HasPrefix(l, "policy") })
	m := regexp.MustCompile(`(?m)^archive +(\S+)$`).FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("backup run printed no archive id:\n%s", out)
	}
	id := m[1]
	say("  $ custos backup list --policy backup/agent.toml")
	if out, err = backup("list"); err != nil {
		return fmt.Errorf("backup list: %w\n%s", err, out)
	}
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		say("  %s", l)
	}

	title("Restore the archive, and drill it against the RTO")
	to := filepath.Join(dir, "restored")
	say("  $ custos backup restore %s --to backup/restored --policy backup/agent.toml", id)
	if out, err = backup("restore", id, "--to", to, "--env", agentEnv(c), "--progress", "none"); err != nil {
		return fmt.Errorf("backup restore: %w\n%s", err, out)
	}
	printIndented(w, out, func(l string) bool { return strings.HasPrefix(l, "restored") })
	if err := demoSameTree(src, filepath.Join(to, src)); err != nil {
		return fmt.Errorf("the restored tree differs from the source: %w", err)
	}
	say("  Restored under backup/restored at the source's full path, the tree is identical to backup/payroll:")
	say("  every file's contents, mode and mtime, and the symlink.")
	say("A drill restores into a temporary directory, times it and records the result in the log:")
	say("  $ custos backup drill %s --policy backup/agent.toml", id)
	if out, err = backup("drill", id, "--env", agentEnv(c), "--progress", "none"); err != nil {
		return fmt.Errorf("backup drill: %w\n%s", err, out)
	}
	printIndented(w, out, nil)
	if err := plantedArchiveDemo(ctx, w, c, gw, bucket, pol, id, dir, say, backup); err != nil {
		return err
	}
	say("The agent's cron job checks the RPO and the RTO; a miss exits non-zero. The cluster keeps each")
	say("dataset's newest drill, which the agent's own certificate may read:")
	say("  $ custos backup status --dataset payroll --policy backup/agent.toml")
	if out, err = backup("status", "--dataset", "payroll", "--env", agentEnv(c)); err != nil {
		return fmt.Errorf("backup status: %w\n%s", err, out)
	}
	printIndented(w, out, nil)

	title("The auditor exports the log and verifies it offline")
	audit := func(args ...string) (string, error) {
		// node-1, which the env file names, restarted after the crash: it
		// may serve a checkpoint a moment before its own log has caught
		// up with it, so a read beyond its log is retried for a while.
		for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
			var out, errOut bytes.Buffer
			err := runAuditCmd(ctx, stdio{in: bytes.NewReader(nil), out: &out, err: &errOut}, args)
			if err == nil {
				return out.String() + errOut.String(), nil
			}
			if !strings.Contains(err.Error(), "beyond this node's log") || time.Since(start) > 15*time.Second {
				return out.String() + errOut.String() + "error: " + err.Error() + "\n", err
			}
		}
	}
	trust, pack := filepath.Join(dir, "trust.json"), filepath.Join(dir, "evidence.pack")
	say("The auditor (own certificate, role auditor) pins a verified checkpoint and the genesis:")
	say("  $ custos audit checkpoint --out backup/trust.json")
	if out, err = audit("checkpoint", "--out", trust, "--env", agentEnv(c)); err != nil {
		return fmt.Errorf("audit checkpoint: %w\n%s", err, out)
	}
	printIndented(w, out, func(l string) bool {
		return strings.HasPrefix(l, "Next:") || strings.HasPrefix(l, "later packs:") || strings.HasPrefix(l, "The node keys")
	})
	say("  $ custos audit export --out backup/evidence.pack")
	if out, err = audit("export", "--out", pack, "--env", agentEnv(c)); err != nil {
		return fmt.Errorf("audit export: %w\n%s", err, out)
	}
	printIndented(w, out, func(l string) bool { return strings.HasPrefix(l, "Verify it offline") })
	say("  $ custos audit verify backup/evidence.pack --trust backup/trust.json")
	if out, err = audit("verify", pack, "--trust", trust); err != nil {
		return fmt.Errorf("audit verify: %w\n%s", err, out)
	}
	printIndented(w, out, nil)
	aud, err := c.Client(identity.RoleAuditor)
	if err != nil {
		return err
	}
	defer aud.Close()
	m = regexp.MustCompile(`entries +\d+ to (\d+)`).FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("audit verify printed no entry range:\n%s", out)
	}
	end, _ := strconv.ParseUint(m[1], 10, 64)
	var counts map[string]int
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if counts, err = entryTypes(bound(10*time.Second), aud, end); err == nil {
			break
		}
		if time.Since(start) > 15*time.Second { // a restarted node catches up within this
			return err
		}
	}
	say("Among the verified entries: %d backup.transfer (the archive and index stored on offsite-us)", counts["backup.transfer"])
	say("and %d backup.drill (result ok), next to %d kek.wrap and %d kek.unwrap.", counts["backup.drill"], counts["kek.wrap"], counts["kek.unwrap"])
	if counts["backup.transfer"] == 0 || counts["backup.drill"] == 0 {
		return fmt.Errorf("the log lacks the backup entries: %v", counts)
	}
	return nil
}

// plantedArchiveDemo plays a storage-side attacker: it replaces archive
// id on the target with one built from the KEK's public key alone (any
// role may read it), with a manifest naming the real transfer entry, and
// shows the restore refusing it before reading a byte.
func plantedArchiveDemo(ctx context.Context, w io.Writer, c *devcluster.Cluster, gw *demoS3, bucket, pol, id, dir string, say func(string, ...any), backup func(...string) (string, error)) error {
	say("A storage-side attacker, with write access to the bucket and nothing else, replaces the archive by")
	say("one built with the KEK's public key alone (its files: a 'payroll.csv' and a setuid-root script), and")
	say("its manifest by one that names the real transfer entry:")
	evil := filepath.Join(dir, "evil")
	if err := os.MkdirAll(evil, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(evil, "payroll.csv"), []byte("mallory,1000000\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(evil, "fix-permissions"), []byte("#!/bin/sh\n"), 0o4755); err != nil {
		return err
	}
	p, err := policy.Load(pol)
	if err != nil {
		return err
	}
	ag, err := agent.New(agent.Config{Policy: p, Open: openTarget})
	if err != nil {
		return err
	}
	lt, err := ag.List(ctx, []string{"offsite-us"}, "payroll")
	if err != nil {
		return err
	}
	var real *archive.Manifest
	for _, l := range lt {
		if l.Manifest.ArchiveID == id {
			real = l.Manifest
		}
	}
	if real == nil {
		return fmt.Errorf("archive %s not listed", id)
	}
	aud, err := c.Client(identity.RoleAuditor)
	if err != nil {
		return err
	}
	defer aud.Close()
	pk, err := aud.PublicKey(ctx, real.KEK.ID, real.KEK.Version)
	if err != nil {
		return err
	}
	m, arc, idx, err := forgeArchive(ctx, pk.PublicKey, real, []string{evil})
	if err != nil {
		return err
	}
	m.Receipt = real.Receipt
	mb, err := m.Marshal()
	if err != nil {
		return err
	}
	an, in, mn := agent.ObjectNames(m.Dataset, m.ArchiveID)
	for _, o := range []struct {
		name string
		b    []byte
	}{{an, arc}, {in, idx}, {mn, mb}} {
		// Straight to the bucket, as the attacker would: a new version
		// of each object (the agent's target never overwrites).
		if _, err := gw.client().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.name),
			Body: bytes.NewReader(o.b), ChecksumAlgorithm: awstypes.ChecksumAlgorithmSha256}); err != nil {
			return fmt.Errorf("planting %s: %w", o.name, err)
		}
	}
	to := filepath.Join(dir, "planted")
	say("  $ custos backup restore %s --to backup/planted --policy backup/agent.toml", id)
	out, err := backup("restore", id, "--to", to, "--env", agentEnv(c), "--progress", "none")
	if err == nil || !strings.Contains(err.Error(), "transfer_mismatch") {
		return fmt.Errorf("restore of a planted archive: %v, want transfer_mismatch:\n%s", err, out)
	}
	printIndented(w, out, nil)
	if ents, _ := os.ReadDir(to); len(ents) != 0 {
		return fmt.Errorf("the refused restore wrote %d entries", len(ents))
	}
	say("  Refused before a byte of it was read: backup/planted is empty. The log, not the manifest beside")
	say("  the archive, says what was uploaded.")
	return nil
}

// forgeArchive builds what a storage-side attacker can: an archive of
// sources under real's id, dataset and KEK version, wrapped with the
// version's public key pub, and returns its manifest (no receipt) and
// archive and index objects. The demo and the tests use it.
func forgeArchive(ctx context.Context, pub []byte, real *archive.Manifest, sources []string) (*archive.Manifest, []byte, []byte, error) {
	rcp, err := custosage.NewOfflineRecipient(real.KEK.ID, real.KEK.Version, pub, archive.WrapContext(real.Dataset, real.Classification, real.ArchiveID))
	if err != nil {
		return nil, nil, nil, err
	}
	var arc, idx bytes.Buffer
	m, err := archive.Create(ctx, sources, &arc, &idx, archive.CreateOptions{ArchiveID: real.ArchiveID, Dataset: real.Dataset,
		Classification: real.Classification, Recipient: rcp})
	if err != nil {
		return nil, nil, nil, err
	}
	return m, arc.Bytes(), idx.Bytes(), nil
}

// entryTypes counts the log's entries before end by type.
func entryTypes(ctx context.Context, cl *client.Client, end uint64) (map[string]int, error) {
	counts := map[string]int{}
	for i := uint64(0); i < end; {
		entries, err := cl.Entries(ctx, i, 256)
		if err != nil {
			return nil, err
		}
		if len(entries) == 0 {
			return counts, nil
		}
		for _, raw := range entries[:min(uint64(len(entries)), end-i)] {
			e, err := ledger.ParseEntry(raw)
			if err != nil {
				return nil, err
			}
			counts[string(e.Type)]++
		}
		i += uint64(len(entries))
	}
	return counts, nil
}

// writeSampleTree writes the demo's payroll directory (a few files and a
// symlink) and a small hr directory.
func writeSampleTree(src, hr string) error {
	files := map[string]string{
		filepath.Join(src, "README.txt"):        "Payroll exports, one CSV per month.\n",
		filepath.Join(src, "2026/bonus/q1.csv"): "employee,bonus\nE0002,1200.00\n",
		filepath.Join(hr, "staff.csv"):          "employee,name\nE0001,Ada\nE0002,Grace\n",
	}
	for month := 1; month <= 3; month++ {
		var b strings.Builder
		b.WriteString("employee,gross,net\n")
		for e := 1; e <= 20000; e++ {
			gross := 3000 + (e*37+month*11)%4000
			fmt.Fprintf(&b, "E%05d,%d.00,%d.%02d\n", e, gross, gross*7/10, (e*month)%100)
		}
		files[filepath.Join(src, fmt.Sprintf("2026/%02d.csv", month))] = b.String()
	}
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			return err
		}
	}
	return os.Symlink("2026/03.csv", filepath.Join(src, "latest.csv"))
}

// demoSameTree compares two trees: names, types, modes, mtimes, contents and
// link targets.
func demoSameTree(a, b string) error {
	seen := map[string]bool{}
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		seen[rel] = true
		q := filepath.Join(b, rel)
		ai, err := os.Lstat(p)
		if err != nil {
			return err
		}
		bi, err := os.Lstat(q)
		if err != nil {
			return err
		}
		if rel != "." && ai.Mode() != bi.Mode() { // the roots' own modes may differ
			return fmt.Errorf("%s: mode %v, restored %v", rel, ai.Mode(), bi.Mode())
		}
		switch {
		case ai.Mode()&fs.ModeSymlink != 0:
			at, _ := os.Readlink(p)
			bt, _ := os.Readlink(q)
			if at != bt {
				return fmt.Errorf("%s: link to %q, restored %q", rel, at, bt)
			}
		case ai.Mode().IsRegular():
			if !ai.ModTime().Equal(bi.ModTime()) {
				return fmt.Errorf("%s: mtime %v, restored %v", rel, ai.ModTime(), bi.ModTime())
			}
			x, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			y, err := os.ReadFile(q)
			if err != nil {
				return err
			}
			if !bytes.Equal(x, y) {
				return fmt.Errorf("%s: contents differ", rel)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return filepath.WalkDir(b, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(b, p); !seen[rel] {
			return fmt.Errorf("%s: restored but not in the source", rel)
		}
		return nil
	})
}

package main

// `custos officer propose|approve|list|show` and `custos operator init`:
// ceremonies through the API, with the officer's client certificate (the
// API flags) and the officer's key file (--officer-key, signing).

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/officer"
)

// Variables of an officer's env file (DIR/officers/NAME.env of `custos dev up`).
const (
	envOfficerKey        = "CUSTOS_OFFICER_KEY"             // the officer's key file
	envOfficerPassphrase = "CUSTOS_OFFICER_PASSPHRASE_FILE" // its passphrase file (development only)
)

// lookup returns variable name from the --env file, else the environment.
func (f *apiFlags) lookup(name string) (string, error) {
	if f.env != "" {
		path := f.env
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			path = filepath.Join(path, "env")
		}
		vars, err := client.ReadEnvFile(path)
		if err != nil {
			return "", err
		}
		if v, ok := vars[name]; ok {
			return v, nil
		}
	}
	return os.Getenv(name), nil
}

// officerFlags are the flags of every ceremony command.
type officerFlags struct {
	api *apiFlags
	pf  *passphraseFlags
	key string
}

func addOfficerFlags(fs *flag.FlagSet, signs bool) *officerFlags {
	of := &officerFlags{api: addAPIFlags(fs)}
	if signs {
		fs.StringVar(&of.key, "officer-key", "", "your officer key file, NAME.key (default $"+envOfficerKey+", also read from --env)")
		of.pf = addPassphraseFlags(fs)
	}
	return of
}

// signer opens the officer's key file.
func (of *officerFlags) signer() (*officer.Signer, error) {
	key := of.key
	if key == "" {
		v, err := of.api.lookup(envOfficerKey)
		if err != nil {
			return nil, err
		}
		key = v
	}
	if key == "" {
		return nil, usagef("--officer-key FILE (or $" + envOfficerKey + ") is required to sign")
	}
	if of.pf.file == "" && of.pf.env == "" {
		v, err := of.api.lookup(envOfficerPassphrase)
		if err != nil {
			return nil, err
		}
		of.pf.file = v
	}
	return loadOfficerKey(key, of.pf)
}

// parseWithArg parses args that carry one positional argument (an
// operation or a proposal id), before or after the flags.
func parseWithArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && (n == "passphrase" || n == "password" || n == "pass") {
			// Name the flag only: its value may be the passphrase.
			return "", usagef("--%s: a passphrase is never taken as a flag value; use --passphrase-file FILE, --passphrase-env NAME, or type it when asked", n)
		}
	}
	var pos string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	if pos == "" && fs.NArg() > 0 {
		pos = fs.Arg(0)
		if err := parseFlags(fs, fs.Args()[1:]); err != nil {
			return "", err
		}
	}
	if fs.NArg() > 0 {
		return "", usagef("unexpected arguments %q", fs.Args())
	}
	if pos == "" {
		return "", usagef("%s is required", what)
	}
	return pos, nil
}

func runOfficerPropose(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("officer propose", flag.ContinueOnError)
	of := addOfficerFlags(fs, true)
	expires := fs.Duration("expires", 24*time.Hour, "how long the proposal stays open (at most 720h)")
	m := fs.Int("m", 0, "quorum.set: the new quorum M")
	id := fs.String("id", "", "officer.remove, node.remove: the officer or node id")
	bundle := fs.String("bundle", "", "officer.add: the new officer's NAME.pub file")
	regions := fs.String("regions", "", "regions.set: the allowed regions, comma-separated EU/EEA codes; kek.create, kek.policy: the regions wrap and unwrap are allowed from (default: the cluster's allowed regions)")
	node := fs.String("node", "", "node.add: a JSON file with the node's id, region, raft_addr, api_addr and keys")
	var rf revokeFlags
	fs.StringVar(&rf.fingerprint, "fingerprint", "", "identity.revoke: the certificate to revoke, sha256:HEX (as the log's cert_fingerprint shows it)")
	fs.StringVar(&rf.identity, "identity", "", "identity.revoke: revoke every certificate of ROLE/NAME (or an identity URI custos://CLUSTER/ROLE/NAME?region=XX), whatever its region")
	kf := addKEKFlags(fs, regions)
	format := addFormatFlag(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), opUsage)
		fs.PrintDefaults()
	}
	op, err := parseWithArg(fs, args, "the operation ("+strings.Join(operationNames(), ", ")+")")
	if err != nil {
		return err
	}
	kf.set = setFlags(fs)
	if err := checkOpFlags(ceremony.Operation(op), kf.set); err != nil {
		return err
	}
	var ps ceremony.Params
	kekOp := ceremony.Operation(op).IsKEK()
	switch {
	case kekOp:
		err = kf.check(ceremony.Operation(op))
	case ceremony.Operation(op) == ceremony.OpIdentityRevoke:
		rf.reason = kf.reason
		ps, err = rf.params()
	default:
		ps, err = proposeParams(ceremony.Operation(op), *m, *id, *bundle, *regions, *node)
	}
	if err != nil {
		return err
	}
	cl, err := of.api.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	st, err := cl.Cluster(ctx)
	if err != nil {
		return err
	}
	if !st.Initialized {
		return errors.New("the cluster has no officers yet: an operator must run custos operator init first")
	}
	if rf.cluster != "" && rf.cluster != st.Cluster {
		return fmt.Errorf("--identity %s names cluster %q, but this cluster is %q", rf.identity, rf.cluster, st.Cluster)
	}
	if kekOp {
		if ps, err = kf.params(ctx, cl, st, ceremony.Operation(op)); err != nil {
			return err
		}
	}
	s, err := of.signer()
	if err != nil {
		return err
	}
	defer s.Close()
	// escrow.recover: the proposer's opened escrow share goes with the proposal.
	var share []byte
	if er, ok := ps.(ceremony.EscrowRecover); ok {
		var note string
		if share, note, err = openEscrowShare(ctx, cl, er.KEKID, er.Version, s); err != nil {
			return err
		}
		defer clear(share)
		fmt.Fprintf(people(stdout, format), "%s\n\n", note)
	}
	pid, err := ceremony.NewID(rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	p := ceremony.Proposal{Cluster: st.Cluster, ID: pid, Params: ps, Proposer: s.Public().Name(),
		Created: now, Expires: now.Add(*expires), StateVersion: st.StateVersion}
	b, err := p.Marshal()
	if err != nil {
		return err
	}
	sig, err := s.Sign(p.Digest())
	if err != nil {
		return err
	}
	c, err := cl.Propose(ctx, client.ProposeRequest{Proposal: string(b), Signature: string(sig.Marshal()), EscrowShare: share})
	clear(share)
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Code == string(ceremony.CodeSuperseded) {
		return fmt.Errorf("%w\n(the cluster state changed while you proposed, or the node that answered was behind: propose again)", err)
	}
	if err != nil {
		return err
	}
	if format.json {
		return printJSON(stdout, newCeremonyJSON(c, st))
	}
	fmt.Fprintf(stdout, "Proposed %s (your signature counts as your approval).\n\n", c.ID)
	printCeremony(stdout, c, st.Quorum, st.StateVersion)
	if c.Status == "pending" {
		fmt.Fprintf(stdout, "\nOther officers approve it with: custos officer approve %s\n", c.ID)
	}
	return nil
}

// operationNames returns every operation's name, in the order of opUsage.
func operationNames() []string {
	return []string{"officer.add", "officer.remove", "quorum.set", "regions.set", "node.add", "node.remove",
		"kek.create", "kek.policy", "kek.rotate", "kek.disable", "kek.enable", "kek.destroy",
		"legal_hold.set", "legal_hold.release", "escrow.recover", "identity.revoke"}
}

// revokeFlags are the flags of identity.revoke.
type revokeFlags struct {
	fingerprint, identity, reason string
	cluster                       string // of an --identity URI
}

// params builds identity.revoke's parameters: --fingerprint or
// --identity (ROLE/NAME, or an identity URI whose region is dropped: a
// revocation covers every region), and --reason.
func (rf *revokeFlags) params() (ceremony.Params, error) {
	const op = ceremony.OpIdentityRevoke
	switch {
	case rf.fingerprint == "" && rf.identity == "":
		return nil, usagef("%s needs --fingerprint sha256:HEX or --identity ROLE/NAME", op)
	case rf.fingerprint != "" && rf.identity != "":
		return nil, usagef("%s: give --fingerprint or --identity, not both", op)
	case rf.reason == "":
		return nil, usagef("%s needs --reason TEXT", op)
	}
	who := rf.identity
	if strings.HasPrefix(who, identity.Scheme+"://") {
		id, err := identity.ParseURI(who)
		if err != nil {
			return nil, usagef("--identity: %w", err)
		}
		who, rf.cluster = string(id.Role)+"/"+id.Name, id.Cluster
	}
	ps := ceremony.IdentityRevoke{Fingerprint: strings.ToLower(rf.fingerprint), Identity: who, Reason: rf.reason}
	if err := ps.Validate(); err != nil {
		return nil, usagef("%s: %w", op, err)
	}
	return ps, nil
}

// proposeParams builds the parameters of op from the flags (every
// operation but the KEK ones, which kekFlags builds).
func proposeParams(op ceremony.Operation, m int, id, bundle, regions, node string) (ceremony.Params, error) {
	need := func(ok bool, flag string) error {
		if !ok {
			return usagef("%s needs %s", op, flag)
		}
		return nil
	}
	var ps ceremony.Params
	switch op {
	case ceremony.OpQuorumSet:
		if err := need(m != 0, "--m N"); err != nil {
			return nil, err
		}
		ps = ceremony.QuorumSet{M: m}
	case ceremony.OpOfficerRemove:
		if err := need(id != "", "--id OFFICER"); err != nil {
			return nil, err
		}
		ps = ceremony.OfficerRemove{ID: id}
	case ceremony.OpNodeRemove:
		if err := need(id != "", "--id NODE"); err != nil {
			return nil, err
		}
		ps = ceremony.NodeRemove{ID: id}
	case ceremony.OpOfficerAdd:
		if err := need(bundle != "", "--bundle NAME.pub"); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(bundle)
		if err != nil {
			return nil, err
		}
		pk, err := officer.ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", bundle, err)
		}
		ps = ceremony.OfficerAdd{ID: pk.Name(), Bundle: string(pk.Marshal()), Fingerprint: pk.Fingerprint()}
	case ceremony.OpRegionsSet:
		if err := need(regions != "", "--regions FR,DE,…"); err != nil {
			return nil, err
		}
		rs := strings.Split(regions, ",")
		for i := range rs {
			rs[i] = strings.TrimSpace(rs[i])
		}
		slices.Sort(rs)
		ps = ceremony.RegionsSet{Regions: rs}
	case ceremony.OpNodeAdd:
		if err := need(node != "", "--node FILE"); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(node)
		if err != nil {
			return nil, err
		}
		var info client.NodeInfo
		if err := json.Unmarshal(b, &info); err != nil {
			return nil, fmt.Errorf("%s: %w", node, err)
		}
		ps = ceremony.NodeAdd{ID: info.ID, Region: info.Region, RaftAddr: info.RaftAddr, APIAddr: info.APIAddr, Keys: info.Keys, KEM: info.KEM, Cert: info.Cert}
	default:
		return nil, usagef("unknown operation %q: the operations are %s (custos officer propose -h lists their flags)", op, strings.Join(operationNames(), ", "))
	}
	if err := ps.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return ps, nil
}

func runOfficerApprove(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("officer approve", flag.ContinueOnError)
	of := addOfficerFlags(fs, true)
	format := addFormatFlag(fs)
	id, err := parseWithArg(fs, args, "the proposal id")
	if err != nil {
		return err
	}
	cl, err := of.api.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	c, err := cl.Ceremony(ctx, id)
	if err != nil {
		return err
	}
	// Sign the bytes as fetched, after checking they are a proposal with
	// that id: the description printed is of exactly what is signed.
	p, err := ceremony.ParseProposal([]byte(c.Proposal))
	if err != nil {
		return fmt.Errorf("the node sent a proposal that does not parse: %w", err)
	}
	if p.ID != id {
		return fmt.Errorf("the node sent proposal %s for %s", p.ID, id)
	}
	st, err := cl.Cluster(ctx)
	if err != nil {
		return err
	}
	review := people(stdout, format)
	fmt.Fprintf(review, "You are approving:\n\n%s\n\n", ceremony.Describe(p, st.Quorum))
	fmt.Fprintf(review, "Check that this is what you were asked to approve; your passphrase signs it.\n")
	if c.Status != "pending" {
		return fmt.Errorf("proposal %s is %s; there is nothing to approve", id, c.Status)
	}
	s, err := of.signer()
	if err != nil {
		return err
	}
	defer s.Close()
	sig, err := s.Sign(p.Digest())
	if err != nil {
		return err
	}
	// escrow.recover: the approver's opened escrow share goes with the approval.
	var share []byte
	if er, ok := p.Params.(ceremony.EscrowRecover); ok {
		var note string
		if share, note, err = openEscrowShare(ctx, cl, er.KEKID, er.Version, s); err != nil {
			return err
		}
		defer clear(share)
		fmt.Fprintf(review, "%s\n", note)
	}
	c, err = cl.Approve(ctx, id, client.ApproveRequest{Officer: s.Public().Name(), Signature: string(sig.Marshal()), EscrowShare: share})
	clear(share)
	if err != nil && outcomeUnknown(err) {
		// The approval may have committed while its answer was lost (the
		// leader failed): the ceremony says.
		rc, found := approvalRecorded(ctx, cl, id, s.Public().Name())
		if !found {
			return fmt.Errorf("%w\nthe approval is not recorded in ceremony %s (checked after the error): approve again", err, id)
		}
		fmt.Fprintf(review, "The answer was lost (%v), but the ceremony records the approval by %s.\n\n", err, s.Public().Name())
		c, err = rc, nil
	}
	if err != nil {
		return err
	}
	if format.json {
		return printJSON(stdout, newCeremonyJSON(c, st))
	}
	fmt.Fprintf(stdout, "Approved by %s.\n\n", s.Public().Name())
	printCeremony(stdout, c, st.Quorum, st.StateVersion)
	return nil
}

// outcomeUnknown reports whether a request's error leaves its outcome
// unknown: no answer at all (the connection broke), or no_quorum.
func outcomeUnknown(err error) bool {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Code == client.CodeNoQuorum
	}
	return !errors.Is(err, context.Canceled)
}

// approvalRecorded reads ceremony id, for up to 20 s while the cluster
// elects a leader, and reports whether officer's approval is in it.
func approvalRecorded(ctx context.Context, cl *client.Client, id, officer string) (client.Ceremony, bool) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		c, err := cl.Ceremony(ctx, id)
		if err == nil {
			for _, a := range c.Approvals {
				if a.Officer == officer {
					return c, true
				}
			}
			return c, false
		}
		select {
		case <-ctx.Done():
			return client.Ceremony{}, false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func runOfficerList(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("officer list", flag.ContinueOnError)
	of := addOfficerFlags(fs, false)
	format := addFormatFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	cl, err := of.api.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	list, err := cl.Ceremonies(ctx)
	if err != nil {
		return err
	}
	if format.json {
		st, err := cl.Cluster(ctx)
		if err != nil {
			return err
		}
		out := struct {
			Proposals []ceremonyJSON `json:"proposals"`
		}{Proposals: []ceremonyJSON{}}
		for _, c := range list {
			out.Proposals = append(out.Proposals, newCeremonyJSON(c, st))
		}
		return printJSON(stdout, out)
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no proposals")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOPERATION\tPROPOSER\tSTATUS\tAPPROVALS")
	st, err := cl.Cluster(ctx)
	if err != nil {
		return err
	}
	for _, c := range list {
		status := c.Status
		if c.Code != "" {
			status += " (" + c.Code + ")"
		}
		if why := stale(c, st.StateVersion, time.Now()); why != "" {
			status += " (" + why + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", c.ID, c.Operation, c.Proposer, status, len(c.Approvals))
	}
	return tw.Flush()
}

func runOfficerShow(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("officer show", flag.ContinueOnError)
	of := addOfficerFlags(fs, false)
	format := addFormatFlag(fs)
	id, err := parseWithArg(fs, args, "the proposal id")
	if err != nil {
		return err
	}
	cl, err := of.api.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	c, err := cl.Ceremony(ctx, id)
	if err != nil {
		return err
	}
	st, err := cl.Cluster(ctx)
	if err != nil {
		return err
	}
	if format.json {
		return printJSON(stdout, newCeremonyJSON(c, st))
	}
	printCeremony(stdout, c, st.Quorum, st.StateVersion)
	return nil
}

// ceremonyJSON is a proposal as officer propose, approve, list and show
// print it with --format json: the API's record, the quorum it needs and,
// for a pending one that can no longer execute, why (superseded, expired).
type ceremonyJSON struct {
	client.Ceremony
	Quorum int    `json:"quorum"`
	Stale  string `json:"stale,omitempty"`
}

func newCeremonyJSON(c client.Ceremony, st client.Status) ceremonyJSON {
	if c.Approvals == nil {
		c.Approvals = []client.Approval{}
	}
	return ceremonyJSON{Ceremony: c, Quorum: st.Quorum, Stale: stale(c, st.StateVersion, time.Now())}
}

// people is where a command writes text for people: stdout, or stderr
// when stdout carries JSON.
func people(stdout io.Writer, f *outputFormat) io.Writer {
	if f.json {
		return os.Stderr
	}
	return stdout
}

// stale says why a pending proposal can no longer execute (the cluster
// closes it as refused at the next approval attempt), or "".
func stale(c client.Ceremony, stateVersion uint64, now time.Time) string {
	if c.Status != "pending" {
		return ""
	}
	p, err := ceremony.ParseProposal([]byte(c.Proposal))
	switch {
	case err != nil:
		return ""
	case p.StateVersion != stateVersion:
		return "superseded"
	case !now.Before(p.Expires):
		return "expired"
	}
	return ""
}

// printCeremony prints a ceremony for an officer: what it does, in words,
// then where it stands.
func printCeremony(w io.Writer, c client.Ceremony, quorum int, stateVersion uint64) {
	fmt.Fprintf(w, "%s\n\n", c.Description)
	status := c.Status
	switch {
	case c.Status == "pending":
		status = fmt.Sprintf("pending: %d of %d approvals", len(c.Approvals), quorum)
	case c.Code != "":
		status = fmt.Sprintf("%s (%s): %s", c.Status, c.Code, c.Reason)
	}
	if why := stale(c, stateVersion, time.Now()); why != "" {
		status += " — " + why + ": it can no longer execute; propose it again if still wanted"
	}
	fmt.Fprintf(w, "status     %s\n", status)
	for _, a := range c.Approvals {
		fmt.Fprintf(w, "approved   by %s (log entry %d)\n", a.Officer, a.Entry)
	}
	fmt.Fprintf(w, "log        proposed in entry %d", c.Proposed)
	if c.Closed != 0 {
		fmt.Fprintf(w, ", closed in entry %d", c.Closed)
	}
	fmt.Fprintln(w)
}

// operatorCommands are the subcommands of `custos operator`.
var operatorCommands = []command{
	{"init", "name the officers, once: init --officers a.pub,b.pub,c.pub --quorum 2 [--default-threshold 2] [--regions FR,DE]", runOperatorInit},
}

func operatorUsage() string {
	return groupUsage("operator", operatorCommands, 5, "")
}

func runOperatorCmd(ctx context.Context, stdout io.Writer, args []string) error {
	return runGroup(ctx, stdout, "operator", operatorCommands, args, operatorUsage())
}

func runOperatorInit(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("operator init", flag.ContinueOnError)
	af := addAPIFlags(fs)
	officers := fs.String("officers", "", "the officers' NAME.pub files, comma-separated (required; at least 2)")
	quorum := fs.Int("quorum", 0, "M: how many distinct officers must approve a ceremony (required; 2 ≤ M ≤ officers)")
	threshold := fs.Int("default-threshold", 2, "default KEK threshold t (how many node HSMs a KEK needs)")
	regions := fs.String("regions", "", "allowed regions, comma-separated EU/EEA codes (default: those fixed at bootstrap)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if *officers == "" || *quorum == 0 {
		return usagef("--officers and --quorum are required")
	}
	// An operator's certificate: prefer CUSTOS_OPERATOR_CERT/KEY (DIR/env
	// of custos dev up) over the default client certificate.
	if af.cert == "" && af.key == "" {
		cert, err := af.lookup("CUSTOS_OPERATOR_CERT")
		if err != nil {
			return err
		}
		key, err := af.lookup("CUSTOS_OPERATOR_KEY")
		if err != nil {
			return err
		}
		if cert != "" && key != "" {
			af.cert, af.key = cert, key
		}
	}
	in := client.InitRequest{Quorum: *quorum, DefaultThreshold: *threshold}
	var table []string
	for _, path := range strings.Split(*officers, ",") {
		b, err := os.ReadFile(strings.TrimSpace(path))
		if err != nil {
			return err
		}
		pk, err := officer.ParsePublicKey(b)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		in.Officers = append(in.Officers, string(pk.Marshal()))
		table = append(table, fmt.Sprintf("  %-12s %s", pk.Name(), pk.Fingerprint()))
	}
	if *regions != "" {
		for _, r := range strings.Split(*regions, ",") {
			in.Regions = append(in.Regions, strings.TrimSpace(r))
		}
	}
	cl, err := af.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Init(ctx, in); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Cluster initialized: quorum %d of %d officers, default KEK threshold %d.\n", *quorum, len(in.Officers), *threshold)
	fmt.Fprintf(stdout, "Officers (compare these fingerprints with each officer over another channel):\n%s\n", strings.Join(table, "\n"))
	fmt.Fprintln(stdout, "The cluster.init log entry records them: auditors start trusting the cluster from that entry.")
	return nil
}

package main

// KEK ceremonies and reads: the flags of `custos officer propose` for the
// KEK, legal hold and escrow operations, the officer's escrow share
// (escrow.recover, `custos officer verify-share`), and `custos kek list |
// show | destruction-certificate`.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/threshold"
)

// Defaults of a policy built from flags (kek.create).
const (
	defaultActivationTTL = 5 * time.Minute
	defaultRoles         = "agent"
)

// policyFlags are the flags that build a KEK policy, in the order errors list them.
var policyFlags = []string{"threshold", "ttl", "wrap-roles", "unwrap-roles", "wrap-identities", "unwrap-identities", "regions", "context", "escrow-m"}

// opFlags are the flags of each operation of `custos officer propose`.
// A flag of another operation is refused rather than silently ignored.
var opFlags = map[ceremony.Operation][]string{
	ceremony.OpQuorumSet:        {"m"},
	ceremony.OpOfficerAdd:       {"bundle"},
	ceremony.OpOfficerRemove:    {"id"},
	ceremony.OpNodeAdd:          {"node"},
	ceremony.OpNodeRemove:       {"id"},
	ceremony.OpRegionsSet:       {"regions"},
	ceremony.OpKEKCreate:        append([]string{"kek", "policy"}, policyFlags...),
	ceremony.OpKEKPolicy:        append([]string{"kek", "policy"}, policyFlags...),
	ceremony.OpKEKRotate:        {"kek"},
	ceremony.OpKEKDisable:       {"kek", "version", "all"},
	ceremony.OpKEKEnable:        {"kek", "version", "all"},
	ceremony.OpKEKDestroy:       {"kek", "version"},
	ceremony.OpLegalHoldSet:     {"kek", "reason"},
	ceremony.OpLegalHoldRelease: {"kek", "reason"},
	ceremony.OpEscrowRecover:    {"kek", "version", "reason"},
	ceremony.OpIdentityRevoke:   {"fingerprint", "identity", "reason"},
}

// opUsage is the table `custos officer propose -h` prints.
const opUsage = `usage: custos officer propose OPERATION [flags]

operations and their flags:
  officer.add         --bundle NEW.pub
  officer.remove      --id OFFICER
  quorum.set          --m N
  regions.set         --regions FR,DE,…
  node.add            --node node.json
  node.remove         --id NODE
  kek.create          --kek ID  and  --policy FILE  or policy flags (defaults below)
  kek.policy          --kek ID  and  --policy FILE  or policy flags (the KEK's current policy, changed by the flags given)
  kek.rotate          --kek ID
  kek.disable         --kek ID  --version N | --all
  kek.enable          --kek ID  --version N | --all
  kek.destroy         --kek ID  --version N
  legal_hold.set      --kek ID  --reason TEXT
  legal_hold.release  --kek ID  --reason TEXT
  escrow.recover      --kek ID  --version N  --reason TEXT   (sends your opened escrow share with your signature)
  identity.revoke     --fingerprint sha256:HEX | --identity ROLE/NAME  --reason TEXT   (for good: refused on the API and between nodes)

policy flags: --threshold N (default: the cluster's default threshold, at least 2), --ttl 5m,
  --wrap-roles agent, --unwrap-roles agent, --wrap-identities, --unwrap-identities (ROLE/NAME,…),
  --regions (default: the cluster's allowed regions; for wrap and unwrap), --context (required
  context fields), --escrow-m N (0: no officer escrow). Lists are comma-separated.

flags:
`

// kekFlags are the KEK flags of `custos officer propose`. regions is
// shared with regions.set.
type kekFlags struct {
	kek, policy, reason                        string
	version                                    uint
	all                                        bool
	threshold, escrowM                         int
	ttl                                        time.Duration
	wrapRoles, unwrapRoles, wrapIDs, unwrapIDs string
	context                                    string
	regions                                    *string
	set                                        map[string]bool // flags given on the command line
}

func addKEKFlags(fs *flag.FlagSet, regions *string) *kekFlags {
	kf := &kekFlags{regions: regions}
	fs.StringVar(&kf.kek, "kek", "", "KEK ceremonies: the KEK id")
	fs.UintVar(&kf.version, "version", 0, "kek.disable, kek.enable, kek.destroy, escrow.recover: the KEK version")
	fs.BoolVar(&kf.all, "all", false, "kek.disable, kek.enable: every version (instead of --version)")
	fs.StringVar(&kf.reason, "reason", "", "legal_hold.set, legal_hold.release, escrow.recover, identity.revoke: why (recorded in the log)")
	fs.StringVar(&kf.policy, "policy", "", "kek.create, kek.policy: the policy as a file of canonical policy JSON (instead of the policy flags)")
	fs.IntVar(&kf.threshold, "threshold", 0, "kek.create, kek.policy: t, the node shares needed to use a version (default: the cluster's default threshold, at least 2)")
	fs.DurationVar(&kf.ttl, "ttl", defaultActivationTTL, "kek.create, kek.policy: how long a reconstituted key stays in memory, whole seconds; 0: per request")
	fs.StringVar(&kf.wrapRoles, "wrap-roles", defaultRoles, "kek.create, kek.policy: roles that may wrap, comma-separated (\"\": none)")
	fs.StringVar(&kf.unwrapRoles, "unwrap-roles", defaultRoles, "kek.create, kek.policy: roles that may unwrap, comma-separated (\"\": none)")
	fs.StringVar(&kf.wrapIDs, "wrap-identities", "", "kek.create, kek.policy: single identities that may wrap, ROLE/NAME comma-separated")
	fs.StringVar(&kf.unwrapIDs, "unwrap-identities", "", "kek.create, kek.policy: single identities that may unwrap, ROLE/NAME comma-separated")
	fs.StringVar(&kf.context, "context", "", "kek.create, kek.policy: context fields every wrap and unwrap must carry, comma-separated")
	fs.IntVar(&kf.escrowM, "escrow-m", 0, "kek.create, kek.policy: officer escrow, any M officers' shares recover a version (0: no escrow)")
	return kf
}

// setFlags returns the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// checkOpFlags refuses a flag that belongs to other operations than op.
func checkOpFlags(op ceremony.Operation, set map[string]bool) error {
	own, known := opFlags[op]
	if !known {
		return nil // proposeParams names the operations
	}
	var others []string
	for _, fl := range opFlags {
		for _, name := range fl {
			if set[name] && !slices.Contains(own, name) && !slices.Contains(others, name) {
				others = append(others, name)
			}
		}
	}
	if len(others) == 0 {
		return nil
	}
	slices.Sort(others)
	takes := "no operation flags"
	if len(own) > 0 {
		takes = "--" + strings.Join(own, ", --")
	}
	return usagef("%s does not take --%s (it takes %s)", op, strings.Join(others, ", --"), takes)
}

// check checks the flags of KEK operation op, before anything is fetched.
func (kf *kekFlags) check(op ceremony.Operation) error {
	need := func(ok bool, what string) error {
		if !ok {
			return usagef("%s needs %s", op, what)
		}
		return nil
	}
	if err := need(kf.kek != "", "--kek ID"); err != nil {
		return err
	}
	if kf.set["version"] && (kf.version == 0 || kf.version > math.MaxUint32) {
		return usagef("--version %d: versions are numbered from 1", kf.version)
	}
	switch op {
	case ceremony.OpKEKDisable, ceremony.OpKEKEnable:
		if kf.all && kf.set["version"] {
			return usagef("%s: give --version N or --all, not both", op)
		}
		return need(kf.all || kf.set["version"], "--version N or --all")
	case ceremony.OpKEKDestroy:
		return need(kf.set["version"], "--version N")
	case ceremony.OpLegalHoldSet, ceremony.OpLegalHoldRelease:
		return need(kf.reason != "", "--reason TEXT")
	case ceremony.OpEscrowRecover:
		if err := need(kf.set["version"], "--version N"); err != nil {
			return err
		}
		return need(kf.reason != "", "--reason TEXT")
	case ceremony.OpKEKCreate, ceremony.OpKEKPolicy:
		var given []string
		for _, name := range policyFlags {
			if kf.set[name] {
				given = append(given, "--"+name)
			}
		}
		if kf.policy != "" && len(given) > 0 {
			return usagef("%s: give the policy either as --policy FILE or as flags, not both (%s given with --policy)", op, strings.Join(given, ", "))
		}
		if op == ceremony.OpKEKPolicy && kf.policy == "" && len(given) == 0 {
			return usagef("kek.policy needs --policy FILE or the policy flags to change (--%s)", strings.Join(policyFlags, ", --"))
		}
	}
	return nil
}

// params builds the parameters of KEK operation op. kek.create and
// kek.policy read the cluster's status and, for kek.policy, the KEK's
// current policy.
func (kf *kekFlags) params(ctx context.Context, cl *client.Client, st client.Status, op ceremony.Operation) (ceremony.Params, error) {
	ver := uint32(kf.version)
	var ps ceremony.Params
	switch op {
	case ceremony.OpKEKRotate:
		ps = ceremony.KEKRotate{KEKID: kf.kek}
	case ceremony.OpKEKDisable:
		ps = ceremony.KEKDisable{KEKID: kf.kek, Version: ver, All: kf.all}
	case ceremony.OpKEKEnable:
		ps = ceremony.KEKEnable{KEKID: kf.kek, Version: ver, All: kf.all}
	case ceremony.OpKEKDestroy:
		ps = ceremony.KEKDestroy{KEKID: kf.kek, Version: ver}
	case ceremony.OpLegalHoldSet:
		ps = ceremony.LegalHoldSet{KEKID: kf.kek, Reason: kf.reason}
	case ceremony.OpLegalHoldRelease:
		ps = ceremony.LegalHoldRelease{KEKID: kf.kek, Reason: kf.reason}
	case ceremony.OpEscrowRecover:
		ps = ceremony.EscrowRecover{KEKID: kf.kek, Version: ver, Reason: kf.reason}
	case ceremony.OpKEKCreate, ceremony.OpKEKPolicy:
		pol, err := kf.buildPolicy(ctx, cl, st, op)
		if err != nil {
			return nil, err
		}
		if op == ceremony.OpKEKCreate {
			ps = ceremony.KEKCreate{KEKID: kf.kek, Policy: pol}
		} else {
			ps = ceremony.KEKPolicy{KEKID: kf.kek, Policy: pol}
		}
	default:
		return nil, fmt.Errorf("operation %q is not a KEK operation", op)
	}
	if err := ps.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return ps, nil
}

// buildPolicy returns the policy of kek.create or kek.policy: the --policy
// file, or the flags over a base (for kek.create the defaults, for
// kek.policy the KEK's current policy). Every list is sorted and
// deduplicated; the result is validated, with errors naming the flag.
func (kf *kekFlags) buildPolicy(ctx context.Context, cl *client.Client, st client.Status, op ceremony.Operation) (ceremony.Policy, error) {
	var pol ceremony.Policy
	if kf.policy != "" {
		b, err := os.ReadFile(kf.policy)
		if err != nil {
			return pol, err
		}
		if err := pol.UnmarshalJSON(b); err != nil {
			return pol, fmt.Errorf("--policy %s: not a KEK policy: %w", kf.policy, err)
		}
		// A field left out would read as "nobody", "none" or 0: make the
		// file say so rather than mean it by omission.
		canon, err := pol.MarshalJSON()
		if err != nil {
			return pol, err
		}
		if missing := missingFields(canon, b); len(missing) > 0 {
			return pol, fmt.Errorf("--policy %s: the policy must give every field; it lacks %s (custos kek show ID prints a KEK's policy JSON)", kf.policy, strings.Join(missing, ", "))
		}
		if err := pol.Validate(); err != nil {
			return pol, fmt.Errorf("--policy %s: %w", kf.policy, err)
		}
		return pol, nil
	}
	set := kf.set
	if op == ceremony.OpKEKPolicy {
		k, err := cl.KEK(ctx, kf.kek)
		if err != nil {
			return pol, fmt.Errorf("kek %q: %w", kf.kek, err)
		}
		if err := pol.UnmarshalJSON(k.Policy); err != nil {
			return pol, fmt.Errorf("kek %q: the node sent a policy that does not parse: %w", kf.kek, err)
		}
	} else {
		// kek.create: every flag counts, given or default.
		set = map[string]bool{}
		for _, name := range policyFlags {
			set[name] = true
		}
		pol.Threshold = max(2, st.DefaultThreshold)
	}
	if kf.set["threshold"] {
		pol.Threshold = kf.threshold
	}
	if set["ttl"] {
		if kf.ttl < 0 || kf.ttl%time.Second != 0 {
			return pol, fmt.Errorf("--ttl %v: whole seconds, 0 (per request) to %v", kf.ttl, ceremony.MaxActivationTTL)
		}
		pol.ActivationTTL = kf.ttl
	}
	if set["wrap-roles"] {
		pol.Wrap.Roles = splitList(kf.wrapRoles, false)
	}
	if set["unwrap-roles"] {
		pol.Unwrap.Roles = splitList(kf.unwrapRoles, false)
	}
	if set["wrap-identities"] {
		pol.Wrap.Identities = splitList(kf.wrapIDs, false)
	}
	if set["unwrap-identities"] {
		pol.Unwrap.Identities = splitList(kf.unwrapIDs, false)
	}
	if set["context"] {
		pol.Context = splitList(kf.context, false)
	}
	if set["escrow-m"] {
		pol.Escrow = ceremony.Escrow{Enabled: kf.escrowM != 0, M: kf.escrowM}
	}
	regions := splitList(*kf.regions, true)
	if len(regions) == 0 {
		regions = splitList(strings.Join(st.AllowedRegions, ","), true)
	}
	for _, a := range []*ceremony.Access{&pol.Wrap, &pol.Unwrap} {
		switch {
		case len(a.Roles)+len(a.Identities) == 0:
			a.Regions = nil // granted to nobody: no regions
		case kf.set["regions"] || op == ceremony.OpKEKCreate || len(a.Regions) == 0:
			a.Regions = regions
		}
	}
	if err := pol.Validate(); err != nil {
		return pol, fmt.Errorf("%s: policy: %w%s", op, err, flagHint(err))
	}
	return pol, nil
}

// missingFields returns the object fields of JSON canon that JSON b lacks,
// as dotted paths.
func missingFields(canon, b []byte) []string {
	var c, g any
	if json.Unmarshal(canon, &c) != nil || json.Unmarshal(b, &g) != nil {
		return nil
	}
	var missing []string
	var walk func(path string, c, g any)
	walk = func(path string, c, g any) {
		cm, ok := c.(map[string]any)
		if !ok {
			return
		}
		gm, _ := g.(map[string]any)
		keys := slices.Sorted(maps.Keys(cm))
		for _, k := range keys {
			gv, ok := gm[k]
			if !ok {
				missing = append(missing, path+k)
				continue
			}
			walk(path+k+".", cm[k], gv)
		}
	}
	walk("", c, g)
	return missing
}

// flagHint names the flag behind a policy validation error.
func flagHint(err error) string {
	msg := err.Error()
	for _, h := range []struct{ prefix, flag string }{
		{"threshold", "--threshold"}, {"activation ttl", "--ttl"},
		{"wrap roles", "--wrap-roles"}, {"unwrap roles", "--unwrap-roles"},
		{"wrap identities", "--wrap-identities"}, {"unwrap identities", "--unwrap-identities"},
		{"wrap regions", "--regions"}, {"unwrap regions", "--regions"},
		{"required context", "--context"}, {"escrow m", "--escrow-m"},
	} {
		if strings.HasPrefix(msg, h.prefix) {
			return " (check " + h.flag + ")"
		}
	}
	return ""
}

// splitList splits a comma-separated list, trims, drops empty items, and
// returns a sorted set (nil for none); regions are upper-cased.
func splitList(s string, upper bool) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		x = strings.TrimSpace(x)
		if upper {
			x = strings.ToUpper(x)
		}
		if x != "" {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// escrowVersion returns version ver of k (ver 0: the latest) and its public
// records as kek's functions take them, or an error wrapping
// kek.ErrNoEscrow if it has no escrow.
func escrowVersion(k client.KEK, ver uint32) (*client.KEKVersion, *kek.Version, *kek.EscrowRecord, error) {
	var v *client.KEKVersion
	for i := range k.Versions {
		if ver == 0 || k.Versions[i].Version == ver {
			v = &k.Versions[i]
		}
	}
	if v == nil {
		if ver == 0 {
			return nil, nil, nil, fmt.Errorf("kek %q has no versions", k.ID)
		}
		return nil, nil, nil, fmt.Errorf("kek %q has no version %d", k.ID, ver)
	}
	if v.Escrow == nil {
		return v, nil, nil, fmt.Errorf("kek %q version %d: %w", k.ID, v.Version, kek.ErrNoEscrow)
	}
	c, err := threshold.ParseCommitments(v.Commitments)
	if err != nil {
		return v, nil, nil, fmt.Errorf("kek %q version %d: node commitments: %w", k.ID, v.Version, err)
	}
	pub := &kek.Version{ID: k.ID, Version: v.Version, Threshold: v.Threshold, Shares: len(v.Shares), PublicKey: v.PublicKey, Commitments: c}
	e := v.Escrow
	rec, err := kek.ParseEscrowRecord(e.Cluster, e.M, e.Officers, e.Commitments, e.Link, e.Sealed)
	if err != nil {
		return v, nil, nil, fmt.Errorf("kek %q version %d: escrow record: %w", k.ID, v.Version, err)
	}
	return v, pub, rec, nil
}

// openEscrowShare opens officer s's escrow share of version ver of KEK id
// for an escrow.recover ceremony and returns its encoding (threshold.Share
// binary), which the caller clears once sent. An officer who holds no
// share of the version gets nil and a note saying so.
func openEscrowShare(ctx context.Context, cl *client.Client, id string, ver uint32, s *officer.Signer) ([]byte, string, error) {
	k, err := cl.KEK(ctx, id)
	if err != nil {
		return nil, "", fmt.Errorf("kek %q: %w", id, err)
	}
	_, v, rec, err := escrowVersion(k, ver)
	if err != nil {
		return nil, "", err
	}
	name := s.Public().Name()
	sh, err := kek.OpenEscrowShare(v, rec, name, s)
	if errors.Is(err, kek.ErrWrongOfficer) {
		return nil, fmt.Sprintf("You (%s) hold no escrow share of KEK %q version %d: your signature goes without one; %d of the escrow officers (%s) must send theirs.",
			name, id, ver, rec.Threshold, strings.Join(rec.Officers, ", ")), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("your escrow share: %w", err)
	}
	enc, err := sh.MarshalBinary()
	idx := sh.Index
	sh.Zeroize()
	if err != nil {
		return nil, "", err
	}
	return enc, fmt.Sprintf("Your escrow share (%d of %d officers, any %d recover) of KEK %q version %d opened and matches the escrow commitments; it goes with your signature to the leader, which holds it in memory only until the recovery executes or closes.",
		idx, len(rec.Officers), rec.Threshold, id, ver), nil
}

func runOfficerVerifyShare(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("officer verify-share", flag.ContinueOnError)
	of := addOfficerFlags(fs, true)
	id := fs.String("kek", "", "the KEK id (required)")
	ver := fs.Uint("version", 0, "the KEK version (default: the latest)")
	if err := parseOfficerFlags(fs, args); err != nil {
		return err
	}
	if *id == "" {
		return usagef("--kek ID is required")
	}
	if *ver > math.MaxUint32 {
		return fmt.Errorf("--version %d: out of range", *ver)
	}
	cl, err := of.api.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	k, err := cl.KEK(ctx, *id)
	if err != nil {
		return fmt.Errorf("kek %q: %w", *id, err)
	}
	cv, v, rec, err := escrowVersion(k, uint32(*ver))
	if err != nil {
		return err
	}
	s, err := of.signer()
	if err != nil {
		return err
	}
	defer s.Close()
	name := s.Public().Name()
	if err := kek.VerifyEscrowShare(v, rec, name, s); err != nil {
		switch {
		case errors.Is(err, kek.ErrWrongOfficer):
			return fmt.Errorf("FAILED: %s holds no escrow share of KEK %q version %d (its escrow officers: %s): %w", name, *id, v.Version, strings.Join(rec.Officers, ", "), err)
		case errors.Is(err, kek.ErrWrongOfficerKey):
			return fmt.Errorf("FAILED: your escrow share of KEK %q version %d was sealed to another key than this key file's: %w", *id, v.Version, err)
		}
		return fmt.Errorf("FAILED: your escrow share of KEK %q version %d: %w", *id, v.Version, err)
	}
	idx := slices.Index(rec.Officers, name) + 1
	fmt.Fprintf(stdout, "OK: your escrow share of KEK %q version %d is share %d, one of %d (any %d of officers %s recover the version).\n",
		*id, v.Version, idx, len(rec.Officers), rec.Threshold, strings.Join(rec.Officers, ", "))
	fmt.Fprintln(stdout, "It opens with your key, matches the escrow commitments, and the escrow is linked to the nodes' commitments of this version.")
	if cv.State == ledger.KEKDestroyed {
		fmt.Fprintf(stdout, "Note: this version is destroyed on the nodes and the cluster will not recover it, but its escrow shares remain in the log: any %d escrow officers together could still rebuild its key.\n", rec.Threshold)
	}
	return nil
}

// kekCommands are the subcommands of `custos kek`.
var kekCommands = []command{
	{"list", "list the KEKs: versions with their states, legal hold", runKEKList},
	{"show", "show a KEK: policy, legal hold, and each version, its nodes' sealing statements checked: show ID [--keys FILE] [--format json]", runKEKShow},
	{"destruction-certificate", "verify and print a destroyed version's certificate: destruction-certificate ID VERSION [--keys FILE] [--json]", runKEKCertificate},
}

func kekUsage() string {
	return groupUsage("kek", kekCommands, 24, "\nThey take the API flags of every command (--env, --addr, --cert, --key, --ca); any role may read KEKs.")
}

func runKEKCmd(ctx context.Context, stdout io.Writer, args []string) error {
	return runGroup(ctx, stdout, "kek", kekCommands, args, kekUsage())
}

// parsePositional parses args holding len(names) positional arguments
// among the flags.
func parsePositional(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != len(names) {
		return nil, usagef("want %s, got %d argument(s) %q", strings.Join(names, " "), len(pos), pos)
	}
	return pos, nil
}

// parseInterleaved parses args with parseFlags, flags before, between or
// after the positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func parseVersion(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("version %q: a number from 1", s)
	}
	return uint32(v), nil
}

func runKEKList(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("kek list", flag.ContinueOnError)
	af := addAPIFlags(fs)
	format := addFormatFlag(fs)
	if _, err := parsePositional(fs, args); err != nil {
		return err
	}
	cl, err := af.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	ks, err := cl.KEKs(ctx)
	if err != nil {
		return err
	}
	if format.json {
		if ks.KEKs == nil {
			ks.KEKs = []client.KEK{}
		}
		return printJSON(stdout, ks)
	}
	if len(ks.KEKs) == 0 {
		fmt.Fprintln(stdout, "no KEKs")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEK\tVERSIONS\tLEGAL HOLD")
	for _, k := range ks.KEKs {
		var vs []string
		for _, v := range k.Versions {
			vs = append(vs, fmt.Sprintf("v%d %s", v.Version, v.State))
		}
		hold := "-"
		if k.LegalHold != nil {
			hold = fmt.Sprintf("held: %q", k.LegalHold.Reason)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.ID, strings.Join(vs, ", "), hold)
	}
	return tw.Flush()
}

func runKEKShow(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("kek show", flag.ContinueOnError)
	af := addAPIFlags(fs)
	format := addFormatFlag(fs)
	fs.BoolVar(&format.json, "json", false, "same as --format json")
	keysFile := fs.String("keys", "", "trusted node keys file (ledger key lines, as auditors keep them) to check the nodes' statements with; default: the cluster's /v1/ledger/keys")
	pos, err := parsePositional(fs, args, "ID")
	if err != nil {
		return err
	}
	var keys []ledger.NodeKey
	if *keysFile != "" {
		b, err := os.ReadFile(*keysFile)
		if err != nil {
			return err
		}
		if keys, err = ledger.ParseNodeKeys(b); err != nil {
			return fmt.Errorf("--keys %s: %w", *keysFile, err)
		}
	}
	cl, err := af.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	k, err := cl.KEK(ctx, pos[0])
	if err != nil {
		return err
	}
	if format.json {
		return printJSON(stdout, kekJSON{KEK: k, Sealed: sealedChecks(ctx, cl, k, keys, *keysFile)})
	}
	printKEK(stdout, k, sealedChecks(ctx, cl, k, keys, *keysFile))
	return nil
}

// sealedChecks checks every share's statement of k with the node keys
// (from the cluster when keys is nil) and says, per version, what came of
// it. A check that cannot run says why instead.
func sealedChecks(ctx context.Context, cl *client.Client, k client.KEK, keys []ledger.NodeKey, keysFile string) map[uint32]string {
	out := map[uint32]string{}
	source := "node keys from the cluster; --keys FILE checks against a trusted copy"
	if keysFile != "" {
		source = "node keys from " + keysFile
	}
	st, err := cl.Cluster(ctx)
	if err == nil && keys == nil {
		keys, err = cl.NodeKeys(ctx)
	}
	for _, v := range k.Versions {
		if err != nil {
			out[v.Version] = "not checked: " + err.Error()
			continue
		}
		var ok, failed []string
		for _, sh := range v.Shares {
			if e := verifySealed(st.Cluster, k.ID, v, sh, keys); e != nil {
				failed = append(failed, fmt.Sprintf("%s FAILS: %v", sh.Node, e))
			} else {
				ok = append(ok, sh.Node)
			}
		}
		const indent = "\n             "
		switch {
		case len(failed) > 0:
			out[v.Version] = fmt.Sprintf("%s;%sverified: %s (%s)", strings.Join(failed, "; "), indent, orNone(ok), source)
		case len(ok) > 0:
			out[v.Version] = fmt.Sprintf("verified: %s signed (ECDSA in the node's HSM + ML-DSA-65)%sthat each checked its share against the commitments and sealed it in its HSM%s(%s)",
				strings.Join(ok, ", "), indent, indent, source)
		default:
			out[v.Version] = "no shares"
		}
	}
	return out
}

// verifySealed checks share sh's statement: signed by its node's key, of
// this cluster, KEK, version, share index, public key, commitments and
// sealed share (while the sealed share is kept), and of the ceremony that
// dealt the version (unless escrow recovery re-dealt it).
func verifySealed(cluster, id string, v client.KEKVersion, sh client.KEKShare, keys []ledger.NodeKey) error {
	text, err := verifyStatement(cluster, sh.Node, sh.Statement, keys)
	if err != nil {
		return err
	}
	want := audit.SealedStatement{Cluster: cluster, Node: sh.Node, KEK: id, Version: v.Version, Share: sh.Index,
		PublicKey: fingerprint(v.PublicKey), Commitments: fingerprint(v.Commitments)}
	if len(sh.Sealed) > 0 {
		want.Sealed = fingerprint(sh.Sealed)
	}
	if len(v.Recovered) == 0 {
		want.Ceremony = v.Ceremony
	}
	return audit.CheckSealed(text, want)
}

// verifyStatement opens node's signed statement with its key among keys.
func verifyStatement(cluster, node, statement string, keys []ledger.NodeKey) (string, error) {
	name := ledger.KeyName(cluster, node)
	i := slices.IndexFunc(keys, func(k ledger.NodeKey) bool { return k.Name == name })
	if i < 0 {
		return "", fmt.Errorf("no key %q to verify it with", name)
	}
	return ledger.VerifyStatement([]byte(statement), keys[i])
}

// kekJSON is what kek show --format json prints: the KEK record as the
// API serves it, and per version what came of checking its nodes'
// sealing statements.
type kekJSON struct {
	client.KEK
	Sealed map[uint32]string `json:"sealed_checks"`
}

// printJSON writes v as one indented JSON document.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fingerprint is "sha256:" and the hex SHA-256 of b.
func fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// printKEK prints a KEK for people, with what came of checking each
// version's share statements (sealed, by version; none: not printed).
func printKEK(w io.Writer, k client.KEK, sealed map[uint32]string) {
	fmt.Fprintf(w, "KEK %q (created in log entry %d)\n", k.ID, k.Created)
	var pol ceremony.Policy
	if err := pol.UnmarshalJSON(k.Policy); err != nil {
		fmt.Fprintf(w, "policy       (does not parse: %v)\n", err)
	} else {
		fmt.Fprint(w, policyWords(pol))
	}
	fmt.Fprintf(w, "policy JSON  %s\n", k.Policy)
	if h := k.LegalHold; h != nil {
		fmt.Fprintf(w, "legal hold   HELD since log entry %d (ceremony %s): %q; no version can be disabled or destroyed\n", h.Entry, h.Ceremony, h.Reason)
	} else {
		fmt.Fprintln(w, "legal hold   none")
	}
	for _, v := range k.Versions {
		fmt.Fprintf(w, "\nversion %d    %s\n", v.Version, v.State)
		holders := make([]string, len(v.Shares))
		for i, s := range v.Shares {
			holders[i] = fmt.Sprintf("%s (share %d)", s.Node, s.Index)
		}
		fmt.Fprintf(w, "  split      any %d of %d node shares: %s\n", v.Threshold, len(v.Shares), strings.Join(holders, ", "))
		if line, ok := sealed[v.Version]; ok {
			fmt.Fprintf(w, "  statements %s\n", line)
		}
		fmt.Fprintf(w, "  public key %s\n", fingerprint(v.PublicKey))
		if e := v.Escrow; e != nil {
			fmt.Fprintf(w, "  escrow     any %d of %d officers: %s\n", e.M, len(e.Officers), strings.Join(e.Officers, ", "))
		} else {
			fmt.Fprintln(w, "  escrow     none")
		}
		fmt.Fprintf(w, "  created    log entry %d (ceremony %s)\n", v.Created, v.Ceremony)
		if len(v.Recovered) > 0 {
			rs := make([]string, len(v.Recovered))
			for i, r := range v.Recovered {
				rs[i] = strconv.FormatUint(r, 10)
			}
			fmt.Fprintf(w, "  recovered  from escrow in log entries %s\n", strings.Join(rs, ", "))
		}
		if v.State == ledger.KEKDestroyed || v.Destroyed != 0 {
			var attested, pending []string
			for _, s := range v.Shares {
				if slices.Contains(v.Attested, s.Node) {
					attested = append(attested, s.Node)
				} else {
					pending = append(pending, s.Node)
				}
			}
			att := "attested by " + orNone(attested)
			if len(pending) > 0 {
				att += "; not yet by " + strings.Join(pending, ", ")
			}
			fmt.Fprintf(w, "  destroyed  log entry %d (ceremony %s); %s\n", v.Destroyed, v.DestroyCeremony, att)
		}
	}
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

// policyWords describes a policy, one line per field.
func policyWords(p ceremony.Policy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "threshold    any %d node shares use a version\n", p.Threshold)
	if p.ActivationTTL == 0 {
		b.WriteString("activation   per request (the key is never kept in memory)\n")
	} else {
		fmt.Fprintf(&b, "activation   kept in memory for %v after use\n", p.ActivationTTL)
	}
	fmt.Fprintf(&b, "wrap         %s\n", accessWords(p.Wrap))
	fmt.Fprintf(&b, "unwrap       %s\n", accessWords(p.Unwrap))
	if len(p.Context) == 0 {
		b.WriteString("context      no required fields\n")
	} else {
		fmt.Fprintf(&b, "context      required: %s\n", strings.Join(p.Context, ", "))
	}
	if p.Escrow.Enabled {
		fmt.Fprintf(&b, "escrow       new versions escrowed to the officers; any %d recover one\n", p.Escrow.M)
	} else {
		b.WriteString("escrow       none\n")
	}
	return b.String()
}

func accessWords(a ceremony.Access) string {
	var who []string
	for _, r := range a.Roles {
		who = append(who, "any "+r)
	}
	who = append(who, a.Identities...)
	if len(who) == 0 {
		return "nobody"
	}
	return strings.Join(who, ", ") + ", from " + strings.Join(a.Regions, ", ")
}

func runKEKCertificate(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("kek destruction-certificate", flag.ContinueOnError)
	af := addAPIFlags(fs)
	keysFile := fs.String("keys", "", "trusted node keys file (ledger key lines, as auditors keep them); default: the cluster's /v1/ledger/keys")
	asJSON := fs.Bool("json", false, "print the certificate as JSON (it is verified all the same)")
	pos, err := parsePositional(fs, args, "ID", "VERSION")
	if err != nil {
		return err
	}
	ver, err := parseVersion(pos[1])
	if err != nil {
		return err
	}
	var keys []ledger.NodeKey
	keySource := "the node keys the cluster serves (/v1/ledger/keys); --keys FILE checks against a trusted copy"
	if *keysFile != "" {
		b, err := os.ReadFile(*keysFile)
		if err != nil {
			return err
		}
		if keys, err = ledger.ParseNodeKeys(b); err != nil {
			return fmt.Errorf("--keys %s: %w", *keysFile, err)
		}
		keySource = "the trusted node keys in " + *keysFile
	}
	cl, err := af.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	dc, err := cl.DestructionCertificate(ctx, pos[0], ver)
	if err != nil {
		return err
	}
	if keys == nil {
		if keys, err = cl.NodeKeys(ctx); err != nil {
			return fmt.Errorf("node keys: %w", err)
		}
	}
	// Verify every attested holder's statement.
	type result struct {
		line string
		ok   bool
	}
	var results []result
	var pending, failed []string
	for _, h := range dc.Holders {
		if !h.Attested {
			pending = append(pending, h.Node)
			results = append(results, result{fmt.Sprintf("%-10s NOT YET ATTESTED", h.Node), false})
			continue
		}
		err := verifyHolder(dc, h, keys)
		if err != nil {
			failed = append(failed, h.Node)
			results = append(results, result{fmt.Sprintf("%-10s attested in log entry %d, but its statement FAILS: %v", h.Node, h.Entry, err), false})
			continue
		}
		results = append(results, result{fmt.Sprintf("%-10s attested in log entry %d: its HSM key for this version is destroyed (signed statement verified)", h.Node, h.Entry), true})
	}
	if *asJSON {
		if err := printJSON(stdout, dc); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "Destruction certificate: KEK %q version %d, cluster %s\n\n", dc.KEKID, dc.Version, dc.Cluster)
		fmt.Fprintf(stdout, "public key  %s\n", fingerprint(dc.PublicKey))
		fmt.Fprintf(stdout, "ceremony    %s, approved by %s; executed in log entry %d\n", dc.Ceremony, orNone(dc.Approvers), dc.Destroyed)
		fmt.Fprintf(stdout, "keys        statements checked against %s\n", keySource)
		fmt.Fprintln(stdout, "holders")
		for _, r := range results {
			fmt.Fprintf(stdout, "  %s\n", r.line)
		}
		if len(dc.EscrowOfficers) > 0 {
			fmt.Fprintf(stdout, "\nEscrow caveat: this version was escrowed with officers %s (%d of %d): their sealed escrow shares remain in the log, so %d of them could still recover it; the nodes' attestations do not cover escrow.\n",
				strings.Join(dc.EscrowOfficers, ", "), dc.EscrowM, len(dc.EscrowOfficers), dc.EscrowM)
		}
		if dc.Complete && len(pending) == 0 && len(failed) == 0 {
			fmt.Fprintf(stdout, "\nComplete: every node that held a share of this version has attested that its HSM key for it is destroyed.\n")
		}
	}
	var errs []string
	if len(failed) > 0 {
		errs = append(errs, fmt.Sprintf("the statements of %s do not verify", strings.Join(failed, ", ")))
	}
	if len(pending) > 0 {
		errs = append(errs, fmt.Sprintf("not complete: %s %s not attested yet (a node destroys its key and attests when it next runs; one that is down does so when it returns)",
			strings.Join(pending, ", "), plural(len(pending), "has", "have")))
	} else if !dc.Complete {
		errs = append(errs, "the cluster does not mark the certificate complete")
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// verifyHolder verifies holder h's statement: signed by its node's key,
// and exactly the destruction statement of the certificate's cluster, KEK,
// version and ceremony by that node.
func verifyHolder(dc client.DestructionCertificate, h client.DestroyedHolder, keys []ledger.NodeKey) error {
	text, err := verifyStatement(dc.Cluster, h.Node, h.Statement, keys)
	if err != nil {
		return err
	}
	return audit.CheckDestroyed(text, audit.DestroyedStatement{Cluster: dc.Cluster, Node: h.Node, KEK: dc.KEKID, Version: dc.Version, Ceremony: dc.Ceremony})
}

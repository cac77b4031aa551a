package main

// `custos backup run | list | restore | verify | drill | prune | status`:
// flags, loading the policy and the trust file, and printing around the
// agent's use cases (backup/agent).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/custos-eu/custos/backup/agent"
	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/backup/policy"
	"github.com/custos-eu/custos/backup/s3"
	"github.com/custos-eu/custos/backup/target"
	"github.com/custos-eu/custos/keysvc/client"
)

// Environment variables of the S3 targets: the policy names no secret, so
// every S3 target reads its credentials from these (and signs for
// envS3Region, default us-east-1).
const (
	envS3AccessKey = "CUSTOS_S3_ACCESS_KEY_ID"
	envS3SecretKey = "CUSTOS_S3_SECRET_ACCESS_KEY"
	envS3Region    = "CUSTOS_S3_REGION"
)

func backupUsage(w io.Writer) {
	fmt.Fprint(w, `usage: custos backup <command> [flags]

commands:
  run      --policy FILE --dataset NAME [--target NAME]   back up a dataset
           [--trust FILE]                                 (offline wrap: the pinned trust file)
  list     --policy FILE [--dataset NAME] [--target NAME] archives on the targets
  restore  ARCHIVE --to DIR --policy FILE [--target NAME] restore an archive
           [--keep-owners] [--keep-setid]                 (owners and setuid/setgid bits: not by default)
  verify   ARCHIVE --policy FILE [--target NAME] [--full] check an archive
  drill    ARCHIVE --policy FILE [--target NAME]          timed test restore, logged
           [--trust FILE]                                 (restore, verify, drill: the pinned log
                                                          the archive's transfer entry is proved in)
  prune    --policy FILE [--dataset NAME] [--target NAME] [--dry-run]
                                                          delete archives past retention (not locked ones)
  status   --policy FILE [--dataset NAME] [--target NAME] RPO and RTO per dataset; exit 1 if missed

run, restore, verify and drill show progress on stderr: --progress auto (a bar
on a terminal, log lines otherwise), bar, log or none.
API flags (--env FILE, --addr, --cert, --key, --ca) as for every command;
S3 credentials from $`+envS3AccessKey+` and $`+envS3SecretKey+`.
`)
}

// setMemoryLimit sets a soft limit on the Go heap (unless $GOMEMLIMIT does)
// of what a backup or restore holds there in buffers (archive.
// CreateHeapBytes: nothing with cgo, whose chunk buffers are C memory; or
// RestoreBufferBytes) plus 20 MiB for the rest (tar, index, age, the API
// client): the garbage collector then runs before the heap doubles, which
// keeps the peak RSS near the working set. A limit at the live heap's size
// costs CPU instead: with the chunk buffers on the Go heap, a limit of
// buffers + 12 MiB made the collector run without pause (15% more CPU).
func setMemoryLimit(heapBuffers int64) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(heapBuffers + 20<<20)
}

// wrapReceipt tells how an archive's key was wrapped and which log entry
// shows it.
func wrapReceipt(k archive.KEKRef) string {
	if k.WrapLogIndex == 0 && k.KeyLogIndex != 0 {
		return fmt.Sprintf("wrapped offline with the public key of log entry %d (checked with an inclusion proof)", k.KeyLogIndex)
	}
	return fmt.Sprintf("wrap receipt: log entry %d", k.WrapLogIndex)
}

// backupCommands are the subcommands of `custos backup`; backupUsage
// describes them.
var backupCommands = []struct {
	name string
	run  func(ctx context.Context, s stdio, args []string) error
}{
	{"run", runBackupRun},
	{"list", runBackupList},
	{"restore", runBackupRestore},
	{"verify", runBackupVerify},
	{"drill", runBackupDrill},
	{"prune", runBackupPrune},
	{"status", runBackupStatus},
}

func runBackupCmd(ctx context.Context, s stdio, args []string) error {
	var b strings.Builder
	backupUsage(&b)
	for _, c := range backupCommands {
		if len(args) > 0 && c.name == args[0] {
			return c.run(ctx, s, args[1:])
		}
	}
	if len(args) == 0 {
		return &usageError{err: errors.New("backup needs a command"), usage: b.String()}
	}
	if isHelpArg(args[0]) {
		return &helpError{usage: b.String()}
	}
	return &usageError{err: fmt.Errorf("unknown backup command %q", args[0]), usage: b.String()}
}

// backupFlags are the flags shared by the backup commands.
type backupFlags struct {
	api      *apiFlags
	policy   string
	target   string
	dataset  string
	progress string
}

// addProgressFlag adds --progress, for the commands that move an archive.
func (bf *backupFlags) addProgressFlag(fs *flag.FlagSet) {
	fs.StringVar(&bf.progress, "progress", progressAuto, "progress on stderr: auto (a bar on a terminal, log lines otherwise), bar, log or none")
}

func addBackupFlags(fs *flag.FlagSet, s stdio, withAPI bool) *backupFlags {
	fs.SetOutput(s.err)
	bf := &backupFlags{}
	if withAPI {
		bf.api = addAPIFlags(fs)
	}
	fs.StringVar(&bf.policy, "policy", "", "the policy file (TOML)")
	fs.StringVar(&bf.target, "target", "", "the target (default: the policy's only target, or every target for list, restore, verify, drill)")
	return bf
}

// parseInterspersed parses args allowing positional arguments before flags
// (`restore ARCHIVE --to DIR`) and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
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

// loadAgent loads --policy and returns the agent for it; skipped manifests are
// reported on stderr.
func (bf *backupFlags) loadAgent(s stdio) (*agent.Agent, error) {
	if bf.policy == "" {
		return nil, usagef("--policy FILE is required")
	}
	p, err := policy.Load(bf.policy)
	if err != nil {
		return nil, err
	}
	return agent.New(agent.Config{Policy: p, Open: openTarget, Warn: s.err})
}

// progressOf returns how the agent shows progress, as --progress says (nil
// for none). An unknown mode is refused when the use case starts.
func (bf *backupFlags) progressOf(s stdio) agent.Progress {
	if bf.progress == progressNone {
		return nil
	}
	return func(op string, total int64, attrs ...any) (*atomic.Int64, func(error), error) {
		mode, err := progressModeOf(bf.progress, s.err)
		if err != nil {
			return nil, nil, err
		}
		p := startProgress(s.err, mode, op, total, attrs...)
		return &p.Done, p.Stop, nil
	}
}

// openTarget opens a policy target.
func openTarget(ctx context.Context, t *policy.Target) (target.Target, error) {
	switch t.Kind {
	case policy.KindLocal:
		return target.NewLocal(t.Path)
	case policy.KindS3:
		region := os.Getenv(envS3Region)
		if region == "" {
			region = "us-east-1"
		}
		st, err := s3.New(s3.Config{
			Endpoint:     t.Endpoint,
			Region:       region,
			Bucket:       t.Bucket,
			Prefix:       t.Prefix,
			AccessKeyEnv: envS3AccessKey,
			SecretKeyEnv: envS3SecretKey,
		})
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", t.Name, err)
		}
		if err := st.Check(ctx); err != nil {
			return nil, fmt.Errorf("target %q: %w", t.Name, err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("target %q: unknown kind %q", t.Name, t.Kind)
}

func closeTarget(t target.Target) {
	if c, ok := t.(io.Closer); ok {
		c.Close()
	}
}

// parseListing parses the flags of a command that lists archives (no
// positionals; --dataset is registered by the caller) and lists the
// archives of --dataset, or all, on the targets (--target, or all). With
// known, a --dataset the policy does not name is refused first.
func (bf *backupFlags) parseListing(ctx context.Context, s stdio, fs *flag.FlagSet, args []string, known bool) (*agent.Agent, []string, []agent.Listed, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, nil, nil, err
	}
	ag, err := bf.loadAgent(s)
	if err != nil {
		return nil, nil, nil, err
	}
	names, err := ag.Targets(bf.target)
	if err != nil {
		return nil, nil, nil, err
	}
	if _, ok := ag.Policy().Dataset(bf.dataset); known && bf.dataset != "" && !ok {
		return nil, nil, nil, fmt.Errorf("the policy names no dataset %q", bf.dataset)
	}
	all, err := ag.List(ctx, names, bf.dataset)
	if err != nil {
		return nil, nil, nil, err
	}
	return ag, names, all, nil
}

func bkMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func bkRate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MB/s", float64(n)/1e6/d.Seconds())
}

// ---- run ----

func runBackupRun(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("backup run", flag.ContinueOnError)
	bf := addBackupFlags(fs, s, true)
	fs.StringVar(&bf.dataset, "dataset", "", "the dataset to back up (required)")
	bf.addProgressFlag(fs)
	var trustPath string
	fs.StringVar(&trustPath, "trust", "", "the trust file (made by custos audit checkpoint) that checks the kek's public key for a dataset with wrap = \"offline\" (default $"+envTrust+")")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	ag, err := bf.loadAgent(s)
	if err != nil {
		return err
	}
	if bf.dataset == "" {
		return usagef("--dataset NAME is required")
	}
	// Before any byte leaves: may this dataset go there?
	plan, err := ag.Plan(bf.dataset, bf.target)
	if err != nil {
		return err
	}
	c, err := bf.api.client()
	if err != nil {
		return err
	}
	defer c.Close()
	t, err := openTarget(ctx, plan.Target)
	if err != nil {
		return err
	}
	defer closeTarget(t)
	trust, err := offlineTrust(plan.Dataset, trustPath)
	if err != nil {
		return err
	}
	setMemoryLimit(archive.CreateHeapBytes(archive.DefaultChunkSize, runtime.GOMAXPROCS(0)))
	res, err := ag.Run(ctx, agent.RunRequest{Plan: plan, Target: t, Cluster: c, Keys: offlineKeySource(c), Trust: trust, Progress: bf.progressOf(s)})
	if err != nil {
		return err
	}

	m, ds, pt := res.Manifest, plan.Dataset, plan.Target
	ratio := 0.0
	if m.Archive.Size > 0 {
		ratio = float64(m.Stats.TarBytes) / float64(m.Archive.Size)
	}
	w := s.out
	fmt.Fprintf(w, "archive    %s\n", m.ArchiveID)
	fmt.Fprintf(w, "dataset    %s (%s, %s)\n", ds.Name, ds.Classification, ds.Residency)
	fmt.Fprintf(w, "target     %s (%s, region %s, jurisdiction %s)\n", pt.Name, pt.Kind, pt.Region, pt.Jurisdiction)
	fmt.Fprintf(w, "policy     %s\n", plan.Decision.Why)
	fmt.Fprintf(w, "content    %d files, %d dirs, %d symlinks, %s\n", m.Stats.Files, m.Stats.Dirs, m.Stats.Symlinks, bkMiB(m.Stats.FileBytes))
	fmt.Fprintf(w, "archive    %s (ratio %.2f), index %s\n", bkMiB(m.Archive.Size), ratio, bkMiB(m.Index.Size))
	fmt.Fprintf(w, "sha256     %s\n", m.Archive.SHA256)
	fmt.Fprintf(w, "time       %s, %s\n", res.Elapsed.Round(time.Millisecond), bkRate(m.Stats.FileBytes, res.Elapsed))
	fmt.Fprintf(w, "kek        %s version %d, %s\n", m.KEK.ID, m.KEK.Version, wrapReceipt(m.KEK))
	fmt.Fprintf(w, "transfer   receipt: log entry %d\n", m.Receipt.LogIndex)
	if res.Retention != nil {
		fmt.Fprintf(w, "locked     %s until %s\n", res.Retention.Mode, res.Retention.Until.UTC().Format(time.RFC3339))
	}
	if res.LegalHold {
		fmt.Fprintln(w, "legal hold on")
	}
	return nil
}

// ---- list ----

func runBackupList(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("backup list", flag.ContinueOnError)
	bf := addBackupFlags(fs, s, false)
	fs.StringVar(&bf.dataset, "dataset", "", "only this dataset")
	format := addFormatFlag(fs)
	_, _, all, err := bf.parseListing(ctx, s, fs, args, false)
	if err != nil {
		return err
	}
	if format.json {
		out := struct {
			Archives []archiveJSON `json:"archives"`
		}{Archives: []archiveJSON{}}
		for _, a := range all {
			m := a.Manifest
			aj := archiveJSON{ArchiveID: m.ArchiveID, Dataset: m.Dataset, Target: a.Target, Created: m.Created.UTC(),
				ContentBytes: m.Stats.FileBytes, StoredBytes: m.Archive.Size + m.Index.Size,
				WrapLogIndex: m.KEK.WrapLogIndex, KeyLogIndex: m.KEK.KeyLogIndex}
			if m.Receipt != nil {
				aj.TransferLogIndex = m.Receipt.LogIndex
			}
			out.Archives = append(out.Archives, aj)
		}
		return printJSON(s.out, out)
	}
	if len(all) == 0 {
		fmt.Fprintln(s.out, "no archives")
		return nil
	}
	fmt.Fprintf(s.out, "%-34s  %-12s  %-10s  %-20s  %10s  %10s  %s\n", "ARCHIVE", "DATASET", "TARGET", "CREATED", "CONTENT", "STORED", "RECEIPTS")
	for _, a := range all {
		m := a.Manifest
		rc := fmt.Sprintf("wrap %d", m.KEK.WrapLogIndex)
		if m.KEK.WrapLogIndex == 0 && m.KEK.KeyLogIndex != 0 {
			rc = fmt.Sprintf("offline wrap, key %d", m.KEK.KeyLogIndex)
		}
		if m.Receipt != nil {
			rc += fmt.Sprintf(", transfer %d", m.Receipt.LogIndex)
		}
		fmt.Fprintf(s.out, "%-34s  %-12s  %-10s  %-20s  %10s  %10s  %s\n", m.ArchiveID, m.Dataset, a.Target,
			m.Created.UTC().Format("2006-01-02T15:04:05Z"), bkMiB(m.Stats.FileBytes), bkMiB(m.Archive.Size+m.Index.Size), rc)
	}
	return nil
}

// archiveJSON is an archive as backup list --format json prints it. The
// wrap receipt is wrap_log_index, or, for a key wrapped offline,
// key_log_index (the entry of the KEK version's public key).
type archiveJSON struct {
	ArchiveID        string    `json:"archive_id"`
	Dataset          string    `json:"dataset"`
	Target           string    `json:"target"`
	Created          time.Time `json:"created"`
	ContentBytes     int64     `json:"content_bytes"`
	StoredBytes      int64     `json:"stored_bytes"`
	WrapLogIndex     uint64    `json:"wrap_log_index,omitempty"`
	KeyLogIndex      uint64    `json:"key_log_index,omitempty"`
	TransferLogIndex uint64    `json:"transfer_log_index,omitempty"`
}

// ---- restore, verify, drill ----

// archiveCmd is a command that takes an ARCHIVE: the agent, the archive
// found and the API client.
type archiveCmd struct {
	ag     *agent.Agent
	a      *agent.Archive
	client *client.Client
}

func (a *archiveCmd) close() {
	a.a.Close()
	if a.client != nil {
		a.client.Close()
	}
}

// openArchiveCmd parses the command line, finds the archive and proves its
// manifest against the log (Archive.Prove) before anything else is read:
// the restore, verify and drill commands share it. When the proof fails it
// returns the error with the command still open (a drill records the
// refusal); the caller closes it.
func openArchiveCmd(ctx context.Context, s stdio, fs *flag.FlagSet, bf *backupFlags, args []string) (*archiveCmd, error) {
	var trustPath string
	fs.StringVar(&trustPath, "trust", "", "the trust file (made by custos audit checkpoint) to check the archive's transfer entry against (default $"+envTrust+"; without one, the node keys the cluster serves)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != 1 {
		return nil, errors.New("give exactly one ARCHIVE id (see custos backup list)")
	}
	ag, err := bf.loadAgent(s)
	if err != nil {
		return nil, err
	}
	names, err := ag.Targets(bf.target)
	if err != nil {
		return nil, err
	}
	a := &archiveCmd{ag: ag}
	if a.a, err = ag.Find(ctx, names, pos[0]); err != nil {
		return nil, err
	}
	if a.client, err = bf.api.client(); err != nil {
		a.close()
		return nil, err
	}
	// On failure a stays open: a drill records the refusal.
	trust, how, err := transferTrust(trustPath)
	if err != nil {
		return a, a.a.Refused(err)
	}
	proof, err := a.a.Prove(ctx, a.client, trust)
	if err != nil {
		return a, err
	}
	fmt.Fprintf(s.out, "log        %s\n", describeTransfer(proof, how))
	return a, nil
}

func runBackupRestore(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("backup restore", flag.ContinueOnError)
	bf := addBackupFlags(fs, s, true)
	var to string
	var opts archive.RestoreOptions
	fs.StringVar(&to, "to", "", "the directory to restore into (required; created if missing; existing names are not overwritten)")
	fs.BoolVar(&opts.KeepOwners, "keep-owners", false, "restore each file's owner and group (numeric ids; needs root)")
	fs.BoolVar(&opts.KeepSetID, "keep-setid", false, "restore setuid and setgid bits")
	bf.addProgressFlag(fs)
	a, err := openArchiveCmd(ctx, s, fs, bf, args)
	if a != nil {
		defer a.close()
	}
	if err != nil {
		return err
	}
	if to == "" {
		return usagef("--to DIR is required")
	}
	setMemoryLimit(archive.RestoreBufferBytes(runtime.GOMAXPROCS(0)))
	if os.Geteuid() == 0 && (!opts.KeepOwners || !opts.KeepSetID) {
		fmt.Fprintln(s.out, "note       running as root: files belong to root and setuid/setgid bits are dropped (--keep-owners, --keep-setid restore them)")
	}
	res, err := a.a.Restore(ctx, a.client, to, opts, bf.progressOf(s))
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "restored   %s from %q into %s\n", a.a.Manifest.ArchiveID, a.a.Target, to)
	fmt.Fprintf(s.out, "content    %d files, %d dirs, %d symlinks, %s, every file hash verified\n", res.Files, res.Dirs, res.Symlinks, bkMiB(res.Bytes))
	fmt.Fprintf(s.out, "time       %s, %s\n", res.Duration.Round(time.Millisecond), bkRate(res.Bytes, res.Duration))
	if res.Unwrap != nil {
		fmt.Fprintf(s.out, "unwrap     receipt: log entry %d\n", res.Unwrap.LogIndex)
	}
	return nil
}

func runBackupVerify(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("backup verify", flag.ContinueOnError)
	bf := addBackupFlags(fs, s, true)
	var full bool
	fs.BoolVar(&full, "full", false, "also decrypt (unwrap through the API, logged) and check every file's hash; writes nothing")
	bf.addProgressFlag(fs)
	a, err := openArchiveCmd(ctx, s, fs, bf, args)
	if a != nil {
		defer a.close()
	}
	if err != nil {
		return err
	}
	setMemoryLimit(archive.RestoreBufferBytes(runtime.GOMAXPROCS(0)))
	res, err := a.a.Verify(ctx, a.client, full, bf.progressOf(s))
	if err != nil {
		return err
	}
	m := a.a.Manifest
	if !full {
		fmt.Fprintf(s.out, "ok         %s on %q: archive (%s) and index match the SHA-256 the log records (not decrypted)\n", m.ArchiveID, a.a.Target, bkMiB(m.Archive.Size))
		return nil
	}
	fmt.Fprintf(s.out, "ok         %s on %q: decrypted, %d entries, %d files (%s) match the index's hashes, ciphertexts match the log's\n",
		m.ArchiveID, a.a.Target, res.Entries, res.Files, bkMiB(res.Bytes))
	fmt.Fprintf(s.out, "time       %s, %s\n", res.Duration.Round(time.Millisecond), bkRate(res.Bytes, res.Duration))
	return nil
}

func runBackupDrill(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("backup drill", flag.ContinueOnError)
	bf := addBackupFlags(fs, s, true)
	bf.addProgressFlag(fs)
	a, err := openArchiveCmd(ctx, s, fs, bf, args)
	if a != nil {
		defer a.close()
	}
	// An archive refused by its proof is a failed drill, recorded.
	if err != nil && (a == nil || a.client == nil || !errors.Is(err, archive.ErrIntegrity)) {
		return err
	}
	setMemoryLimit(archive.RestoreBufferBytes(runtime.GOMAXPROCS(0)))
	d, err := a.ag.Drill(ctx, a.client, a.a, bf.progressOf(s))
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "drill      %s from %q: %s\n", a.a.Manifest.ArchiveID, a.a.Target, d.Result)
	fmt.Fprintf(s.out, "content    %d files, %d dirs, %d symlinks, %s, every file hash verified\n", d.Restore.Files, d.Restore.Dirs, d.Restore.Symlinks, bkMiB(d.Restore.Bytes))
	rtoText := "no RTO set"
	if d.RTO > 0 {
		rtoText = "RTO " + d.RTO.String()
	}
	fmt.Fprintf(s.out, "restore    %.3fs (%s), %s\n", d.Elapsed.Seconds(), rtoText, bkRate(d.Restore.Bytes, d.Elapsed))
	fmt.Fprintf(s.out, "recorded   log entry %d\n", d.LogIndex)
	if !d.OK() {
		return fmt.Errorf("drill missed its RTO: %s", d.Result)
	}
	return nil
}

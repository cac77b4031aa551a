package main

// `custos backup run | list | restore | verify | drill`: the backup agent.
//
// An archive is three objects on a target, under the dataset's name:
//
//	DATASET/ARCHIVE.age            the age file of tar → zstd
//	DATASET/ARCHIVE.index.age      the encrypted index (names, per-file hashes)
//	DATASET/ARCHIVE.manifest.json  the clear manifest (ids, sizes, checksums,
//	                               policy decision, transfer receipt)
//
// The manifest is uploaded last: an archive without one is incomplete and
// is not listed. Nothing is kept locally: list reads the targets.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/backup/custosage"
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

// Object name suffixes.
const (
	suffixArchive  = ".age"
	suffixIndex    = ".index.age"
	suffixManifest = ".manifest.json"
)

// maxManifest bounds a manifest read from a target.
const maxManifest = 1 << 20

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

func runBackupCmd(ctx context.Context, s stdio, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		backupUsage(s.err)
		return flag.ErrHelp
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "run":
		return runBackupRun(ctx, s, rest)
	case "list":
		return runBackupList(ctx, s, rest)
	case "restore":
		return runBackupRestore(ctx, s, rest)
	case "verify":
		return runBackupVerify(ctx, s, rest)
	case "drill":
		return runBackupDrill(ctx, s, rest)
	case "prune":
		return runBackupPrune(ctx, s, rest)
	case "status":
		return runBackupStatus(ctx, s, rest)
	}
	backupUsage(s.err)
	return fmt.Errorf("unknown backup command %q", sub)
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

// startProgress starts reporting op on stderr as --progress says.
func (bf *backupFlags) startProgress(s stdio, op string, total int64, attrs ...any) (*progress, error) {
	mode, err := progressModeOf(bf.progress, s.err)
	if err != nil {
		return nil, err
	}
	return startProgress(s.err, mode, op, total, attrs...), nil
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
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func (bf *backupFlags) load() (*policy.Policy, error) {
	if bf.policy == "" {
		return nil, errors.New("--policy FILE is required")
	}
	return policy.Load(bf.policy)
}

// targetNames are the targets a command looks at: --target, or all.
func (bf *backupFlags) targetNames(p *policy.Policy) ([]string, error) {
	if bf.target != "" {
		if _, ok := p.Target(bf.target); !ok {
			return nil, fmt.Errorf("the policy names no target %q", bf.target)
		}
		return []string{bf.target}, nil
	}
	var names []string
	for _, t := range p.Targets {
		names = append(names, t.Name)
	}
	return names, nil
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

func objectNames(dataset, id string) (arc, idx, man string) {
	base := dataset + "/" + id
	return base + suffixArchive, base + suffixIndex, base + suffixManifest
}

// readManifest reads and parses a manifest object.
func readManifest(ctx context.Context, t target.Target, name string) (*archive.Manifest, error) {
	rc, _, err := t.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifest+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("%s: manifest over %d bytes", name, maxManifest)
	}
	m, err := archive.ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}

// listed is one archive found on a target.
type listed struct {
	target string
	m      *archive.Manifest
}

// parseListing parses the flags of a command that lists archives (no
// positionals; --dataset is registered by the caller) and lists the
// archives of --dataset, or all, on the targets (--target, or all). With
// known, a --dataset the policy does not name is refused first.
func (bf *backupFlags) parseListing(ctx context.Context, s stdio, fs *flag.FlagSet, args []string, known bool) (*policy.Policy, []string, []listed, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, nil, nil, err
	}
	p, err := bf.load()
	if err != nil {
		return nil, nil, nil, err
	}
	names, err := bf.targetNames(p)
	if err != nil {
		return nil, nil, nil, err
	}
	if _, ok := p.Dataset(bf.dataset); known && bf.dataset != "" && !ok {
		return nil, nil, nil, fmt.Errorf("the policy names no dataset %q", bf.dataset)
	}
	all, err := listArchives(ctx, p, names, bf.dataset, s.err)
	if err != nil {
		return nil, nil, nil, err
	}
	return p, names, all, nil
}

// listArchives lists the complete archives (those with a manifest) on the
// named targets, oldest first. Unreadable manifests are reported on warn.
func listArchives(ctx context.Context, p *policy.Policy, names []string, dataset string, warn io.Writer) ([]listed, error) {
	var out []listed
	for _, name := range names {
		pt, _ := p.Target(name)
		t, err := openTarget(ctx, pt)
		if err != nil {
			return nil, err
		}
		prefix := ""
		if dataset != "" {
			prefix = dataset + "/"
		}
		objs, err := t.List(ctx, prefix)
		if err != nil {
			closeTarget(t)
			return nil, fmt.Errorf("target %q: %w", name, err)
		}
		for _, o := range objs {
			if !strings.HasSuffix(o.Name, suffixManifest) {
				continue
			}
			m, err := readManifest(ctx, t, o.Name)
			if err != nil {
				fmt.Fprintf(warn, "warning: target %q: %v\n", name, err)
				continue
			}
			if _, _, want := objectNames(m.Dataset, m.ArchiveID); want != o.Name {
				fmt.Fprintf(warn, "warning: target %q: %s holds the manifest of %s/%s\n", name, o.Name, m.Dataset, m.ArchiveID)
				continue
			}
			out = append(out, listed{target: name, m: m})
		}
		closeTarget(t)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ci, cj := out[i].m.Created, out[j].m.Created; !ci.Equal(cj) {
			return ci.Before(cj)
		}
		return out[i].m.ArchiveID < out[j].m.ArchiveID
	})
	return out, nil
}

// findArchive finds archive id on the named targets: the first target
// holding its manifest.
func findArchive(ctx context.Context, p *policy.Policy, names []string, id string) (target.Target, string, *archive.Manifest, error) {
	if !archive.ValidID(id) {
		return nil, "", nil, fmt.Errorf("%q is not an archive id", id)
	}
	for _, name := range names {
		pt, _ := p.Target(name)
		t, err := openTarget(ctx, pt)
		if err != nil {
			return nil, "", nil, err
		}
		objs, err := t.List(ctx, "")
		if err != nil {
			closeTarget(t)
			return nil, "", nil, fmt.Errorf("target %q: %w", name, err)
		}
		for _, o := range objs {
			if strings.HasSuffix(o.Name, "/"+id+suffixManifest) {
				m, err := readManifest(ctx, t, o.Name)
				if err != nil {
					closeTarget(t)
					return nil, "", nil, fmt.Errorf("target %q: %w", name, err)
				}
				if m.ArchiveID != id {
					closeTarget(t)
					return nil, "", nil, fmt.Errorf("target %q: %s describes archive %s: %w", name, o.Name, m.ArchiveID, archive.ErrIntegrity)
				}
				return t, name, m, nil
			}
		}
		closeTarget(t)
	}
	return nil, "", nil, fmt.Errorf("archive %s not found on target(s) %s", id, strings.Join(names, ", "))
}

// openParts opens an archive's archive and index objects.
func openParts(ctx context.Context, t target.Target, m *archive.Manifest) (arc, idx io.ReadCloser, err error) {
	an, in, _ := objectNames(m.Dataset, m.ArchiveID)
	arc, _, err = t.Get(ctx, an)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", an, err)
	}
	idx, _, err = t.Get(ctx, in)
	if err != nil {
		arc.Close()
		return nil, nil, fmt.Errorf("%s: %w", in, err)
	}
	return arc, idx, nil
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
	p, err := bf.load()
	if err != nil {
		return err
	}
	if bf.dataset == "" {
		return errors.New("--dataset NAME is required")
	}
	ds, ok := p.Dataset(bf.dataset)
	if !ok {
		// Decide gives the policy's refusal for an unknown dataset.
		_, err := p.Decide(bf.dataset, bf.target)
		return refusal(err)
	}
	tname := bf.target
	if tname == "" {
		if len(p.Targets) != 1 {
			return fmt.Errorf("the policy names %d targets: choose one with --target", len(p.Targets))
		}
		tname = p.Targets[0].Name
	}
	// Before any byte leaves: may this dataset go there?
	dec, err := p.Decide(ds.Name, tname)
	if err != nil {
		return refusal(err)
	}
	pt, _ := p.Target(tname)
	sources := make([]string, len(ds.Paths))
	for i, path := range ds.Paths {
		abs, err := filepath.Abs(path)
		if err != nil {
			return err
		}
		sources[i] = filepath.Clean(abs)
	}

	c, err := bf.api.client()
	if err != nil {
		return err
	}
	defer c.Close()
	t, err := openTarget(ctx, pt)
	if err != nil {
		return err
	}
	defer closeTarget(t)

	start := time.Now()
	id := archive.NewID(start)
	rcp, wrapMode, keyLogIndex, err := backupRecipient(ctx, c, ds, trustPath, archive.WrapContext(ds.Name, ds.Classification, id))
	if err != nil {
		return err
	}
	an, in, mn := objectNames(ds.Name, id)
	// The archive's SHA-256 is computed once, while it is made; a remote
	// store also verifies per-part SHA-256 checksums end to end. A local
	// directory gets the same bytes from this process, so it is not asked
	// to hash them again.
	put := target.PutOptions{ChecksumSHA256: pt.Kind == policy.KindS3, Metadata: map[string]string{"custos-archive": id}}
	if pt.Kind == policy.KindS3 {
		if pt.ObjectLock != nil {
			put.Retention = &target.Retention{Mode: target.RetentionMode(pt.ObjectLock.Mode), Until: start.Add(pt.ObjectLock.Retention.D())}
		}
		put.LegalHold = pt.LegalHold
	}

	// The index goes to a temporary file (it is uploaded after the
	// archive); the archive streams straight to the target.
	ixf, err := os.CreateTemp("", "custos-index-*.age")
	if err != nil {
		return err
	}
	defer os.Remove(ixf.Name())
	defer ixf.Close()

	setMemoryLimit(archive.CreateHeapBytes(archive.DefaultChunkSize, runtime.GOMAXPROCS(0)))
	var total int64
	if bf.progress != progressNone {
		total = sourceBytes(sources) // for the ETA
	}
	prog, err := bf.startProgress(s, "backup", total, "dataset", ds.Name, "archive", id, "target", tname)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	type putResult struct {
		info target.ObjectInfo
		err  error
	}
	done := make(chan putResult, 1)
	go func() {
		info, err := t.Put(ctx, an, pr, put)
		pr.CloseWithError(err) // unblocks Create if the upload failed
		done <- putResult{info, err}
	}()
	m, cerr := archive.Create(ctx, sources, pw, ixf, archive.CreateOptions{
		ArchiveID: id, Dataset: ds.Name, Classification: ds.Classification,
		Recipient: rcp, Policy: &dec, Progress: &prog.Done,
	})
	if cerr != nil {
		pw.CloseWithError(cerr)
	} else {
		pw.Close()
	}
	res := <-done
	prog.Stop(errors.Join(cerr, res.err))
	if cerr != nil {
		if res.err == nil {
			t.Delete(ctx, an) // best effort: a locked object stays, without manifest
		}
		return fmt.Errorf("creating the archive: %w", cerr)
	}
	if res.err != nil {
		return fmt.Errorf("uploading %s to %q: %w", an, tname, res.err)
	}
	if res.info.SHA256 != "" && res.info.SHA256 != m.Archive.SHA256 {
		return fmt.Errorf("uploading %s: the target stored SHA-256 %s, the archive is %s", an, res.info.SHA256, m.Archive.SHA256)
	}
	if _, err := ixf.Seek(0, io.SeekStart); err != nil {
		return err
	}
	ip := put
	ip.Size = m.Index.Size
	if info, err := t.Put(ctx, in, ixf, ip); err != nil {
		return fmt.Errorf("uploading %s to %q: %w", in, tname, err)
	} else if info.SHA256 != "" && info.SHA256 != m.Index.SHA256 {
		return fmt.Errorf("uploading %s: the target stored SHA-256 %s, the index is %s", in, info.SHA256, m.Index.SHA256)
	}
	elapsed := time.Since(start)

	// Attest the transfer: the entry binds both ciphertexts and the
	// manifest, and is what a restore trusts; its receipt goes in the
	// manifest.
	m.KEK.KeyLogIndex = keyLogIndex // offline: the entry that proved the key
	details, err := m.TransferDetails()
	if err != nil {
		return err
	}
	details["target"], details["region"], details["decision"], details["wrap"] = tname, pt.Region, dec.Why, wrapMode
	logIndex, err := c.Attest(ctx, client.AttestRequest{
		Type: client.AttestTransfer, KEKID: m.KEK.ID, KEKVersion: m.KEK.Version, Details: details,
	})
	if err != nil {
		return fmt.Errorf("attesting the transfer (archive and index are on %q, without manifest): %w", tname, err)
	}
	m.Receipt = &archive.Receipt{LogIndex: logIndex, Target: tname, Object: an}
	mb, err := m.Marshal()
	if err != nil {
		return err
	}
	mp := put
	mp.Size = int64(len(mb))
	if _, err := t.Put(ctx, mn, strings.NewReader(string(mb)), mp); err != nil {
		return fmt.Errorf("uploading %s to %q: %w", mn, tname, err)
	}

	ratio := 0.0
	if m.Archive.Size > 0 {
		ratio = float64(m.Stats.TarBytes) / float64(m.Archive.Size)
	}
	w := s.out
	fmt.Fprintf(w, "archive    %s\n", id)
	fmt.Fprintf(w, "dataset    %s (%s, %s)\n", ds.Name, ds.Classification, ds.Residency)
	fmt.Fprintf(w, "target     %s (%s, region %s, jurisdiction %s)\n", tname, pt.Kind, pt.Region, pt.Jurisdiction)
	fmt.Fprintf(w, "policy     %s\n", dec.Why)
	fmt.Fprintf(w, "content    %d files, %d dirs, %d symlinks, %s\n", m.Stats.Files, m.Stats.Dirs, m.Stats.Symlinks, bkMiB(m.Stats.FileBytes))
	fmt.Fprintf(w, "archive    %s (ratio %.2f), index %s\n", bkMiB(m.Archive.Size), ratio, bkMiB(m.Index.Size))
	fmt.Fprintf(w, "sha256     %s\n", m.Archive.SHA256)
	fmt.Fprintf(w, "time       %s, %s\n", elapsed.Round(time.Millisecond), bkRate(m.Stats.FileBytes, elapsed))
	fmt.Fprintf(w, "kek        %s version %d, %s\n", m.KEK.ID, m.KEK.Version, wrapReceipt(m.KEK))
	fmt.Fprintf(w, "transfer   receipt: log entry %d\n", logIndex)
	if put.Retention != nil {
		fmt.Fprintf(w, "locked     %s until %s\n", put.Retention.Mode, put.Retention.Until.UTC().Format(time.RFC3339))
	}
	if put.LegalHold {
		fmt.Fprintln(w, "legal hold on")
	}
	return nil
}

// refusal formats a policy refusal.
func refusal(err error) error {
	var re *policy.RefusedError
	if errors.As(err, &re) {
		return fmt.Errorf("refused by policy (%s): %s; nothing was sent", re.Code, re.Decision.Why)
	}
	return err
}

// ---- list ----

func runBackupList(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("backup list", flag.ContinueOnError)
	bf := addBackupFlags(fs, s, false)
	fs.StringVar(&bf.dataset, "dataset", "", "only this dataset")
	_, _, all, err := bf.parseListing(ctx, s, fs, args, false)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		fmt.Fprintln(s.out, "no archives")
		return nil
	}
	fmt.Fprintf(s.out, "%-34s  %-12s  %-10s  %-20s  %10s  %10s  %s\n", "ARCHIVE", "DATASET", "TARGET", "CREATED", "CONTENT", "STORED", "RECEIPTS")
	for _, a := range all {
		rc := fmt.Sprintf("wrap %d", a.m.KEK.WrapLogIndex)
		if a.m.KEK.WrapLogIndex == 0 && a.m.KEK.KeyLogIndex != 0 {
			rc = fmt.Sprintf("offline wrap, key %d", a.m.KEK.KeyLogIndex)
		}
		if a.m.Receipt != nil {
			rc += fmt.Sprintf(", transfer %d", a.m.Receipt.LogIndex)
		}
		fmt.Fprintf(s.out, "%-34s  %-12s  %-10s  %-20s  %10s  %10s  %s\n", a.m.ArchiveID, a.m.Dataset, a.target,
			a.m.Created.UTC().Format("2006-01-02T15:04:05Z"), bkMiB(a.m.Stats.FileBytes), bkMiB(a.m.Archive.Size+a.m.Index.Size), rc)
	}
	return nil
}

// ---- restore, verify, drill ----

// archiveCmd parses the flags of the commands that take an ARCHIVE, finds
// it and returns the API client (nil when needAPI is false).
type archiveCmd struct {
	p      *policy.Policy
	t      target.Target
	tname  string
	m      *archive.Manifest
	client *client.Client
	proof  *provedTransfer
}

func (a *archiveCmd) close() {
	if a.t != nil {
		closeTarget(a.t)
	}
	if a.client != nil {
		a.client.Close()
	}
}

// openArchiveCmd parses the command line, finds the archive and proves its
// manifest against the log (proveTransfer) before anything else is read:
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
	p, err := bf.load()
	if err != nil {
		return nil, err
	}
	names, err := bf.targetNames(p)
	if err != nil {
		return nil, err
	}
	a := &archiveCmd{p: p}
	a.t, a.tname, a.m, err = findArchive(ctx, p, names, pos[0])
	if err != nil {
		return nil, err
	}
	if a.client, err = bf.api.client(); err != nil {
		a.close()
		return nil, err
	}
	if a.proof, err = proveTransfer(ctx, transferSourceOf(a.client), trustPath, a.m); err != nil {
		// a stays open: a drill records the refusal.
		return a, fmt.Errorf("%s on %q: refused before reading it (nothing was restored): %w", a.m.ArchiveID, a.tname, err)
	}
	fmt.Fprintf(s.out, "log        %s\n", a.proof.describe())
	return a, nil
}

// openParts opens the archive and index objects and starts reporting op's
// progress through the archive's ciphertext.
func (a *archiveCmd) openParts(ctx context.Context, s stdio, bf *backupFlags, op string) (arc, idx io.ReadCloser, prog *progress, err error) {
	setMemoryLimit(archive.RestoreBufferBytes(runtime.GOMAXPROCS(0)))
	if prog, err = bf.startProgress(s, op, a.m.Archive.Size, "dataset", a.m.Dataset, "archive", a.m.ArchiveID, "target", a.tname); err != nil {
		return nil, nil, nil, err
	}
	if arc, idx, err = openParts(ctx, a.t, a.m); err != nil {
		prog.Stop(err)
		return nil, nil, nil, err
	}
	return countingReadCloser{countingReader{arc, &prog.Done}, arc}, idx, prog, nil
}

type countingReadCloser struct {
	countingReader
	io.Closer
}

// sourceBytes sums the sizes of the regular files under sources (what a
// backup will read; errors are left for the backup to report).
func sourceBytes(sources []string) int64 {
	var n int64
	for _, src := range sources {
		filepath.WalkDir(src, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
	}
	return n
}

func (a *archiveCmd) identity(ctx context.Context) *custosage.Identity {
	id := custosage.NewIdentity(ctx, a.client)
	id.Expect = a.m.Expect()
	return id
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
		return errors.New("--to DIR is required")
	}
	arc, idx, prog, err := a.openParts(ctx, s, bf, "restore")
	if err != nil {
		return err
	}
	defer arc.Close()
	defer idx.Close()
	if os.Geteuid() == 0 && (!opts.KeepOwners || !opts.KeepSetID) {
		fmt.Fprintln(s.out, "note       running as root: files belong to root and setuid/setgid bits are dropped (--keep-owners, --keep-setid restore them)")
	}
	id := a.identity(ctx)
	res, err := archive.Restore(ctx, a.m, arc, idx, id, to, opts)
	prog.Stop(err)
	if err != nil {
		if strings.Contains(err.Error(), "nothing was restored") {
			return fmt.Errorf("restoring %s: %w", a.m.ArchiveID, err)
		}
		return fmt.Errorf("restoring %s: %w (nothing was restored)", a.m.ArchiveID, err)
	}
	fmt.Fprintf(s.out, "restored   %s from %q into %s\n", a.m.ArchiveID, a.tname, to)
	fmt.Fprintf(s.out, "content    %d files, %d dirs, %d symlinks, %s, every file hash verified\n", res.Files, res.Dirs, res.Symlinks, bkMiB(res.Bytes))
	fmt.Fprintf(s.out, "time       %s, %s\n", res.Duration.Round(time.Millisecond), bkRate(res.Bytes, res.Duration))
	if rc, ok := id.Receipt(); ok {
		fmt.Fprintf(s.out, "unwrap     receipt: log entry %d\n", rc.LogIndex)
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
	arc, idx, prog, err := a.openParts(ctx, s, bf, "verify")
	if err != nil {
		return err
	}
	defer arc.Close()
	defer idx.Close()
	if !full {
		err := archive.VerifyCiphertext(arc, a.m.Archive)
		prog.Stop(err)
		if err != nil {
			return fmt.Errorf("%s: archive: %w", a.m.ArchiveID, err)
		}
		if err := archive.VerifyCiphertext(idx, a.m.Index); err != nil {
			return fmt.Errorf("%s: index: %w", a.m.ArchiveID, err)
		}
		fmt.Fprintf(s.out, "ok         %s on %q: archive (%s) and index match the SHA-256 the log records (not decrypted)\n", a.m.ArchiveID, a.tname, bkMiB(a.m.Archive.Size))
		return nil
	}
	res, err := archive.Verify(ctx, a.m, arc, idx, a.identity(ctx))
	prog.Stop(err)
	if err != nil {
		return fmt.Errorf("%s: %w", a.m.ArchiveID, err)
	}
	fmt.Fprintf(s.out, "ok         %s on %q: decrypted, %d entries, %d files (%s) match the index's hashes, ciphertexts match the log's\n",
		a.m.ArchiveID, a.tname, res.Entries, res.Files, bkMiB(res.Bytes))
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
	if err != nil && (a == nil || a.client == nil || !errors.Is(err, archive.ErrIntegrity)) {
		return err
	}
	proofErr := err // the archive was refused before reading: the drill failed
	tmp, err := os.MkdirTemp("", "custos-drill-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	start := time.Now()
	res, rerr := func() (*archive.Result, error) {
		if proofErr != nil {
			return nil, proofErr
		}
		arc, idx, prog, err := a.openParts(ctx, s, bf, "drill")
		if err != nil {
			return nil, err
		}
		defer arc.Close()
		defer idx.Close()
		res, err := archive.Restore(ctx, a.m, arc, idx, a.identity(ctx), filepath.Join(tmp, "restore"), archive.RestoreOptions{})
		prog.Stop(err)
		return res, err
	}()
	elapsed := time.Since(start)
	result := "ok"
	if rerr != nil {
		// The log gets the kind of failure, not the error text, which
		// may name files (names travel only encrypted).
		result = "failed: restore error"
		switch {
		case a.proof == nil:
			result = "failed: not proved against the log"
		case errors.Is(rerr, archive.ErrIntegrity):
			result = "failed: integrity check"
		}
	}
	var rto time.Duration
	if ds, ok := a.p.Dataset(a.m.Dataset); ok {
		rto = ds.RTO.D()
	}
	if rerr == nil && rto > 0 && elapsed > rto {
		result = fmt.Sprintf("restored, but in %s, over the RTO of %s", elapsed.Round(time.Second), rto)
	}
	details := map[string]string{
		"archive":         a.m.ArchiveID,
		"dataset":         a.m.Dataset,
		"result":          result,
		"restore_seconds": fmt.Sprintf("%.3f", elapsed.Seconds()),
		"target":          a.tname,
	}
	if rto > 0 {
		// The RTO the drill was measured against, so that an auditor
		// reading the log alone can judge it.
		details["rto_seconds"] = strconv.FormatFloat(rto.Seconds(), 'f', -1, 64)
	}
	logIndex, aerr := a.client.Attest(ctx, client.AttestRequest{
		Type: client.AttestDrill, KEKID: a.m.KEK.ID, KEKVersion: a.m.KEK.Version, Details: details,
	})
	if rerr != nil {
		if aerr != nil {
			return fmt.Errorf("drill of %s failed: %w (and recording it failed: %v)", a.m.ArchiveID, rerr, aerr)
		}
		return fmt.Errorf("drill of %s failed (recorded in log entry %d): %w", a.m.ArchiveID, logIndex, rerr)
	}
	if aerr != nil {
		return fmt.Errorf("drill of %s restored but recording it failed: %w", a.m.ArchiveID, aerr)
	}
	fmt.Fprintf(s.out, "drill      %s from %q: %s\n", a.m.ArchiveID, a.tname, result)
	fmt.Fprintf(s.out, "content    %d files, %d dirs, %d symlinks, %s, every file hash verified\n", res.Files, res.Dirs, res.Symlinks, bkMiB(res.Bytes))
	rtoText := "no RTO set"
	if rto > 0 {
		rtoText = "RTO " + rto.String()
	}
	fmt.Fprintf(s.out, "restore    %.3fs (%s), %s\n", elapsed.Seconds(), rtoText, bkRate(res.Bytes, elapsed))
	fmt.Fprintf(s.out, "recorded   log entry %d\n", logIndex)
	if result != "ok" {
		return fmt.Errorf("drill missed its RTO: %s", result)
	}
	return nil
}

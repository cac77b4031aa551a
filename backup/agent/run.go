package agent

// Run: a dataset becomes an archive on a target. The policy decides first
// (Plan), before any byte leaves; then the archive streams to the target,
// the index follows, the transfer is attested in the log and the manifest,
// with the entry's receipt, is uploaded last.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/backup/policy"
	"github.com/custos-eu/custos/backup/target"
	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// Plan is a backup the policy allows.
type Plan struct {
	Dataset  *policy.Dataset
	Target   *policy.Target
	Decision policy.Decision // why the dataset may go to the target
	Sources  []string        // the dataset's paths, absolute and clean
}

// Plan asks the policy whether dataset may go to the target named
// targetName (the policy's only target when empty). A refusal reads
// "refused by policy (code): why; nothing was sent".
func (a *Agent) Plan(dataset, targetName string) (*Plan, error) {
	ds, ok := a.p.Dataset(dataset)
	if !ok {
		// Decide gives the policy's refusal for an unknown dataset.
		_, err := a.p.Decide(dataset, targetName)
		return nil, refusal(err)
	}
	if targetName == "" {
		if len(a.p.Targets) != 1 {
			return nil, fmt.Errorf("the policy names %d targets: choose one with --target", len(a.p.Targets))
		}
		targetName = a.p.Targets[0].Name
	}
	dec, err := a.p.Decide(ds.Name, targetName)
	if err != nil {
		return nil, refusal(err)
	}
	pt, _ := a.p.Target(targetName)
	sources := make([]string, len(ds.Paths))
	for i, path := range ds.Paths {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		sources[i] = filepath.Clean(abs)
	}
	return &Plan{Dataset: ds, Target: pt, Decision: dec, Sources: sources}, nil
}

// refusal formats a policy refusal.
func refusal(err error) error {
	var re *policy.RefusedError
	if errors.As(err, &re) {
		return fmt.Errorf("refused by policy (%s): %s; nothing was sent", re.Code, re.Decision.Why)
	}
	return err
}

// RunRequest is one backup.
type RunRequest struct {
	Plan *Plan
	// Target is the plan's target, opened.
	Target target.Target
	// Cluster wraps (online), serves the KEK's key (offline) and attests
	// the transfer.
	Cluster RunCluster
	// Keys, if set, serves the KEK's key and its proofs for an offline
	// wrap instead of Cluster.
	Keys KEKKeySource
	// Trust is the pinned trust an offline wrap proves the KEK's key
	// with (required then; unused online).
	Trust    *audit.Trust
	Progress Progress
}

// RunResult is an archive made and uploaded.
type RunResult struct {
	Manifest  *archive.Manifest // as uploaded, with the transfer's receipt
	Elapsed   time.Duration     // making and uploading archive and index
	Retention *target.Retention // the store's lock on the objects, if any
	LegalHold bool
}

// Run backs up the plan's dataset to its target. Online, the archive's
// file key is wrapped through the cluster (logged); offline, with the
// newest active KEK version's public key once ProveKEKKey has checked it
// with req.Trust. An archive left without manifest (a failed attestation
// or upload) is not listed.
func (a *Agent) Run(ctx context.Context, req RunRequest) (*RunResult, error) {
	if req.Plan == nil || req.Target == nil || req.Cluster == nil {
		return nil, errors.New("agent: a run needs a plan, its target and the cluster")
	}
	pl, t := req.Plan, req.Target
	ds, pt := pl.Dataset, pl.Target
	start := time.Now()
	id := archive.NewID(start)
	rcp, wrapMode, keyLogIndex, err := req.recipient(ctx, archive.WrapContext(ds.Name, ds.Classification, id))
	if err != nil {
		return nil, err
	}
	an, in, mn := ObjectNames(ds.Name, id)
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
		return nil, err
	}
	defer os.Remove(ixf.Name())
	defer ixf.Close()

	var total int64
	if req.Progress != nil {
		total = SourceBytes(pl.Sources) // for the ETA
	}
	done, stop, err := req.Progress.start("backup", total, "dataset", ds.Name, "archive", id, "target", pt.Name)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	type putResult struct {
		info target.ObjectInfo
		err  error
	}
	uploaded := make(chan putResult, 1)
	go func() {
		info, err := t.Put(ctx, an, pr, put)
		pr.CloseWithError(err) // unblocks Create if the upload failed
		uploaded <- putResult{info, err}
	}()
	dec := pl.Decision
	m, cerr := archive.Create(ctx, pl.Sources, pw, ixf, archive.CreateOptions{
		ArchiveID: id, Dataset: ds.Name, Classification: ds.Classification,
		Recipient: rcp, Policy: &dec, Progress: done,
	})
	if cerr != nil {
		pw.CloseWithError(cerr)
	} else {
		pw.Close()
	}
	res := <-uploaded
	stop(errors.Join(cerr, res.err))
	if cerr != nil {
		if res.err == nil {
			t.Delete(ctx, an) // best effort: a locked object stays, without manifest
		}
		return nil, fmt.Errorf("creating the archive: %w", cerr)
	}
	if res.err != nil {
		return nil, fmt.Errorf("uploading %s to %q: %w", an, pt.Name, res.err)
	}
	if res.info.SHA256 != "" && res.info.SHA256 != m.Archive.SHA256 {
		return nil, fmt.Errorf("uploading %s: the target stored SHA-256 %s, the archive is %s", an, res.info.SHA256, m.Archive.SHA256)
	}
	if _, err := ixf.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	ip := put
	ip.Size = m.Index.Size
	if info, err := t.Put(ctx, in, ixf, ip); err != nil {
		return nil, fmt.Errorf("uploading %s to %q: %w", in, pt.Name, err)
	} else if info.SHA256 != "" && info.SHA256 != m.Index.SHA256 {
		return nil, fmt.Errorf("uploading %s: the target stored SHA-256 %s, the index is %s", in, info.SHA256, m.Index.SHA256)
	}
	elapsed := time.Since(start)

	// Attest the transfer: the entry binds both ciphertexts and the
	// manifest, and is what a restore trusts; its receipt goes in the
	// manifest.
	m.KEK.KeyLogIndex = keyLogIndex // offline: the entry that proved the key
	details, err := m.TransferDetails()
	if err != nil {
		return nil, err
	}
	details["target"], details["region"], details["decision"], details["wrap"] = pt.Name, pt.Region, dec.Why, wrapMode
	logIndex, err := req.Cluster.Attest(ctx, client.AttestRequest{
		Type: client.AttestTransfer, KEKID: m.KEK.ID, KEKVersion: m.KEK.Version, Details: details,
	})
	if err != nil {
		return nil, fmt.Errorf("attesting the transfer (archive and index are on %q, without manifest): %w", pt.Name, err)
	}
	m.Receipt = &archive.Receipt{LogIndex: logIndex, Target: pt.Name, Object: an}
	mb, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	mp := put
	mp.Size = int64(len(mb))
	if _, err := t.Put(ctx, mn, strings.NewReader(string(mb)), mp); err != nil {
		return nil, fmt.Errorf("uploading %s to %q: %w", mn, pt.Name, err)
	}
	return &RunResult{Manifest: m, Elapsed: elapsed, Retention: put.Retention, LegalHold: put.LegalHold}, nil
}

// recipient returns the recipient that wraps the archive key under wctx:
// online (a logged wrap call) unless the dataset's wrap is offline, then
// with the newest active version's public key once proved with req.Trust.
// keyLogIndex is, offline, the entry that proved the key.
func (req *RunRequest) recipient(ctx context.Context, wctx wrapkey.Context) (rcp age.Recipient, mode string, keyLogIndex uint64, err error) {
	ds := req.Plan.Dataset
	mode = ds.WrapMode()
	if mode != policy.WrapOffline {
		r, err := custosage.NewOnlineRecipient(ctx, req.Cluster, ds.KEK, wctx)
		return r, mode, 0, err
	}
	if req.Trust == nil {
		return nil, mode, 0, fmt.Errorf("dataset %q wraps offline: no pinned trust to check the kek's public key with; nothing was sent", ds.Name)
	}
	var keys KEKKeySource = req.Cluster
	if req.Keys != nil {
		keys = req.Keys
	}
	k, err := ProveKEKKey(ctx, keys, req.Trust, ds.KEK)
	if err != nil {
		return nil, mode, 0, fmt.Errorf("offline wrap with kek %s: %w; nothing was sent", ds.KEK, err)
	}
	r, err := custosage.NewOfflineRecipient(k.KEKID, k.Version, k.Public, wctx)
	if err != nil {
		return nil, mode, 0, fmt.Errorf("offline wrap with kek %s v%d: %w; nothing was sent", k.KEKID, k.Version, err)
	}
	return r, mode, k.LogIndex, nil
}

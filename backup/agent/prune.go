package agent

// Prune: delete archives older than their dataset's retention, never the
// newest archive of a dataset on a target, never what the store still
// locks; each deletion attested in the log (backup.prune).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/custos-eu/custos/backup/target"
	"github.com/custos-eu/custos/keysvc/client"
)

// PruneVerdict is what Prune did with one archive.
type PruneVerdict int

const (
	KeepRetained       PruneVerdict = iota // within its dataset's retention
	KeepUnknownDataset                     // the policy names no such dataset
	KeepNewest                             // past retention, but the newest of its dataset on its target
	KeepLocked                             // past retention, but the store still locks it (retention or legal hold)
	WouldDelete                            // past retention; a dry run deleted nothing
	Deleted                                // deleted, and the deletion attested
	DeleteFailed                           // the deletion failed (Err)
	AttestFailed                           // deleted, but attesting it failed (Err)
)

// Pruned is Prune's verdict on one archive.
type Pruned struct {
	Listed
	Verdict  PruneVerdict
	Reason   string // for an archive past retention: "retention D expired on T"
	LogIndex uint64 // Deleted: the backup.prune entry
	Err      error  // DeleteFailed, AttestFailed
}

// Failed reports whether the archive could not be pruned.
func (p Pruned) Failed() bool { return p.Verdict == DeleteFailed || p.Verdict == AttestFailed }

// PruneRequest is one prune.
type PruneRequest struct {
	Archives []Listed // a List, oldest first
	Now      time.Time
	DryRun   bool         // delete nothing: report WouldDelete instead
	Cluster  Attester     // attests each deletion (unused on a dry run)
	Report   func(Pruned) // told the verdict on each archive, in turn
}

// Prune deletes the archives past their dataset's retention. The error is
// one that stops the prune (a target that does not open); archives that
// fail are reported (Pruned.Failed), not returned.
func (a *Agent) Prune(ctx context.Context, req PruneRequest) error {
	all, report := req.Archives, req.Report
	// The newest archive of each dataset on each target is kept whatever
	// its age: pruning never leaves a dataset without a backup.
	newest := map[[2]string]string{}
	for _, l := range all { // oldest first: the last one wins
		newest[[2]string{l.Target, l.Manifest.Dataset}] = l.Manifest.ArchiveID
	}
	for _, l := range all {
		m := l.Manifest
		ds, ok := a.p.Dataset(m.Dataset)
		if !ok {
			report(Pruned{Listed: l, Verdict: KeepUnknownDataset})
			continue
		}
		expires := m.Created.Add(ds.Retention.D())
		switch {
		case req.Now.Before(expires):
			report(Pruned{Listed: l, Verdict: KeepRetained})
			continue
		case newest[[2]string{l.Target, m.Dataset}] == m.ArchiveID:
			report(Pruned{Listed: l, Verdict: KeepNewest})
			continue
		}
		reason := fmt.Sprintf("retention %s expired on %s", ds.Retention.D(), expires.UTC().Format(time.RFC3339))
		if req.DryRun {
			report(Pruned{Listed: l, Verdict: WouldDelete, Reason: reason})
			continue
		}
		t, err := a.openTarget(ctx, l.Target)
		if err != nil {
			return err
		}
		err = deleteArchive(ctx, t, m)
		closeTarget(t)
		switch {
		case errors.Is(err, target.ErrLocked):
			report(Pruned{Listed: l, Verdict: KeepLocked, Reason: reason})
			continue
		case err != nil:
			report(Pruned{Listed: l, Verdict: DeleteFailed, Reason: reason, Err: err})
			continue
		}
		li, err := req.Cluster.Attest(ctx, client.AttestRequest{
			Type: client.AttestPrune, KEKID: m.KEK.ID, KEKVersion: m.KEK.Version,
			Details: map[string]string{"archive": m.ArchiveID, "dataset": m.Dataset, "target": l.Target, "reason": reason},
		})
		if err != nil {
			report(Pruned{Listed: l, Verdict: AttestFailed, Reason: reason, Err: err})
			continue
		}
		report(Pruned{Listed: l, Verdict: Deleted, Reason: reason, LogIndex: li})
	}
	return nil
}

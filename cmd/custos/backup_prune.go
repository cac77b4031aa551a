package main

// `custos backup prune`: delete archives older than their dataset's
// retention, never the newest archive of a dataset, never what the store
// still locks; each deletion attested in the log (backup.prune).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/backup/target"
	"github.com/custos-eu/custos/keysvc/client"
)

func runBackupPrune(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("backup prune", flag.ContinueOnError)
	bf := addBackupFlags(fs, s, true)
	fs.StringVar(&bf.dataset, "dataset", "", "only this dataset")
	var dryRun bool
	fs.BoolVar(&dryRun, "dry-run", false, "say what would be deleted, delete nothing")
	p, _, all, err := bf.parseListing(ctx, s, fs, args, false)
	if err != nil {
		return err
	}
	// The newest archive of each dataset on each target is kept whatever
	// its age: pruning never leaves a dataset without a backup.
	newest := map[[2]string]string{}
	for _, a := range all { // oldest first: the last one wins
		newest[[2]string{a.target, a.m.Dataset}] = a.m.ArchiveID
	}
	var c *client.Client
	if !dryRun {
		if c, err = bf.api.client(); err != nil {
			return err
		}
		defer c.Close()
	}
	now := time.Now()
	var deleted, kept, failed int
	for _, a := range all {
		ds, ok := p.Dataset(a.m.Dataset)
		if !ok {
			kept++
			fmt.Fprintf(s.out, "keep     %s (%s on %q): the policy names no dataset %q\n", a.m.ArchiveID, a.m.Dataset, a.target, a.m.Dataset)
			continue
		}
		expires := a.m.Created.Add(ds.Retention.D())
		switch {
		case now.Before(expires):
			kept++
			continue
		case newest[[2]string{a.target, a.m.Dataset}] == a.m.ArchiveID:
			kept++
			fmt.Fprintf(s.out, "keep     %s (%s on %q): past retention but the newest archive of the dataset\n", a.m.ArchiveID, a.m.Dataset, a.target)
			continue
		}
		reason := fmt.Sprintf("retention %s expired on %s", ds.Retention.D(), expires.UTC().Format(time.RFC3339))
		if dryRun {
			fmt.Fprintf(s.out, "would delete %s (%s on %q): %s\n", a.m.ArchiveID, a.m.Dataset, a.target, reason)
			continue
		}
		pt, _ := p.Target(a.target)
		t, err := openTarget(ctx, pt)
		if err != nil {
			return err
		}
		err = pruneArchive(ctx, t, a.m)
		closeTarget(t)
		switch {
		case errors.Is(err, target.ErrLocked):
			kept++
			fmt.Fprintf(s.out, "keep     %s (%s on %q): past retention but the store still locks it (retention or legal hold)\n", a.m.ArchiveID, a.m.Dataset, a.target)
			continue
		case err != nil:
			failed++
			fmt.Fprintf(s.err, "error    %s (%s on %q): %v\n", a.m.ArchiveID, a.m.Dataset, a.target, err)
			continue
		}
		li, err := c.Attest(ctx, client.AttestRequest{
			Type: client.AttestPrune, KEKID: a.m.KEK.ID, KEKVersion: a.m.KEK.Version,
			Details: map[string]string{"archive": a.m.ArchiveID, "dataset": a.m.Dataset, "target": a.target, "reason": reason},
		})
		if err != nil {
			failed++
			fmt.Fprintf(s.err, "error    %s (%s on %q): deleted, but attesting it failed: %v\n", a.m.ArchiveID, a.m.Dataset, a.target, err)
			continue
		}
		deleted++
		fmt.Fprintf(s.out, "deleted  %s (%s on %q): %s; receipt: log entry %d\n", a.m.ArchiveID, a.m.Dataset, a.target, reason, li)
	}
	fmt.Fprintf(s.out, "%d deleted, %d kept\n", deleted, kept)
	if failed > 0 {
		return fmt.Errorf("%d archive(s) could not be pruned", failed)
	}
	return nil
}

// pruneArchive deletes an archive's objects: the archive first (if the
// store locks it, nothing is deleted), then the index, the manifest last,
// so an interrupted prune leaves a listed archive that the next prune
// finishes. Objects already gone are skipped.
func pruneArchive(ctx context.Context, t target.Target, m *archive.Manifest) error {
	an, in, mn := objectNames(m.Dataset, m.ArchiveID)
	for _, name := range []string{an, in, mn} {
		if err := t.Delete(ctx, name); err != nil && !errors.Is(err, target.ErrNotFound) {
			return fmt.Errorf("deleting %s: %w", name, err)
		}
	}
	return nil
}

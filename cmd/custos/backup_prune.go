package main

// `custos backup prune`: delete archives older than their dataset's
// retention, never the newest archive of a dataset, never what the store
// still locks; each deletion attested in the log (agent.Prune).

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/custos-eu/custos/backup/agent"
	"github.com/custos-eu/custos/keysvc/client"
)

func runBackupPrune(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("backup prune", flag.ContinueOnError)
	bf := addBackupFlags(fs, s, true)
	fs.StringVar(&bf.dataset, "dataset", "", "only this dataset")
	var dryRun bool
	fs.BoolVar(&dryRun, "dry-run", false, "say what would be deleted, delete nothing")
	ag, _, all, err := bf.parseListing(ctx, s, fs, args, false)
	if err != nil {
		return err
	}
	var c *client.Client
	if !dryRun {
		if c, err = bf.api.client(); err != nil {
			return err
		}
		defer c.Close()
	}
	var deleted, kept, failed int
	report := func(p agent.Pruned) {
		m := p.Manifest
		switch p.Verdict {
		case agent.KeepRetained:
			kept++
		case agent.KeepUnknownDataset:
			kept++
			fmt.Fprintf(s.out, "keep     %s (%s on %q): the policy names no dataset %q\n", m.ArchiveID, m.Dataset, p.Target, m.Dataset)
		case agent.KeepNewest:
			kept++
			fmt.Fprintf(s.out, "keep     %s (%s on %q): past retention but the newest archive of the dataset\n", m.ArchiveID, m.Dataset, p.Target)
		case agent.WouldDelete:
			fmt.Fprintf(s.out, "would delete %s (%s on %q): %s\n", m.ArchiveID, m.Dataset, p.Target, p.Reason)
		case agent.KeepLocked:
			kept++
			fmt.Fprintf(s.out, "keep     %s (%s on %q): past retention but the store still locks it (retention or legal hold)\n", m.ArchiveID, m.Dataset, p.Target)
		case agent.DeleteFailed:
			failed++
			fmt.Fprintf(s.err, "error    %s (%s on %q): %v\n", m.ArchiveID, m.Dataset, p.Target, p.Err)
		case agent.AttestFailed:
			failed++
			fmt.Fprintf(s.err, "error    %s (%s on %q): deleted, but attesting it failed: %v\n", m.ArchiveID, m.Dataset, p.Target, p.Err)
		case agent.Deleted:
			deleted++
			fmt.Fprintf(s.out, "deleted  %s (%s on %q): %s; receipt: log entry %d\n", m.ArchiveID, m.Dataset, p.Target, p.Reason, p.LogIndex)
		}
	}
	if err := ag.Prune(ctx, agent.PruneRequest{Archives: all, Now: time.Now(), DryRun: dryRun, Cluster: c, Report: report}); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "%d deleted, %d kept\n", deleted, kept)
	if failed > 0 {
		return fmt.Errorf("%d archive(s) could not be pruned", failed)
	}
	return nil
}

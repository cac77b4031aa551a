package main

// `custos backup status`: per dataset, the age of the newest complete
// archive against its RPO, and the last restore drill against its RTO
// (agent.Status). Exits non-zero when a target is missed, for cron and
// monitoring.

import (
	"context"
	"flag"
	"fmt"
	"time"
)

func runBackupStatus(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("backup status", flag.ContinueOnError)
	bf := addBackupFlags(fs, s, true)
	fs.StringVar(&bf.dataset, "dataset", "", "only this dataset")
	ag, names, all, err := bf.parseListing(ctx, s, fs, args, true)
	if err != nil {
		return err
	}
	c, err := bf.api.client()
	if err != nil {
		return err
	}
	defer c.Close()
	sts, err := ag.Status(ctx, c, all, bf.dataset)
	if err != nil {
		return err
	}
	missed := 0
	for _, st := range sts {
		ds := st.Dataset
		fmt.Fprintf(s.out, "dataset  %s\n", ds.Name)
		if n := st.Newest; n == nil {
			fmt.Fprintf(s.out, "  backup   MISSED: no archive on %v (RPO %s)\n", names, ds.RPO.D())
		} else {
			verdict := "ok"
			if !st.BackupOK {
				verdict = "MISSED"
			}
			fmt.Fprintf(s.out, "  backup   %s: newest %s on %q, %s old (RPO %s)\n", verdict, n.Manifest.ArchiveID, n.Target, st.Age.Round(time.Second), ds.RPO.D())
		}
		rto := ds.RTO.D()
		switch d := st.Drill; {
		case d == nil:
			fmt.Fprintf(s.out, "  drill    MISSED: no drill in the log (RTO %s)\n", rto)
		case !st.DrillOK:
			fmt.Fprintf(s.out, "  drill    MISSED: last drill %s of %s: %s, %.3fs (RTO %s), log entry %d\n", d.Time.UTC().Format(time.RFC3339), d.Archive, d.Result, d.Seconds, rto, d.LogIndex)
		default:
			fmt.Fprintf(s.out, "  drill    ok: last drill %s of %s restored in %.3fs (RTO %s), log entry %d\n", d.Time.UTC().Format(time.RFC3339), d.Archive, d.Seconds, rto, d.LogIndex)
		}
		missed += st.Missed()
	}
	if missed > 0 {
		return fmt.Errorf("%d target(s) missed", missed)
	}
	return nil
}

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

	"github.com/custos-eu/custos/backup/agent"
)

func runBackupStatus(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("backup status", flag.ContinueOnError)
	bf := addBackupFlags(fs, s, true)
	fs.StringVar(&bf.dataset, "dataset", "", "only this dataset")
	format := addFormatFlag(fs)
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
	if format.json {
		return backupStatusJSON(s, sts)
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

// datasetStatusJSON is a dataset as backup status --format json prints it.
type datasetStatusJSON struct {
	Dataset       string     `json:"dataset"`
	BackupOK      bool       `json:"backup_ok"`
	RPOSeconds    float64    `json:"rpo_seconds"`
	NewestArchive string     `json:"newest_archive,omitempty"`
	NewestTarget  string     `json:"newest_target,omitempty"`
	AgeSeconds    float64    `json:"age_seconds,omitempty"`
	DrillOK       bool       `json:"drill_ok"`
	RTOSeconds    float64    `json:"rto_seconds"`
	Drill         *drillJSON `json:"drill,omitempty"`
}

type drillJSON struct {
	Time           time.Time `json:"time"`
	Archive        string    `json:"archive"`
	Result         string    `json:"result"`
	RestoreSeconds float64   `json:"restore_seconds"`
	LogIndex       uint64    `json:"log_index"`
}

// backupStatusJSON prints sts as JSON; like the text, it fails (exit 1)
// when a target is missed.
func backupStatusJSON(s stdio, sts []agent.DatasetStatus) error {
	out := struct {
		Datasets []datasetStatusJSON `json:"datasets"`
		Missed   int                 `json:"missed"`
	}{Datasets: []datasetStatusJSON{}}
	for _, st := range sts {
		d := datasetStatusJSON{Dataset: st.Dataset.Name, BackupOK: st.BackupOK, RPOSeconds: st.Dataset.RPO.D().Seconds(),
			DrillOK: st.DrillOK, RTOSeconds: st.Dataset.RTO.D().Seconds()}
		if n := st.Newest; n != nil {
			d.NewestArchive, d.NewestTarget, d.AgeSeconds = n.Manifest.ArchiveID, n.Target, st.Age.Round(time.Second).Seconds()
		}
		if dr := st.Drill; dr != nil {
			d.Drill = &drillJSON{Time: dr.Time.UTC(), Archive: dr.Archive, Result: dr.Result, RestoreSeconds: dr.Seconds, LogIndex: dr.LogIndex}
		}
		out.Datasets = append(out.Datasets, d)
		out.Missed += st.Missed()
	}
	if err := printJSON(s.out, out); err != nil {
		return err
	}
	if out.Missed > 0 {
		return fmt.Errorf("%d target(s) missed", out.Missed)
	}
	return nil
}

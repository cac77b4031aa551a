package main

// `custos backup status`: per dataset, the age of the newest complete
// archive against its RPO, and the last restore drill against its RTO.
// Exits non-zero when a target is missed, for cron and monitoring.
//
// The last drill of each dataset comes from the node's record of the newest
// backup.drill attestation (GET /v1/attestations/drills), which an agent
// certificate may read: no scan of the key-op log.

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
)

// lastDrill is the newest backup.drill entry of a dataset.
type lastDrill struct {
	index   uint64
	time    time.Time
	archive string
	result  string
	seconds float64
}

// lastDrills returns the newest drill of each dataset (of dataset alone when
// not empty), whatever its result, as the cluster recorded it.
func lastDrills(ctx context.Context, c *client.Client, dataset string) (map[string]lastDrill, error) {
	ds, err := c.Drills(ctx, dataset)
	if err != nil {
		return nil, fmt.Errorf("reading the last restore drills: %w", err)
	}
	out := make(map[string]lastDrill, len(ds))
	for _, d := range ds {
		e := d.Entry
		secs, _ := strconv.ParseFloat(e.Details["restore_seconds"], 64)
		out[d.Dataset] = lastDrill{index: e.Index, time: e.Time, archive: e.Details["archive"], result: e.Details["result"], seconds: secs}
	}
	return out, nil
}

func runBackupStatus(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("backup status", flag.ContinueOnError)
	bf := addBackupFlags(fs, s, true)
	fs.StringVar(&bf.dataset, "dataset", "", "only this dataset")
	p, names, all, err := bf.parseListing(ctx, s, fs, args, true)
	if err != nil {
		return err
	}
	c, err := bf.api.client()
	if err != nil {
		return err
	}
	defer c.Close()
	drills, err := lastDrills(ctx, c, bf.dataset)
	if err != nil {
		return err
	}
	now := time.Now()
	missed := 0
	for _, ds := range p.Datasets {
		if bf.dataset != "" && ds.Name != bf.dataset {
			continue
		}
		var newest *listed
		for i := range all {
			if all[i].m.Dataset == ds.Name && (newest == nil || all[i].m.Created.After(newest.m.Created)) {
				newest = &all[i]
			}
		}
		fmt.Fprintf(s.out, "dataset  %s\n", ds.Name)
		switch {
		case newest == nil:
			missed++
			fmt.Fprintf(s.out, "  backup   MISSED: no archive on %v (RPO %s)\n", names, ds.RPO.D())
		default:
			age := now.Sub(newest.m.Created)
			verdict := "ok"
			if age > ds.RPO.D() {
				verdict = "MISSED"
				missed++
			}
			fmt.Fprintf(s.out, "  backup   %s: newest %s on %q, %s old (RPO %s)\n", verdict, newest.m.ArchiveID, newest.target, age.Round(time.Second), ds.RPO.D())
		}
		d, ok := drills[ds.Name]
		rto := ds.RTO.D()
		switch {
		case !ok:
			missed++
			fmt.Fprintf(s.out, "  drill    MISSED: no drill in the log (RTO %s)\n", rto)
		case d.result != "ok" || time.Duration(d.seconds*float64(time.Second)) > rto:
			missed++
			fmt.Fprintf(s.out, "  drill    MISSED: last drill %s of %s: %s, %.3fs (RTO %s), log entry %d\n", d.time.UTC().Format(time.RFC3339), d.archive, d.result, d.seconds, rto, d.index)
		default:
			fmt.Fprintf(s.out, "  drill    ok: last drill %s of %s restored in %.3fs (RTO %s), log entry %d\n", d.time.UTC().Format(time.RFC3339), d.archive, d.seconds, rto, d.index)
		}
	}
	if missed > 0 {
		return fmt.Errorf("%d target(s) missed", missed)
	}
	return nil
}

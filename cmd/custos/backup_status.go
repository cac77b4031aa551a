package main

// `custos backup status`: per dataset, the age of the newest complete
// archive against its RPO, and the last drill (from the key-op log) against
// its RTO. Exits non-zero when a target is missed, for cron and monitoring.
//
// Reading the log needs a certificate that may read it (auditor, operator
// or officer; agents may not), and the whole log is scanned: O(log size).

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// lastDrill is the newest backup.drill entry of a dataset.
type lastDrill struct {
	index   uint64
	time    time.Time
	archive string
	result  string
	seconds float64
}

// drillsFromLog scans the key-op log for backup.drill entries.
func drillsFromLog(ctx context.Context, c *client.Client) (map[string]lastDrill, error) {
	out := map[string]lastDrill{}
	for start := uint64(0); ; {
		raw, err := c.Entries(ctx, start, 500)
		if err != nil {
			return nil, fmt.Errorf("reading the key-op log (needs an auditor, operator or officer certificate): %w", err)
		}
		if len(raw) == 0 {
			return out, nil
		}
		for _, b := range raw {
			e, err := ledger.ParseEntry(b)
			if err != nil {
				return nil, fmt.Errorf("log entry %d: %w", start, err)
			}
			start = e.Index + 1
			if e.Type != client.AttestDrill || e.Outcome != ledger.OutcomeOK {
				continue
			}
			secs, _ := strconv.ParseFloat(e.Details["restore_seconds"], 64)
			out[e.Details["dataset"]] = lastDrill{index: e.Index, time: e.Time, archive: e.Details["archive"], result: e.Details["result"], seconds: secs}
		}
	}
}

func runBackupStatus(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("backup status", flag.ContinueOnError)
	bf := addBackupFlags(fs, s, true)
	fs.StringVar(&bf.dataset, "dataset", "", "only this dataset")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	p, err := bf.load()
	if err != nil {
		return err
	}
	names, err := bf.targetNames(p)
	if err != nil {
		return err
	}
	if bf.dataset != "" {
		if _, ok := p.Dataset(bf.dataset); !ok {
			return fmt.Errorf("the policy names no dataset %q", bf.dataset)
		}
	}
	all, err := listArchives(ctx, p, names, bf.dataset, s.err)
	if err != nil {
		return err
	}
	c, err := bf.api.client()
	if err != nil {
		return err
	}
	defer c.Close()
	drills, err := drillsFromLog(ctx, c)
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

package agent

// Status: per dataset, the age of the newest complete archive against its
// RPO, and the last restore drill against its RTO.
//
// The last drill of each dataset comes from the node's record of the newest
// backup.drill attestation (GET /v1/attestations/drills), which an agent
// certificate may read: no scan of the key-op log.

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/custos-eu/custos/backup/policy"
)

// LastDrill is the newest backup.drill entry of a dataset.
type LastDrill struct {
	LogIndex uint64
	Time     time.Time
	Archive  string
	Result   string  // "ok", or why not
	Seconds  float64 // the restore's
}

// lastDrills returns the newest drill of each dataset (of dataset alone when
// not empty), whatever its result, as the cluster recorded it.
func lastDrills(ctx context.Context, src DrillSource, dataset string) (map[string]LastDrill, error) {
	ds, err := src.Drills(ctx, dataset)
	if err != nil {
		return nil, fmt.Errorf("reading the last restore drills: %w", err)
	}
	out := make(map[string]LastDrill, len(ds))
	for _, d := range ds {
		e := d.Entry
		secs, _ := strconv.ParseFloat(e.Details["restore_seconds"], 64)
		out[d.Dataset] = LastDrill{LogIndex: e.Index, Time: e.Time, Archive: e.Details["archive"], Result: e.Details["result"], Seconds: secs}
	}
	return out, nil
}

// DatasetStatus is one dataset against its RPO and RTO.
type DatasetStatus struct {
	Dataset  *policy.Dataset
	Newest   *Listed       // the newest archive on the targets listed; nil if none
	Age      time.Duration // of Newest
	BackupOK bool          // Newest is within the RPO
	Drill    *LastDrill    // nil if the log has no drill of the dataset
	DrillOK  bool          // the last drill restored, within the RTO
}

// Missed counts the targets the dataset missed (0, 1 or 2).
func (s *DatasetStatus) Missed() int {
	n := 0
	if !s.BackupOK {
		n++
	}
	if !s.DrillOK {
		n++
	}
	return n
}

// Status judges each dataset of the policy (dataset alone when not empty)
// by the archives in all (a List) and the last drills src serves.
func (a *Agent) Status(ctx context.Context, src DrillSource, all []Listed, dataset string) ([]DatasetStatus, error) {
	drills, err := lastDrills(ctx, src, dataset)
	if err != nil {
		return nil, err
	}
	now := a.now()
	var out []DatasetStatus
	for i := range a.p.Datasets {
		ds := &a.p.Datasets[i]
		if dataset != "" && ds.Name != dataset {
			continue
		}
		st := DatasetStatus{Dataset: ds}
		for i := range all {
			if all[i].Manifest.Dataset == ds.Name && (st.Newest == nil || all[i].Manifest.Created.After(st.Newest.Manifest.Created)) {
				st.Newest = &all[i]
			}
		}
		if st.Newest != nil {
			st.Age = now.Sub(st.Newest.Manifest.Created)
			st.BackupOK = st.Age <= ds.RPO.D()
		}
		if d, ok := drills[ds.Name]; ok {
			st.Drill = &d
			st.DrillOK = d.Result == "ok" && time.Duration(d.Seconds*float64(time.Second)) <= ds.RTO.D()
		}
		out = append(out, st)
	}
	return out, nil
}

package report

// Activations and share releases in the custody report.

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/audit/audittest"
	"github.com/custos-eu/custos/keysvc/ledger"
)

func TestReportReleases(t *testing.T) {
	c := audittest.NewClient(t, "test", "backup")
	f := audittest.NewLog(t, "test", 3)
	a, req := f.Activate(t, c)
	f.Release(t, "n2", num(a), req, c)
	f.Release(t, "n3", num(a), req, c)
	f.Release(t, "n3", "", req, c) // no activation
	r := &Report{Pack: "p.jsonl"}
	b := newReportBuilder(r)
	b.followReleases(audit.Header{Cluster: "test"}, nil)
	for _, raw := range f.Entries {
		e, err := ledger.ParseEntry(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.entry(e); err != nil {
			t.Fatal(err)
		}
	}
	b.finish()
	if r.ActivationTotal != 1 || len(r.Activations) != 1 || r.FlagTotal != 1 {
		t.Fatalf("activations %d, flags %d (%+v)", r.ActivationTotal, r.FlagTotal, r.ReleaseFlags)
	}
	act := r.Activations[0]
	if act.Index != a || act.Client != c.ID.String() || act.KEK != "backups v1" || act.Node != "n1" ||
		strings.Join(act.Releasers, ", ") != "n2 (entry 4), n3 (entry 5)" {
		t.Errorf("activation row %+v", act)
	}
	if fl := r.ReleaseFlags[0]; fl.Index != 6 || fl.Code != audit.CodeReleaseNoActivation || fl.Node != "n3" || fl.To != "n1" {
		t.Errorf("flag %+v", fl)
	}
	var htm, md bytes.Buffer
	if err := r.HTML(&htm); err != nil {
		t.Fatal(err)
	}
	if err := r.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	wantAll(t, "Markdown", md.String(), "## Activations and share releases", "**1 flagged.**", `release\_without\_activation`,
		"| 3 |", "custos://test/agent/backup?region=DE", "n2 (entry 4), n3 (entry 5)", "| KEK activations | 1 |")
	wantAll(t, "HTML", htm.String(), "<h2>Activations and share releases</h2>", "1 flagged.", "release_without_activation", "n2 (entry 4), n3 (entry 5)")

	// A log of the earlier format: flagged as unbound, not as a finding.
	f = audittest.NewLog(t, "test", 2)
	f.Release(t, "n2", "", "", c)
	f.Add(t, ledger.Entry{Type: ledger.TypeActivate, Actor: ledger.Actor{Identity: "custos://test/node/n1?region=DE", Role: "node", Region: "DE"},
		Node: "n1", KEKID: "backups", KEKVersion: 1, Outcome: ledger.OutcomeOK,
		Details: map[string]string{"shares_from": "n2", "ttl_seconds": "0", "for": c.ID.String()}})
	r = &Report{}
	b = newReportBuilder(r)
	b.followReleases(audit.Header{Cluster: "test"}, nil)
	for _, raw := range f.Entries {
		e, _ := ledger.ParseEntry(raw)
		_ = b.entry(e)
	}
	b.finish()
	if r.FlagTotal != 1 || r.ReleaseFlags[0].Code != "unbound" || !r.Activations[0].Unbound || r.Activations[0].Client != c.ID.String() {
		t.Errorf("earlier format: flags %+v, activations %+v", r.ReleaseFlags, r.Activations)
	}
}

func num(i uint64) string { return strconv.FormatUint(i, 10) }

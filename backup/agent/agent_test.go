package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/backup/policy"
	"github.com/custos-eu/custos/backup/target"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// localCluster wraps and unwraps with a local KEK and records attestations:
// the use cases without a cluster. It serves no key for an offline wrap.
type localCluster struct {
	KEKKeySource // nil: an offline wrap is not served
	key          *wrapkey.Key
	attested     []client.AttestRequest
	unwraps      int
}

func newLocalCluster(t *testing.T) *localCluster {
	t.Helper()
	seed := make([]byte, wrapkey.SeedSize)
	rand.Read(seed)
	k, err := wrapkey.NewKey(seed, "backups", 1)
	if err != nil {
		t.Fatal(err)
	}
	return &localCluster{key: k}
}

func (l *localCluster) Wrap(_ context.Context, kekID string, pt []byte, c map[string]string) (client.WrapResponse, error) {
	b, err := wrapkey.Wrap(nil, l.key.PublicKey(), kekID, 1, c, pt)
	return client.WrapResponse{Wrapped: b, KEKVersion: 1, LogIndex: 7}, err
}

func (l *localCluster) Unwrap(_ context.Context, kekID string, blob []byte, c map[string]string) (client.UnwrapResponse, error) {
	l.unwraps++
	pt, err := l.key.Unwrap(blob, c)
	return client.UnwrapResponse{Plaintext: pt, LogIndex: 8}, err
}

func (l *localCluster) Attest(_ context.Context, r client.AttestRequest) (uint64, error) {
	l.attested = append(l.attested, r)
	return uint64(100 + len(l.attested)), nil
}

// last returns the last attestation of type typ.
func (l *localCluster) last(t *testing.T, typ string) client.AttestRequest {
	t.Helper()
	for i := len(l.attested) - 1; i >= 0; i-- {
		if l.attested[i].Type == typ {
			return l.attested[i]
		}
	}
	t.Fatalf("no %s attested in %+v", typ, l.attested)
	return client.AttestRequest{}
}

// fixture is an agent over a policy with dataset "hr" (eu-only, a small
// corpus) and two local targets, "paris" (FR) and "virginia" (US).
type fixture struct {
	ag    *Agent
	c     *localCluster
	store string // paris's directory
	warn  strings.Builder
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"payroll.csv": "alice,100\n", "sub/notes.txt": "hello\n"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{c: newLocalCluster(t), store: filepath.Join(dir, "paris")}
	pol := fmt.Sprintf(`region = "DE"

[[dataset]]
name           = "hr"
paths          = [%q]
classification = "confidential"
residency      = "eu-only"
kek            = "backups"
retention      = "90d"
rpo            = "24h"
rto            = "4h"

[[target]]
name         = "paris"
kind         = "local"
region       = "FR"
jurisdiction = "FR"
path         = %q

[[target]]
name         = "virginia"
kind         = "local"
region       = "US"
jurisdiction = "US"
path         = %q
`, src, f.store, filepath.Join(dir, "virginia"))
	p, err := policy.Parse(strings.NewReader(pol))
	if err != nil {
		t.Fatal(err)
	}
	open := func(_ context.Context, t *policy.Target) (target.Target, error) { return target.NewLocal(t.Path) }
	if f.ag, err = New(Config{Policy: p, Open: open, Warn: &f.warn}); err != nil {
		t.Fatal(err)
	}
	return f
}

// run backs up "hr" to paris through the fixture's cluster.
func (f *fixture) run(t *testing.T) *archive.Manifest {
	t.Helper()
	return f.runThrough(t, f.c)
}

// runThrough backs up "hr" to paris through c.
func (f *fixture) runThrough(t *testing.T, c RunCluster) *archive.Manifest {
	t.Helper()
	ctx := context.Background()
	pl, err := f.ag.Plan("hr", "paris")
	if err != nil {
		t.Fatal(err)
	}
	tg, err := f.ag.open(ctx, pl.Target)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTarget(tg)
	res, err := f.ag.Run(ctx, RunRequest{Plan: pl, Target: tg, Cluster: c})
	if err != nil {
		t.Fatal(err)
	}
	return res.Manifest
}

// find finds id on paris, proved or not.
func (f *fixture) find(t *testing.T, id string, proved bool) *Archive {
	t.Helper()
	a, err := f.ag.Find(context.Background(), []string{"paris"}, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if proved {
		a.proof = &Transfer{} // the proof itself is TestProveTransfer's
	}
	return a
}

func TestNewChecksConfig(t *testing.T) {
	open := func(context.Context, *policy.Target) (target.Target, error) { return nil, nil }
	if _, err := New(Config{Open: open}); err == nil {
		t.Error("New without a policy succeeded")
	}
	if _, err := New(Config{Policy: &policy.Policy{}}); err == nil {
		t.Error("New without Open succeeded")
	}
}

func TestPlan(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ dataset, target, want string }{
		{"payroll", "paris", "refused by policy (unknown_dataset)"},
		{"hr", "nowhere", "refused by policy (unknown_target)"},
		{"hr", "virginia", "refused by policy (residency)"},
		{"hr", "", "the policy names 2 targets: choose one with --target"},
	} {
		_, err := f.ag.Plan(c.dataset, c.target)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Plan(%q, %q): %v, want %q", c.dataset, c.target, err, c.want)
		}
	}
	pl, err := f.ag.Plan("hr", "paris")
	if err != nil {
		t.Fatal(err)
	}
	if pl.Target.Name != "paris" || pl.Decision.Why == "" || len(pl.Sources) != 1 || !filepath.IsAbs(pl.Sources[0]) {
		t.Errorf("plan %+v", pl)
	}
	if names, err := f.ag.Targets(""); err != nil || strings.Join(names, ",") != "paris,virginia" {
		t.Errorf("Targets(\"\") = %v, %v", names, err)
	}
	if _, err := f.ag.Targets("nowhere"); err == nil {
		t.Error("Targets(nowhere) succeeded")
	}
}

// The store layout: Run writes three objects and attests the transfer
// before the manifest; List finds complete archives, oldest first, and
// skips manifests stored under another name; Find refuses one describing
// another archive.
func TestStoreLayout(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m1 := f.run(t)
	m2 := f.run(t)

	for _, m := range []*archive.Manifest{m1, m2} {
		for _, suffix := range []string{SuffixArchive, SuffixIndex, SuffixManifest} {
			if _, err := os.Stat(filepath.Join(f.store, "hr", m.ArchiveID+suffix)); err != nil {
				t.Errorf("object %s%s: %v", m.ArchiveID, suffix, err)
			}
		}
	}
	tr := f.c.last(t, client.AttestTransfer)
	if d := tr.Details; d["archive"] != m2.ArchiveID || d["target"] != "paris" || d["region"] != "FR" || d["wrap"] != "online" || d["decision"] == "" {
		t.Errorf("transfer details %v", tr.Details)
	}
	if m2.Receipt == nil || m2.Receipt.LogIndex != uint64(100+len(f.c.attested)) || m2.Receipt.Target != "paris" {
		t.Errorf("receipt %+v", m2.Receipt)
	}

	// An incomplete archive (no manifest) and a manifest under another
	// archive's name are not listed.
	_, _, mn := ObjectNames("hr", m1.ArchiveID)
	b, err := os.ReadFile(filepath.Join(f.store, mn))
	if err != nil {
		t.Fatal(err)
	}
	planted := "20200101T000000Z-00000000000000aa"
	if err := os.WriteFile(filepath.Join(f.store, "hr", planted+SuffixManifest), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.store, "hr", "20200101T000000Z-00000000000000bb"+SuffixArchive), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	all, err := f.ag.List(ctx, []string{"paris", "virginia"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Manifest.ArchiveID != m1.ArchiveID || all[1].Manifest.ArchiveID != m2.ArchiveID || all[0].Target != "paris" {
		t.Errorf("List: %+v", all)
	}
	if !strings.Contains(f.warn.String(), "holds the manifest of hr/"+m1.ArchiveID) {
		t.Errorf("warnings: %q", f.warn.String())
	}
	if other, err := f.ag.List(ctx, []string{"paris"}, "payroll"); err != nil || len(other) != 0 {
		t.Errorf("List(payroll) = %+v, %v", other, err)
	}

	a := f.find(t, m2.ArchiveID, false)
	if a.Target != "paris" || a.Manifest.ArchiveID != m2.ArchiveID {
		t.Errorf("Find: %+v", a)
	}
	if _, err := f.ag.Find(ctx, []string{"paris"}, planted); !errors.Is(err, archive.ErrIntegrity) {
		t.Errorf("Find of a planted manifest: %v", err)
	}
	if _, err := f.ag.Find(ctx, []string{"paris"}, "../x"); err == nil || !strings.Contains(err.Error(), "not an archive id") {
		t.Errorf("Find(../x): %v", err)
	}
	if _, err := f.ag.Find(ctx, []string{"virginia"}, m1.ArchiveID); err == nil || !strings.Contains(err.Error(), "not found on target(s) virginia") {
		t.Errorf("Find on another target: %v", err)
	}
}

// Restore, Verify and Drill read nothing of an archive not proved.
func TestUnprovedIsNotRead(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := f.run(t)
	a := f.find(t, m.ArchiveID, false)
	if _, err := a.Restore(ctx, f.c, filepath.Join(t.TempDir(), "out"), archive.RestoreOptions{}, nil); !errors.Is(err, archive.ErrTransferUnproved) {
		t.Errorf("Restore of an unproved archive: %v", err)
	}
	if _, err := a.Verify(ctx, f.c, true, nil); !errors.Is(err, archive.ErrTransferUnproved) {
		t.Errorf("Verify of an unproved archive: %v", err)
	}
	if f.c.unwraps != 0 {
		t.Errorf("%d unwraps of an unproved archive", f.c.unwraps)
	}
}

// The drill's verdict, as the log records it.
func TestDrillVerdict(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := f.run(t)
	drill := func(a *Archive) (*Drilled, map[string]string, error) {
		t.Helper()
		d, err := f.ag.Drill(ctx, f.c, a, nil)
		return d, f.c.last(t, client.AttestDrill).Details, err
	}

	// Within the RTO.
	d, det, err := drill(f.find(t, m.ArchiveID, true))
	if err != nil || !d.OK() || d.RTO != 4*time.Hour || d.Restore.Files != 2 || d.LogIndex == 0 {
		t.Fatalf("drill: %+v, %v", d, err)
	}
	if det["result"] != "ok" || det["rto_seconds"] != "14400" || det["target"] != "paris" || det["archive"] != m.ArchiveID || det["restore_seconds"] == "" {
		t.Errorf("drill details %v", det)
	}

	// Over the RTO: recorded, returned without error, not OK.
	f.ag.p.Datasets[0].RTO = policy.Duration(time.Nanosecond)
	d, det, err = drill(f.find(t, m.ArchiveID, true))
	if err != nil || d.OK() || !strings.Contains(d.Result, "over the RTO of 1ns") || det["result"] != d.Result || det["rto_seconds"] != "0.000000001" {
		t.Errorf("drill over the RTO: %+v, %v, %v", d, err, det)
	}
	f.ag.p.Datasets[0].RTO = policy.Duration(4 * time.Hour)

	// Refused by its proof: recorded as such, nothing unwrapped.
	a := f.find(t, m.ArchiveID, false)
	a.proofErr = a.Refused(archive.ErrTransferMismatch)
	unwraps := f.c.unwraps
	_, det, err = drill(a)
	if !errors.Is(err, archive.ErrTransferMismatch) || !strings.Contains(err.Error(), "refused before reading it") || det["result"] != "failed: not proved against the log" {
		t.Errorf("drill of a refused archive: %v, %v", err, det)
	}
	if f.c.unwraps != unwraps {
		t.Error("a refused drill unwrapped")
	}

	// A tampered archive fails its integrity check.
	obj := filepath.Join(f.store, "hr", m.ArchiveID+SuffixArchive)
	b, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1 // in the payload, past the header and its stanza
	os.Chmod(obj, 0o600)
	if err := os.WriteFile(obj, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, det, err = drill(f.find(t, m.ArchiveID, true))
	if !errors.Is(err, archive.ErrIntegrity) || !strings.Contains(err.Error(), "recorded in log entry") || det["result"] != "failed: integrity check" {
		t.Errorf("drill of a tampered archive: %v, %v", err, det)
	}
}

func TestPrune(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.run(t)
	f.run(t)
	all, err := f.ag.List(ctx, []string{"paris"}, "")
	if err != nil || len(all) != 2 {
		t.Fatal(all, err)
	}
	prune := func(now time.Time, dry bool) []Pruned {
		var got []Pruned
		if err := f.ag.Prune(ctx, PruneRequest{Archives: all, Now: now, DryRun: dry, Cluster: f.c, Report: func(p Pruned) { got = append(got, p) }}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	verdicts := func(ps []Pruned) []PruneVerdict {
		var v []PruneVerdict
		for _, p := range ps {
			v = append(v, p.Verdict)
		}
		return v
	}
	want := func(v ...PruneVerdict) []PruneVerdict { return v }

	if got := prune(time.Now(), false); !slices.Equal(verdicts(got), want(KeepRetained, KeepRetained)) {
		t.Errorf("within retention: %+v", got)
	}
	later := time.Now().Add(91 * 24 * time.Hour)
	if got := prune(later, true); !slices.Equal(verdicts(got), want(WouldDelete, KeepNewest)) || !strings.Contains(got[0].Reason, "retention 2160h0m0s expired on") {
		t.Errorf("dry run: %+v", got)
	}
	if left, _ := f.ag.List(ctx, []string{"paris"}, ""); len(left) != 2 {
		t.Errorf("a dry run deleted: %d left", len(left))
	}
	got := prune(later, false)
	if !slices.Equal(verdicts(got), want(Deleted, KeepNewest)) || got[0].LogIndex == 0 {
		t.Errorf("prune: %+v", got)
	}
	if p := f.c.last(t, client.AttestPrune); p.Details["archive"] != all[0].Manifest.ArchiveID || p.Details["reason"] != got[0].Reason {
		t.Errorf("prune attested %+v", p)
	}
	if left, _ := f.ag.List(ctx, []string{"paris"}, ""); len(left) != 1 || left[0].Manifest.ArchiveID != all[1].Manifest.ArchiveID {
		t.Errorf("left after prune: %+v", left)
	}
}

// drillSource serves fixed drills.
type drillSource []client.Drill

func (d drillSource) Drills(context.Context, string) ([]client.Drill, error) { return d, nil }

func TestStatus(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := f.run(t)
	all, err := f.ag.List(ctx, []string{"paris"}, "")
	if err != nil {
		t.Fatal(err)
	}
	drillOf := func(result, secs string) drillSource {
		var d client.Drill
		d.Dataset = "hr"
		d.Entry.Index = 9
		d.Entry.Details = map[string]string{"archive": m.ArchiveID, "result": result, "restore_seconds": secs}
		return drillSource{d}
	}
	for _, c := range []struct {
		name   string
		all    []Listed
		drills drillSource
		after  time.Duration
		missed int
	}{
		{"fresh, drilled", all, drillOf("ok", "1.5"), 0, 0},
		{"no drill", all, nil, 0, 1},
		{"failed drill", all, drillOf("failed: integrity check", "1.5"), 0, 1},
		{"drill over the RTO", all, drillOf("ok", "14401"), 0, 1},
		{"no archive", nil, drillOf("ok", "1.5"), 0, 1},
		{"archive past the RPO", all, drillOf("ok", "1.5"), 25 * time.Hour, 1},
	} {
		f.ag.now = func() time.Time { return time.Now().Add(c.after) }
		sts, err := f.ag.Status(ctx, c.drills, c.all, "")
		if err != nil || len(sts) != 1 || sts[0].Missed() != c.missed {
			t.Errorf("%s: %+v, %v; want %d missed", c.name, sts, err, c.missed)
		}
	}
}

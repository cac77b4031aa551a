package main

// The custody report of a busy pack (many ceremonies, long ids, restore
// drills): its restore drills.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// busyReport is the custody report of a fake pack with something in every
// section, and long values wherever a log can hold them: KEK ids of 64
// bytes, agent identities, officer ids, checksums, reasons, ceremony
// descriptions; and restore drills of four datasets (one never drilled).
func busyReport(t *testing.T) *custodyReport {
	t.Helper()
	const cluster = "custos-eu-central-production-frankfurt"
	f := newFakeLog(t, cluster, 2)
	hexOf := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	officers := []string{"alice.schmidt-security-officer-frankfurt", "bogdan.nowak-security-officer-warsaw", "carla.rossi-security-officer-milan"}
	agent := ledger.Actor{Identity: "custos://" + cluster + "/agent/backup-agent-payroll-ledger-exports-frankfurt-01?region=DE", Role: "agent", Region: "DE",
		CertFingerprint: "sha256:" + hexOf("agent")}
	officerActor := func(o string) ledger.Actor {
		return ledger.Actor{Identity: "custos://" + cluster + "/officer/" + o + "?region=DE", Role: "officer", Region: "DE"}
	}
	keks := []string{
		"payroll-ledger-exports-eu-central-frankfurt-quarterly-2026-q4-v1",
		"hr-personnel-files-and-contracts-archive-eu-central-frankfurt-01",
		"crm",
	}
	var contents audit.Contents
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Ceremonies: each KEK created, then rotations, legal holds and
	// policy changes, each proposed, approved by two officers and executed.
	var ops []ceremony.Params
	pol := ceremony.Policy{Threshold: 2, ActivationTTL: 5 * time.Minute,
		Unwrap:  ceremony.Access{Identities: []string{"agent/backup-agent-payroll-ledger-exports-frankfurt-01"}, Regions: []string{"DE", "FR", "NL"}},
		Wrap:    ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE", "FR", "NL"}},
		Context: []string{"classification", "dataset"}, Escrow: ceremony.Escrow{Enabled: true, M: 2}}
	for _, k := range keks {
		ops = append(ops, ceremony.KEKCreate{KEKID: k, Policy: pol})
	}
	for i := range 24 {
		k := keks[i%len(keks)]
		switch i % 4 {
		case 0, 1:
			ops = append(ops, ceremony.KEKRotate{KEKID: k})
		case 2:
			ops = append(ops, ceremony.LegalHoldSet{KEKID: k, Reason: fmt.Sprintf("Case LG-Frankfurt-2026-%04d: preservation order of the regional court, counsel reference DPO/2026/%d/retention", i, i)})
		case 3:
			ops = append(ops, ceremony.LegalHoldRelease{KEKID: k, Reason: "preservation order lifted by the regional court; counsel confirmed in writing"})
		}
	}
	version := map[string]int{}
	for i, p := range ops {
		at := created.Add(time.Duration(len(f.entries)) * time.Second)
		prop := ceremony.Proposal{Cluster: cluster, ID: fmt.Sprintf("%032x", 0xc0ffee000+i), Params: p, Proposer: officers[i%3],
			Created: at, Expires: at.Add(24 * time.Hour), StateVersion: uint64(10 + i)}
		raw, err := prop.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		d := map[string]string{"proposal.id": prop.ID, "proposal.operation": string(prop.Operation()), "proposal.proposer": prop.Proposer}
		proposed := uint64(len(f.entries))
		f.add(t, ledger.Entry{Type: "ceremony.propose", Actor: officerActor(prop.Proposer), Node: "n1", Outcome: ledger.OutcomeOK, Details: d})
		approvers := []string{officers[(i+1)%3], officers[(i+2)%3]}
		var approvals []audit.Approval
		for _, o := range approvers {
			ad := map[string]string{"proposal.id": prop.ID, "officer": o}
			approvals = append(approvals, audit.Approval{Officer: o, Entry: uint64(len(f.entries))})
			f.add(t, ledger.Entry{Type: "ceremony.approve", Actor: officerActor(o), Node: "n1", Outcome: ledger.OutcomeOK, Details: ad})
		}
		ed := map[string]string{"proposal.id": prop.ID, "proposal.operation": string(prop.Operation()), "proposal.proposer": prop.Proposer,
			"approvers": strings.Join(approvers, ",")}
		switch p := p.(type) {
		case ceremony.KEKCreate:
			version[p.KEKID] = 1
			ed["kek.id"], ed["kek.version"] = p.KEKID, "1"
		case ceremony.KEKRotate:
			version[p.KEKID]++
			ed["kek.id"], ed["kek.version"] = p.KEKID, fmt.Sprint(version[p.KEKID])
		case ceremony.LegalHoldSet:
			ed["kek.id"], ed["legal_hold.reason"] = p.KEKID, p.Reason
		case ceremony.LegalHoldRelease:
			ed["kek.id"], ed["legal_hold.reason"] = p.KEKID, p.Reason
		}
		if v, ok := ed["kek.version"]; ok {
			ed["kek.threshold"], ed["kek.holders"], ed["kek.escrow"] = "2", "n1,n2,n3", "2 of "+strings.Join(officers, ",")
			ed["kek.public_key"] = "sha256:" + hexOf(ed["kek.id"]+v)
		}
		closed := uint64(len(f.entries))
		f.add(t, ledger.Entry{Type: "ceremony.execute", Actor: officerActor(approvers[1]), Node: "n1", Outcome: ledger.OutcomeOK, Details: ed})
		contents.Ceremonies = append(contents.Ceremonies, audit.Ceremony{ID: prop.ID, Proposal: string(raw), Approvals: approvals,
			Status: "executed", Proposed: proposed, Closed: closed})
	}
	for _, o := range officers {
		contents.Officers = append(contents.Officers, audit.Officer{ID: o, Fingerprint: "sha256:" + hexOf(o)})
	}
	// Key operations, a denial, transfers of four datasets.
	for i := range 12 {
		f.add(t, ledger.Entry{Type: "kek.unwrap", Actor: agent, Node: "n1", KEKID: keks[i%2], KEKVersion: 2, RequestID: fmt.Sprintf("%032x", i),
			Outcome: ledger.OutcomeOK, Details: map[string]string{"context": "sha256:" + hexOf(fmt.Sprint(i))}})
	}
	f.add(t, ledger.Entry{Type: "kek.unwrap", Actor: agent, Node: "n1", KEKID: keks[0], KEKVersion: 2, Outcome: ledger.OutcomeDenied,
		Reason: "unwrap_failed: the wrapped key does not open under this context (dataset=payroll-ledger-exports, classification=confidential)"})
	datasets := []string{"payroll-ledger-exports-eu-central-frankfurt-quarterly", "hr", "crm", "finance-general-ledger"}
	for i, ds := range datasets {
		f.add(t, ledger.Entry{Type: typeTransfer, Actor: agent, Node: "n1", KEKID: keks[i%2], KEKVersion: 2, Outcome: ledger.OutcomeOK,
			Details: map[string]string{"archive": archiveID(ds, i), "dataset": ds, "sha256": hexOf(ds), "size": "73400320",
				"target": "s3-object-lock-eu-west-paris-backup-vault-02", "region": "FR",
				"decision": "dataset policy eu-only-ciphertext allows FR: EU/EEA region, ciphertext only, Object Lock retention 400 days", "wrap": "online"}})
	}
	// Restore drills: payroll drilled four times (an early one of the
	// earlier format, without RTO; a failure; an ok one; the last over its
	// RTO), hr once in time, crm once in a format without restore time,
	// finance never.
	drill := func(ds string, n int, result, secs, rto string) {
		d := map[string]string{"archive": archiveID(ds, n), "dataset": ds, "result": result}
		if secs != "" {
			d["restore_seconds"] = secs
		}
		if rto != "" {
			d["rto_seconds"], d["target"] = rto, "s3-object-lock-eu-west-paris-backup-vault-02"
		}
		out := ledger.OutcomeOK
		if result != "ok" {
			out = ledger.OutcomeError
		}
		f.add(t, ledger.Entry{Type: client.AttestDrill, Actor: agent, Node: "n1", KEKID: keks[0], KEKVersion: 2, Outcome: out, Details: d})
	}
	pay := datasets[0]
	drill(pay, 1, "ok", "812.402", "")
	drill(pay, 2, "failed: integrity check", "3.004", "14400")
	drill(pay, 3, "ok", "901.117", "14400")
	drill("hr", 1, "ok", "42.250", "3600")
	drill(pay, 4, "restored, but in 4h12m9s, over the RTO of 4h0m0s", "15129.884", "14400")
	drill("crm", 1, "ok", "", "")
	contents.Header = audit.Header{Cluster: cluster, Origin: "custos/" + cluster, From: 0, To: uint64(len(f.entries)), Created: created.Add(48 * time.Hour)}
	contents.Checkpoint = f.checkpoint(t, len(f.entries), nil)

	r := &custodyReport{Pack: "/srv/audit/evidence/" + cluster + "/pack-2026-q4-from-0.jsonl", PackSHA256: hexOf("pack"), Generated: created.Add(49 * time.Hour),
		Verification: "The pack was not verified: the report was made with --no-verify."}
	b := newReportBuilder(r)
	b.followReleases(contents.Header, nil)
	for _, raw := range f.entries {
		e, err := ledger.ParseEntry(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.entry(e); err != nil {
			t.Fatal(err)
		}
	}
	b.contents(&contents)
	b.finish()
	return r
}

// archiveID is an archive id as the agent makes them (time and random
// hex), the nth of dataset.
func archiveID(dataset string, n int) string {
	h := sha256.Sum256([]byte(dataset))
	return fmt.Sprintf("202612%02dT100003Z-%x", n, h[:8])
}

func TestReportDrills(t *testing.T) {
	r := busyReport(t)
	if r.DrillTotal != 6 || r.DrillMisses != 2 || r.Undrilled != 1 || len(r.Drills) != 4 || len(r.MissedDrills) != 2 {
		t.Fatalf("drills %d, missed %d, undrilled %d, datasets %d, listed misses %d", r.DrillTotal, r.DrillMisses, r.Undrilled, len(r.Drills), len(r.MissedDrills))
	}
	byName := map[string]*drillDataset{}
	for _, d := range r.Drills {
		byName[d.Dataset] = d
	}
	pay := byName["payroll-ledger-exports-eu-central-frankfurt-quarterly"]
	if pay == nil || pay.Drills != 4 || pay.Misses != 2 || pay.Last == nil || !strings.HasPrefix(pay.Last.Verdict(), "MISSED: restored, but in 4h12m9s") {
		t.Errorf("payroll drills %+v", pay)
	}
	if fin := byName["finance-general-ledger"]; fin == nil || fin.Last != nil || fin.Drills != 0 {
		t.Errorf("finance, transferred but never drilled: %+v", fin)
	}
	if got := r.MissedDrills[0]; got.Result != "failed: integrity check" || secondsWords(got.Restore) != "3.0 s" || secondsWords(got.RTO) != "4h" {
		t.Errorf("first missed drill %+v", got)
	}
	var htm, md bytes.Buffer
	if err := r.writeHTML(&htm); err != nil {
		t.Fatal(err)
	}
	if err := r.writeMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	hr := archiveID("hr", 1)
	wantAll(t, "Markdown", md.String(), "## Restore drills", "6 restore drills of 4 datasets in the pack, 2 missed",
		"Dataset finance-general-ledger had no drill in the pack.",
		"| hr | 2026-01-01 00:02:10Z | 130 | "+hr+" | 42.2 s | 1h | ok, within the RTO | 1 | 0 |",
		"| crm | 2026-01-01 00:02:12Z | 132 | "+archiveID("crm", 1)+" | not recorded | not recorded | ok, but the restore time is not recorded | 1 | 0 |",
		"| finance-general-ledger | no drill in this pack | — | — | — | — | — | 0 | 0 |",
		"### Missed drills", "| 4h12m10s | 4h | MISSED: restored, but in 4h12m9s, over the RTO of 4h0m0s |",
		"| Restore drills (missed) | 6 (2) |", "| Datasets without a drill | 1 |")
	wantAll(t, "HTML", htm.String(), "<h2>Restore drills</h2>", `<td colspan="6" class="warn">No drill in this pack.</td>`, "<h3>Missed drills</h3>",
		"<code>"+hr+"</code>", "ok, within the RTO")

	// One by one: what each drill entry's details make of it.
	for _, tc := range []struct {
		name    string
		details map[string]string
		verdict string
		missed  bool
	}{
		{"in time", map[string]string{"result": "ok", "restore_seconds": "59.95", "rto_seconds": "60"}, "ok, within the RTO", false},
		{"ok, but over the RTO it records", map[string]string{"result": "ok", "restore_seconds": "61", "rto_seconds": "60"}, "MISSED: restore time over the RTO", true},
		{"earlier format, no RTO", map[string]string{"result": "ok", "restore_seconds": "61"}, "ok; RTO not recorded", false},
		{"failed", map[string]string{"result": "failed: restore error", "restore_seconds": "1", "rto_seconds": "60"}, "MISSED: failed: restore error", true},
		{"no result", map[string]string{"restore_seconds": "1"}, "MISSED: no result recorded", true},
		{"unreadable time", map[string]string{"result": "ok", "restore_seconds": "soon", "rto_seconds": "60"}, "ok, but the restore time is unreadable", false},
	} {
		f := newFakeLog(t, "test", 1)
		d := map[string]string{"archive": archiveID("hr", 1), "dataset": "hr"}
		maps.Copy(d, tc.details)
		f.add(t, ledger.Entry{Type: client.AttestDrill, Actor: ledger.Actor{Identity: "custos://test/agent/a?region=DE", Role: "agent", Region: "DE"},
			Outcome: ledger.OutcomeOK, Details: d})
		r := &custodyReport{}
		b := newReportBuilder(r)
		for _, raw := range f.entries {
			e, _ := ledger.ParseEntry(raw)
			_ = b.entry(e)
		}
		b.finish()
		if len(r.Drills) != 1 || r.Drills[0].Last == nil {
			t.Fatalf("%s: drills %+v", tc.name, r.Drills)
		}
		if l := r.Drills[0].Last; l.Verdict() != tc.verdict || l.Missed() != tc.missed || (r.DrillMisses == 1) != tc.missed {
			t.Errorf("%s: verdict %q, missed %v (%d); want %q, %v", tc.name, l.Verdict(), l.Missed(), r.DrillMisses, tc.verdict, tc.missed)
		}
	}
	if got := secondsWords(parseDrillFigure("soon")); got != `unreadable ("soon")` {
		t.Errorf("an unreadable figure reads %q", got)
	}
	for s, want := range map[string]string{"14400": "4h", "5400": "1h30m", "901.117": "15m1s", "120": "2m", "42.25": "42.2 s", "": "not recorded"} {
		if got := secondsWords(parseDrillFigure(s)); got != want {
			t.Errorf("%q seconds read %q, want %q", s, got, want)
		}
	}
}

package report

// Build: a report of a pack that verifies, of one that does not (refused,
// or under a banner), of one not verified, and of a partial pack.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/audit/audittest"
	"github.com/custos-eu/custos/keysvc/ledger"
)

func TestReportBuild(t *testing.T) {
	f := audittest.NewLog(t, "test", 1)
	f.RegisterNode(t)
	f.Grow(t, 1)
	tr, err := audit.ParseTrust(f.Trust(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	c := audittest.NewClient(t, "test", "backup")
	a, req := f.Activate(t, c)
	f.Release(t, "n2", num(a), req, c)
	agent := ledger.Actor{Identity: c.ID.String(), Role: "agent", Region: "DE"}
	for range 12 {
		f.Add(t, ledger.Entry{Type: ledger.TypeUnwrap, Actor: agent, Node: "n1", KEKID: "backups", KEKVersion: 1, Outcome: ledger.OutcomeOK})
	}
	f.Add(t, ledger.Entry{Type: ledger.TypeDrill, Actor: agent, Node: "n1", Outcome: ledger.OutcomeOK,
		Details: map[string]string{"dataset": "hr", "archive": "a1", "result": "ok", "restore_seconds": "42.5", "rto_seconds": "60"}})
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	opts := Options{Pack: "p.jsonl", Trust: tr, TrustName: "trust.json", Generated: now}

	good := f.Pack(t, 0, 3, nil)
	r, err := Build(bytes.NewReader(good), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Verified || r.PackSHA256 != sum(good) || r.Generated != now || r.CheckpointSigner != "custos/test/n1" ||
		r.Entries != uint64(len(f.Entries)) || r.UnwrapTotal != 12 || r.ActivationTotal != 1 || r.DrillTotal != 1 || r.CheckpointSize != uint64(len(f.Entries)) {
		t.Errorf("verified pack: %+v", r)
	}
	wantAll(t, "verification", r.Verification, "Offline, against trust file trust.json (which pins the genesis of cluster test and a checkpoint of size 3; the pack's log extends it",
		"1 share releases checked against 1 activations")

	// An entry changed: refused, or reported on under a banner.
	bad := f.Pack(t, 0, 3, func(i int, raw []byte) []byte {
		if i != 8 {
			return raw
		}
		e, _ := ledger.ParseEntry(raw)
		e.KEKID = "forged"
		b, _ := e.Marshal()
		return b
	})
	var nv *NotVerifiedError
	if _, err := Build(bytes.NewReader(bad), opts); !errors.As(err, &nv) || nv.Where != audit.KindCheckpoint || !strings.Contains(nv.Msg, "is not the root of the pack's entries") {
		t.Fatalf("a changed entry: %v", err)
	}
	uo := opts
	uo.Unverified = true
	r, err = Build(bytes.NewReader(bad), uo)
	if err != nil {
		t.Fatal(err)
	}
	if r.Verified || r.PackSHA256 != sum(bad) || r.Entries != uint64(len(f.Entries)) || r.UnwrapTotal != 12 ||
		!strings.HasPrefix(r.Verification, "Verification against trust.json FAILED at checkpoint: ") {
		t.Errorf("unverified report: verified %v, entries %d, unwraps %d: %s", r.Verified, r.Entries, r.UnwrapTotal, r.Verification)
	}

	// No trust: not verified, and a pack cut short is read as far as it goes.
	cut := good[:bytes.Index(good, []byte(`{"t":"entry","i":9,`))+20]
	r, err = Build(bytes.NewReader(cut), Options{Pack: "cut.jsonl", Generated: now})
	if err != nil {
		t.Fatal(err)
	}
	if r.Verified || r.Entries != 9 || r.PackSHA256 != sum(cut) ||
		!strings.HasPrefix(r.Verification, "The pack was not verified: the report was made with --no-verify. Reading it stopped early: ") {
		t.Errorf("cut pack, not verified: entries %d: %s", r.Entries, r.Verification)
	}

	// A pack from entry 10, and a trust file with no state there: partial.
	tail := f.Pack(t, 10, 3, nil)
	if _, err := Build(bytes.NewReader(tail), opts); !errors.As(err, &nv) || nv.Where != audit.KindTrust || !strings.HasSuffix(nv.Msg, audit.PartialHint) {
		t.Fatalf("partial pack: %v", err)
	}
	po := opts
	po.Partial = true
	if r, err = Build(bytes.NewReader(tail), po); err != nil {
		t.Fatal(err)
	}
	if !r.Verified || r.From != 10 || r.Entries != uint64(len(f.Entries)-10) || !strings.Contains(r.Verification, " PARTIAL: the pack starts at entry 10") {
		t.Errorf("partial pack: from %d, entries %d: %s", r.From, r.Entries, r.Verification)
	}
}

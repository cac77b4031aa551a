package audit_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// foldedDenial is a denial and, n entries later, its fold.
func (s *synth) foldedDenial(count uint64, tamper func(map[string]string)) (first, fold uint64) {
	deny := ledger.Entry{Type: "kek.unwrap", Actor: ledger.Actor{Identity: "custos://test/agent/a?region=DE", Role: "agent", Region: "DE", CertFingerprint: "sha256:00"}, KEKID: "payroll", KEKVersion: 1,
		Outcome: ledger.OutcomeDenied, Reason: "policy_denied: agent may not unwrap"}
	first = s.add(deny)
	s.keyOps(2)
	d := map[string]string{
		ledger.DetailFoldCount: strconv.FormatUint(count, 10),
		ledger.DetailFoldFirst: s.now.Add(-time.Millisecond).Format("2006-01-02T15:04:05.000000000Z"),
		ledger.DetailFoldLast:  s.now.Format("2006-01-02T15:04:05.000000000Z"),
		ledger.DetailFoldAfter: strconv.FormatUint(first, 10),
	}
	if tamper != nil {
		tamper(d)
	}
	deny.Details = d
	return first, s.add(deny)
}

// TestVerifyFoldedDenials: a folded denial verifies and is counted as the
// refusals it stands for; a fold that cannot be (a partial one, a zero
// count, one naming a later entry, times after the entry) fails verify.
func TestVerifyFoldedDenials(t *testing.T) {
	s := policyLog(t)
	s.foldedDenial(41, nil)
	r, err := verifyAll(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if r.Denied != 2 || r.Folded != 1 || r.FoldedDenials != 41 {
		t.Errorf("denied %d, folded %d standing for %d; want 2, 1, 41", r.Denied, r.Folded, r.FoldedDenials)
	}
	for name, tamper := range map[string]func(map[string]string){
		"partial":     func(d map[string]string) { delete(d, ledger.DetailFoldLast) },
		"zero count":  func(d map[string]string) { d[ledger.DetailFoldCount] = "0" },
		"later entry": func(d map[string]string) { d[ledger.DetailFoldAfter] = "99999" },
		"future":      func(d map[string]string) { d[ledger.DetailFoldLast] = "2099-01-01T00:00:00.000000000Z" },
	} {
		t.Run(name, func(t *testing.T) {
			s := policyLog(t)
			_, fold := s.foldedDenial(3, tamper)
			_, err := verifyAll(t, s)
			wantFailure(t, err, audit.KindEntry, int64(fold), "folded denial")
		})
	}
}

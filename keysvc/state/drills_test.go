package state

import (
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// isDrill, the fast check the drill index uses, agrees with a full parse:
// a backup.drill entry is one whatever its details say, and no other entry
// is one, even when its details or reason name backup.drill.
// (The check moved here from keysvc's TestDrillIndex with the state machine.)
func TestIsDrill(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	actor := ledger.Actor{Identity: "custos://test/agent/backup?region=DE", Role: "agent", Region: "DE"}
	for i, e := range []ledger.Entry{
		{Type: ledger.TypeDrill, Details: map[string]string{"dataset": "hr", "result": "ok"}},
		{Type: ledger.TypeDrill, Outcome: ledger.OutcomeDenied, Reason: "hash mismatch"},
		{Type: ledger.TypeTransfer, Details: map[string]string{"note": `","type":"backup.drill"`}},
		{Type: ledger.TypeUnwrap, Reason: "backup.drill"},
		{Type: "backup.drills"},
		{Type: "x.backup.drill"},
	} {
		e.Index, e.Time, e.Actor = uint64(1000+i), t0.Add(time.Duration(i)*time.Second), actor
		if e.Outcome == "" {
			e.Outcome = ledger.OutcomeOK
		}
		raw, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := isDrill(raw), e.Type == ledger.TypeDrill; got != want {
			t.Errorf("%s: isDrill %v, want %v", raw, got, want)
		}
	}
}

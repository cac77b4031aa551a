package ceremony

import "testing"

// A proposal has a KEKID exactly when its operation is a KEK operation,
// and every operation that deals key material is one.
func TestKEKFacts(t *testing.T) {
	params := []Params{NodeAdd{}, NodeRemove{}, OfficerAdd{}, OfficerRemove{}, QuorumSet{}, RegionsSet{},
		KEKCreate{KEKID: "k"}, KEKRotate{KEKID: "k"}, KEKDisable{KEKID: "k"}, KEKEnable{KEKID: "k"},
		KEKDestroy{KEKID: "k"}, KEKPolicy{KEKID: "k"}, LegalHoldSet{KEKID: "k"}, LegalHoldRelease{KEKID: "k"},
		EscrowRecover{KEKID: "k"}, IdentityRevoke{}}
	if len(params) != len(Operations()) {
		t.Fatalf("%d params, %d operations", len(params), len(Operations()))
	}
	for _, ps := range params {
		op := ps.Operation()
		if got := (Proposal{Params: ps}).KEKID(); (got == "k") != op.IsKEK() {
			t.Errorf("%s: KEKID %q, IsKEK %v", op, got, op.IsKEK())
		}
		if op.DealsKEK() && !op.IsKEK() {
			t.Errorf("%s deals a KEK but is not a KEK operation", op)
		}
	}
}

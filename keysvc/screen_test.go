package keysvc_test

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

// TestScreenedFloodCostsNoRaftWrites is the attack of an officer
// certificate without an officer record, and of an officer sending
// approvals of unknown proposals with oversized signatures: each refusal
// is decided on the leader without a raft command, and a flood of them
// costs the log one entry per kind and fold window.
func TestScreenedFloodCostsNoRaftWrites(t *testing.T) {
	f := newOfficers(t, "alice", "bob", "carol")
	f.init(2, "alice", "bob", "carol")
	p := f.proposal("alice", ceremony.QuorumSet{M: 3})
	f.mustPropose(p, true)

	before := f.n.Status().Raft.LastLogIndex
	huge := bytes.Repeat([]byte{'A'}, 60<<10)
	const flood = 200
	for range flood {
		_, err := f.n.Approve(ctxT(t, 10*time.Second), p.ID, "mallory", huge, officerActor("mallory"))
		wantRefusal(t, err, string(ceremony.CodeUnknownOfficer))
		_, err = f.n.Approve(ctxT(t, 10*time.Second), "0123456789abcdef0123456789abcdef", "bob", f.sign("bob", p), officerActor("bob"))
		wantRefusal(t, err, errcode.UnknownProposal)
		_, err = f.n.Approve(ctxT(t, 10*time.Second), p.ID, "bob", huge, officerActor("bob"))
		wantRefusal(t, err, string(ceremony.CodeBadSignature))
	}
	// Three kinds of refusal: three log entries, one raft command each.
	if grew := f.n.Status().Raft.LastLogIndex - before; grew > 3 {
		t.Errorf("%d refused approvals took %d raft commands, want at most 3", 3*flood, grew)
	}
	if got := f.entries(ledger.TypeDenied); len(got) != 3 {
		t.Fatalf("%d ceremony.denied entries before the window closed, want 3", len(got))
	}
	if c, _, _ := f.n.Ceremony(p.ID); c.Status != state.StatusPending || len(c.Approvals) != 1 {
		t.Fatalf("the proposal changed: %+v", c)
	}

	// When the window closes, each kind's repeats become one folded entry.
	f.clk.Add(keysvc.DefaultDenialFoldWindow + time.Second)
	var folded []ledger.Entry
	deadline := time.Now().Add(10 * time.Second)
	for len(folded) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		folded = folded[:0]
		for _, e := range f.entries(ledger.TypeDenied) {
			if e.Details[ledger.DetailFoldCount] != "" {
				folded = append(folded, e)
			}
		}
	}
	if len(folded) != 3 {
		t.Fatalf("%d folded entries, want 3", len(folded))
	}
	for _, e := range folded {
		if e.Details[ledger.DetailFoldCount] != strconv.Itoa(flood-1) || e.Outcome != ledger.OutcomeDenied ||
			e.Details[ledger.DetailFoldFirst] == "" || e.Details[ledger.DetailFoldLast] == "" || e.Details[ledger.DetailFoldAfter] == "" {
			t.Errorf("folded entry: %+v", e)
		}
	}
	if m := f.n.Metrics(); m.DenialsFolded != 3*(flood-1) {
		t.Errorf("DenialsFolded = %d, want %d", m.DenialsFolded, 3*(flood-1))
	}
	// After the window, a denial is logged on its own again.
	_, err := f.n.Approve(ctxT(t, 10*time.Second), p.ID, "mallory", huge, officerActor("mallory"))
	wantRefusal(t, err, string(ceremony.CodeUnknownOfficer))
	if got := f.entries(ledger.TypeDenied); len(got) != 7 {
		t.Errorf("%d ceremony.denied entries, want 7", len(got))
	}
}

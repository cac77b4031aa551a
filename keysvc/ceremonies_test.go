package keysvc_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/officer/officertest"
	"github.com/custos-eu/custos/keysvc/state"
)

// clock is a settable leader clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// officers is a ceremony test fixture: one node, officers generated in memory.
type officers struct {
	t    *testing.T
	c    *keysvctest.Cluster
	n    *keysvc.Node
	clk  *clock
	offs *officertest.Set
}

var (
	operatorActor = keysvctest.Operator
	officerActor  = officertest.Actor
)

func newOfficers(t *testing.T, names ...string) *officers {
	return newOfficersOn(t, 1, names...)
}

// newOfficersOn is newOfficers on a cluster of nodes nodes.
func newOfficersOn(t *testing.T, nodes int, names ...string) *officers {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	c := keysvctest.NewCluster(t, nodes, keysvctest.Options{Configure: func(cfg *keysvc.Config) { cfg.Now = clk.Now }})
	return &officers{t: t, c: c, n: c.Leader(), clk: clk, offs: officertest.New(t, names...)}
}

func (f *officers) signer(name string) *officer.Signer { return f.offs.Signer(name) }

func (f *officers) bundle(name string) string { return f.offs.Bundle(name) }

func (f *officers) init(quorum int, names ...string) {
	f.t.Helper()
	in := state.Init{Quorum: quorum, DefaultThreshold: 2}
	for _, n := range names {
		in.Officers = append(in.Officers, f.bundle(n))
	}
	if err := f.n.Init(ctxT(f.t, 10*time.Second), in, operatorActor); err != nil {
		f.t.Fatalf("init: %v", err)
	}
}

// proposal makes a proposal by proposer against the current state version.
func (f *officers) proposal(proposer string, ps ceremony.Params) ceremony.Proposal {
	return officertest.Proposal(f.t, "test", proposer, ps, f.clk.Now(), f.n.Status().StateVersion)
}

func (f *officers) sign(name string, p ceremony.Proposal) []byte { return f.offs.Sign(name, p) }

func (f *officers) propose(p ceremony.Proposal, signed bool) (state.Ceremony, error) {
	b, err := p.Marshal()
	if err != nil {
		f.t.Fatal(err)
	}
	var sig []byte
	if signed {
		sig = f.sign(p.Proposer, p)
	}
	return f.n.Propose(ctxT(f.t, 10*time.Second), b, p.Proposer, sig, officerActor(p.Proposer))
}

func (f *officers) mustPropose(p ceremony.Proposal, signed bool) state.Ceremony {
	f.t.Helper()
	c, err := f.propose(p, signed)
	if err != nil {
		f.t.Fatalf("propose %s: %v", p.Operation(), err)
	}
	return c
}

func (f *officers) approve(name string, p ceremony.Proposal) (state.Ceremony, error) {
	return f.n.Approve(ctxT(f.t, 10*time.Second), p.ID, name, f.sign(name, p), officerActor(name))
}

// entries returns the log's entries of the given types.
func (f *officers) entries(types ...string) []ledger.Entry {
	f.t.Helper()
	raw, err := f.n.Entries(0, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []ledger.Entry
	for _, b := range raw {
		e, err := ledger.ParseEntry(b)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, typ := range types {
			if e.Type == typ {
				out = append(out, e)
			}
		}
	}
	return out
}

func wantRefusal(t *testing.T, err error, code string) {
	t.Helper()
	var r *state.CeremonyRefusal
	if !errors.As(err, &r) || r.Code != code {
		t.Fatalf("got %v, want a refusal %s", err, code)
	}
	if r.Entry == 0 {
		t.Errorf("refusal %s not logged", code)
	}
}

func TestInitOnce(t *testing.T) {
	f := newOfficers(t, "alice", "bob", "carol")
	p := f.proposal("alice", ceremony.QuorumSet{M: 3})
	if _, err := f.propose(p, true); !errors.Is(err, keysvc.ErrNotInitialized) {
		t.Fatalf("propose before init: %v, want ErrNotInitialized", err)
	}
	ctx := ctxT(t, 10*time.Second)
	for name, in := range map[string]state.Init{
		"quorum one":     {Officers: []string{f.bundle("alice"), f.bundle("bob")}, Quorum: 1, DefaultThreshold: 2},
		"quorum over":    {Officers: []string{f.bundle("alice"), f.bundle("bob")}, Quorum: 3, DefaultThreshold: 2},
		"same officer":   {Officers: []string{f.bundle("alice"), f.bundle("alice")}, Quorum: 2, DefaultThreshold: 2},
		"bad bundle":     {Officers: []string{f.bundle("alice"), f.bundle("bob") + " "}, Quorum: 2, DefaultThreshold: 2},
		"no threshold":   {Officers: []string{f.bundle("alice"), f.bundle("bob")}, Quorum: 2},
		"region outside": {Officers: []string{f.bundle("alice"), f.bundle("bob")}, Quorum: 2, DefaultThreshold: 2, Regions: []string{"FR"}},
		"region not EU":  {Officers: []string{f.bundle("alice"), f.bundle("bob")}, Quorum: 2, DefaultThreshold: 2, Regions: []string{"DE", "US"}},
	} {
		if err := f.n.Init(ctx, in, operatorActor); !errors.Is(err, keysvc.ErrInvalidInit) {
			t.Errorf("%s: %v, want ErrInvalidInit", name, err)
		}
	}
	if st := f.n.Status(); st.Initialized {
		t.Fatal("initialized after refused inits")
	}
	if err := f.n.Init(ctx, state.Init{Officers: []string{f.bundle("alice"), f.bundle("bob"), f.bundle("carol")},
		Quorum: 2, DefaultThreshold: 2, Regions: []string{"NL", "DE"}}, operatorActor); err != nil {
		t.Fatal(err)
	}
	if err := f.n.Init(ctx, state.Init{Officers: []string{f.bundle("alice"), f.bundle("bob")}, Quorum: 2, DefaultThreshold: 2}, operatorActor); !errors.Is(err, keysvc.ErrAlreadyInitialized) {
		t.Fatalf("second init: %v, want ErrAlreadyInitialized", err)
	}
	st := f.n.Status()
	if !st.Initialized || st.Quorum != 2 || st.DefaultThreshold != 2 || st.StateVersion != 1 ||
		strings.Join(st.Officers, ",") != "alice,bob,carol" || strings.Join(st.AllowedRegions, ",") != "DE,NL" {
		t.Fatalf("status after init: %+v", st)
	}
	es := f.entries(ledger.TypeInit)
	if len(es) != 9 {
		t.Fatalf("%d cluster.init entries, want 7 denied, 1 ok, 1 denied", len(es))
	}
	ok := es[7]
	if ok.Outcome != ledger.OutcomeOK || ok.Details["officers"] != "alice,bob,carol" || ok.Details["quorum"] != "2" ||
		ok.Details["officer.2"] != "bob "+f.signer("bob").Public().Fingerprint() || !strings.HasPrefix(ok.Details["node.1"], "n1 keys_sha256:") ||
		ok.Details["allowed_regions"] != "DE,NL" {
		t.Errorf("init entry: %+v", ok)
	}
	if es[8].Outcome != ledger.OutcomeDenied {
		t.Errorf("second init logged %s", es[8].Outcome)
	}
}

func TestCeremonyRefusals(t *testing.T) {
	f := newOfficers(t, "alice", "bob", "carol", "mallory")
	f.init(2, "alice", "bob", "carol")

	t.Run("wrong cluster", func(t *testing.T) {
		p := f.proposal("alice", ceremony.QuorumSet{M: 3})
		p.Cluster = "other"
		_, err := f.propose(p, true)
		wantRefusal(t, err, string(ceremony.CodeWrongCluster))
	})
	t.Run("unknown proposer", func(t *testing.T) {
		_, err := f.propose(f.proposal("mallory", ceremony.QuorumSet{M: 3}), true)
		wantRefusal(t, err, string(ceremony.CodeUnknownOfficer))
	})
	t.Run("expired at submission", func(t *testing.T) {
		p := f.proposal("alice", ceremony.QuorumSet{M: 3})
		p.Created, p.Expires = p.Created.Add(-2*time.Hour), p.Created.Add(-time.Hour)
		_, err := f.propose(p, true)
		wantRefusal(t, err, string(ceremony.CodeExpired))
	})
	t.Run("stale state version", func(t *testing.T) {
		p := f.proposal("alice", ceremony.QuorumSet{M: 3})
		p.StateVersion = 0
		_, err := f.propose(p, true)
		wantRefusal(t, err, string(ceremony.CodeSuperseded))
	})
	t.Run("submitted by another officer", func(t *testing.T) {
		p := f.proposal("alice", ceremony.QuorumSet{M: 3})
		b, _ := p.Marshal()
		_, err := f.n.Propose(ctxT(t, 10*time.Second), b, "bob", nil, officerActor("bob"))
		wantRefusal(t, err, errcode.NotProposer)
	})
	t.Run("approvals", func(t *testing.T) {
		p := f.proposal("alice", ceremony.QuorumSet{M: 3})
		c := f.mustPropose(p, false) // proposing without a signature is not approving
		if c.Status != state.StatusPending || len(c.Approvals) != 0 {
			t.Fatalf("after propose: %+v", c)
		}
		if _, err := f.propose(p, false); err == nil {
			t.Fatal("same proposal submitted twice")
		} else {
			wantRefusal(t, err, errcode.ProposalExists)
		}
		_, err := f.approve("mallory", p)
		wantRefusal(t, err, string(ceremony.CodeUnknownOfficer))
		_, err = f.n.Approve(ctxT(t, 10*time.Second), p.ID, "bob", f.sign("carol", p), officerActor("bob"))
		wantRefusal(t, err, string(ceremony.CodeBadSignature))
		if _, err := f.approve("bob", p); err != nil {
			t.Fatal(err)
		}
		_, err = f.approve("bob", p)
		wantRefusal(t, err, string(ceremony.CodeDuplicateApprover))
		_, err = f.n.Approve(ctxT(t, 10*time.Second), "00000000000000000000000000000000", "bob", f.sign("bob", p), officerActor("bob"))
		wantRefusal(t, err, errcode.UnknownProposal)

		f.clk.Add(2 * time.Hour)
		_, err = f.approve("carol", p)
		wantRefusal(t, err, string(ceremony.CodeExpired))
		c, _, _ = f.n.Ceremony(p.ID)
		if c.Status != state.StatusRefused || c.Code != string(ceremony.CodeExpired) || len(c.Approvals) != 1 {
			t.Fatalf("expired proposal: %+v", c)
		}
		_, err = f.approve("carol", p)
		wantRefusal(t, err, string(ceremony.CodeClosed))
		if st := f.n.Status(); st.Quorum != 2 {
			t.Fatalf("quorum %d after refusals", st.Quorum)
		}
	})
	// Every refusal is logged with its code as the reason: those the leader
	// screens before raft (an inactive officer, a foreign or reused
	// proposal, an unknown or closed one) as ceremony.denied, the others by
	// the state machine.
	denied, screened := 0, 0
	for _, e := range f.entries(ledger.TypePropose, ledger.TypeApprove, ledger.TypeDenied) {
		if e.Outcome == ledger.OutcomeDenied {
			denied++
		}
		if e.Type == ledger.TypeDenied {
			screened++
			if r := e.Details["request"]; r != "propose" && r != "approve" || e.Details["officer"] == "" {
				t.Errorf("screened refusal without its request: %+v", e)
			}
		}
	}
	if denied != 12 || screened != 6 {
		t.Errorf("%d denied propose/approve entries (%d screened), want 12 (6)", denied, screened)
	}
	if refused := f.entries(ledger.TypeRefuse); len(refused) != 1 || !strings.HasPrefix(refused[0].Reason, "expired") {
		t.Errorf("ceremony.refuse entries: %+v", refused)
	}
}

func TestCeremonyExecutes(t *testing.T) {
	f := newOfficers(t, "alice", "bob", "carol", "dave")
	f.init(2, "alice", "bob", "carol")

	// officer.add, proposer's signature counted: one more approval executes it.
	add := f.proposal("alice", ceremony.OfficerAdd{ID: "dave", Bundle: f.bundle("dave"), Fingerprint: f.signer("dave").Public().Fingerprint()})
	other := f.proposal("bob", ceremony.QuorumSet{M: 3}) // open while add executes
	f.mustPropose(other, true)
	if c := f.mustPropose(add, true); c.Status != state.StatusPending || len(c.Approvals) != 1 {
		t.Fatalf("after signed propose: %+v", c)
	}
	c, err := f.approve("carol", add)
	if err != nil || c.Status != state.StatusExecuted {
		t.Fatalf("approve add: %+v, %v", c, err)
	}
	st := f.n.Status()
	if strings.Join(st.Officers, ",") != "alice,bob,carol,dave" || st.StateVersion != 2 {
		t.Fatalf("after officer.add: %+v", st)
	}
	// The state version moved: the other proposal is superseded.
	_, err = f.approve("carol", other)
	wantRefusal(t, err, string(ceremony.CodeSuperseded))

	// The new officer approves: quorum.set 3.
	q := f.proposal("dave", ceremony.QuorumSet{M: 3})
	f.mustPropose(q, true)
	if c, err := f.approve("alice", q); err != nil || c.Status != state.StatusExecuted {
		t.Fatalf("approve quorum.set: %+v, %v", c, err)
	}
	if st := f.n.Status(); st.Quorum != 3 || st.StateVersion != 3 {
		t.Fatalf("after quorum.set: %+v", st)
	}

	// officer.remove: fine down to the quorum, refused below it.
	rm := f.proposal("alice", ceremony.OfficerRemove{ID: "dave"})
	f.mustPropose(rm, true)
	f.approve("bob", rm)
	if c, err := f.approve("carol", rm); err != nil || c.Status != state.StatusExecuted {
		t.Fatalf("remove dave: %+v, %v", c, err)
	}
	_, err = f.propose(f.proposal("dave", ceremony.QuorumSet{M: 2}), true)
	wantRefusal(t, err, string(ceremony.CodeUnknownOfficer))
	rm2 := f.proposal("alice", ceremony.OfficerRemove{ID: "carol"})
	f.mustPropose(rm2, true)
	f.approve("bob", rm2)
	c, err = f.approve("carol", rm2)
	if err != nil || c.Status != state.StatusRefused || c.Code != errcode.BelowQuorum {
		t.Fatalf("remove below quorum: %+v, %v", c, err)
	}

	// regions.set: refused while a node is outside, executed otherwise.
	rs := f.proposal("alice", ceremony.RegionsSet{Regions: []string{"FR"}})
	f.mustPropose(rs, true)
	f.approve("bob", rs)
	if c, _ := f.approve("carol", rs); c.Status != state.StatusRefused || c.Code != errcode.RegionInUse {
		t.Fatalf("regions.set without n1's region: %+v", c)
	}
	rs = f.proposal("alice", ceremony.RegionsSet{Regions: []string{"DE", "FR"}})
	f.mustPropose(rs, true)
	f.approve("bob", rs)
	if c, _ := f.approve("carol", rs); c.Status != state.StatusExecuted {
		t.Fatalf("regions.set: %+v", c)
	}
	if st := f.n.Status(); strings.Join(st.AllowedRegions, ",") != "DE,FR" || st.StateVersion != 5 {
		t.Fatalf("after regions.set: %+v", st)
	}

	// Every step is in the log.
	count := map[string]int{}
	for _, e := range f.entries(ledger.TypePropose, ledger.TypeApprove, ledger.TypeExecute, ledger.TypeRefuse, ledger.TypeDenied) {
		count[e.Type+" "+string(e.Outcome)]++
	}
	want := map[string]int{
		"ceremony.propose ok": 7, "ceremony.denied denied": 1,
		"ceremony.approve ok": 17, "ceremony.approve denied": 1,
		"ceremony.execute ok": 4, "ceremony.refuse denied": 3,
	}
	for k, v := range want {
		if count[k] != v {
			t.Errorf("%d %q entries, want %d (all: %v)", count[k], k, v, count)
		}
	}
	list, err := f.n.Ceremonies()
	if err != nil || len(list) != 7 {
		t.Fatalf("ceremonies: %d, %v", len(list), err)
	}
}

func TestNodeCeremonies(t *testing.T) {
	f := newOfficers(t, "alice", "bob")
	f.init(2, "alice", "bob")
	n2 := f.c.Start("n2")
	add := f.proposal("alice", ceremony.NodeAdd{ID: "n2", Region: keysvctest.Region("n2"), RaftAddr: n2.Info().RaftAddr,
		APIAddr: keysvctest.APIAddr("n2"), Keys: n2.Info().Keys, KEM: n2.Info().KEM})
	f.mustPropose(add, true)
	if c, err := f.approve("bob", add); err != nil || c.Status != state.StatusExecuted {
		t.Fatalf("node.add: %+v, %v", c, err)
	}
	f.c.WaitConverged()
	voters := func() int {
		n := 0
		for _, m := range f.n.Status().Members {
			if m.Voter && m.Registered {
				n++
			}
		}
		return n
	}
	if v := voters(); v != 2 {
		t.Fatalf("%d registered voters after node.add, want 2", v)
	}
	// Adding it again is refused at execution.
	again := f.proposal("alice", ceremony.NodeAdd{ID: "n2", Region: keysvctest.Region("n2"), RaftAddr: n2.Info().RaftAddr,
		APIAddr: keysvctest.APIAddr("n2"), Keys: n2.Info().Keys, KEM: n2.Info().KEM})
	f.mustPropose(again, true)
	if c, _ := f.approve("bob", again); c.Status != state.StatusRefused || c.Code != "node_conflict" {
		t.Fatalf("node.add again: %+v", c)
	}
	rm := f.proposal("bob", ceremony.NodeRemove{ID: "n2"})
	f.mustPropose(rm, true)
	if c, err := f.approve("alice", rm); err != nil || c.Status != state.StatusExecuted {
		t.Fatalf("node.remove: %+v, %v", c, err)
	}
	keysvctest.WaitFor(t, "n2 out of the raft configuration", func() bool { return len(f.n.Status().Members) == 1 })
	if st := f.n.Status(); st.StateVersion != 3 {
		t.Errorf("state version %d, want 3", st.StateVersion)
	}
	// After initialisation a node the officers did not add cannot join: the
	// request is refused and logged, and changes nothing, so an open
	// proposal stays valid.
	open := f.proposal("alice", ceremony.QuorumSet{M: 2})
	f.mustPropose(open, true)
	n3 := f.c.Start("n3")
	err := keysvctest.Retry(func(ctx context.Context) error {
		return f.c.Leader().AddNode(ctx, n3.Info(), keysvctest.Operator)
	})
	if !errors.Is(err, keysvc.ErrCeremonyRequired) {
		t.Fatalf("join without a ceremony: %v, want ErrCeremonyRequired", err)
	}
	denied := 0
	for _, e := range f.entries("node.add") {
		if e.Outcome == ledger.OutcomeDenied && e.Details["node.id"] == "n3" {
			denied++
		}
	}
	if denied != 1 {
		t.Errorf("%d denied node.add entries for n3, want 1", denied)
	}
	if st := f.n.Status(); st.StateVersion != 3 {
		t.Errorf("state version %d after a refused join, want 3", st.StateVersion)
	}
	if c, err := f.approve("bob", open); err != nil || c.Status != state.StatusExecuted {
		t.Fatalf("open proposal after a refused join: %+v, %v", c, err)
	}
}

// Officer and node ids go into detail values: a 63-character officer id
// (the longest allowed) still makes a valid init entry.
func TestInitLongOfficerID(t *testing.T) {
	long := strings.Repeat("o", 63)
	f := newOfficers(t, long, "bob")
	f.init(2, long, "bob")
	es := f.entries(ledger.TypeInit)
	if len(es) != 1 || es[0].Details["officer.1"] != long+" "+f.signer(long).Public().Fingerprint() {
		t.Fatalf("init entries: %+v", es)
	}
}

package softhsmtests

// Officers and ceremonies on a real cluster: devcluster's demo officers,
// init, a quorum.set proposed by one officer and approved by another.

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/nodecfg"
	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/officer/officertest"
)

func TestCeremonyOnCluster(t *testing.T) {
	c := startCluster(t, 3, nodecfg.RaftTuning{})
	if err := c.InitOfficers(bounded(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.InitOfficers(bounded(t, 30*time.Second)); err != nil { // a no-op once initialized
		t.Fatal(err)
	}
	load := func(name string) (*officer.Signer, *client.Client) {
		s := officertest.Load(t, c.OfficerKey(name), c.PassphraseFile())
		cl, err := c.OfficerClient(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return s, cl
	}
	alice, aliceAPI := load("alice")
	bob, bobAPI := load("bob")

	// Any node may answer a read: wait until the answering one applied init.
	st := waitStatus(t, aliceAPI, func(st client.Status) bool { return st.Initialized })
	if st.Quorum != 2 || strings.Join(st.Officers, ",") != "alice,bob,carol" {
		t.Fatalf("status after init: %+v", st)
	}
	p := officertest.Proposal(t, st.Cluster, "alice", ceremony.QuorumSet{M: 3}, time.Now(), st.StateVersion)
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cer, err := aliceAPI.Propose(bounded(t, 10*time.Second), client.ProposeRequest{Proposal: string(b), Signature: string(officertest.Sign(t, alice, p))})
	if err != nil || cer.Status != "pending" {
		t.Fatalf("propose: %+v, %v", cer, err)
	}
	waitStatus(t, bobAPI, func(st client.Status) bool { return st.LogSize >= cer.Proposed+2 })
	shown, err := bobAPI.Ceremony(bounded(t, 10*time.Second), p.ID)
	if err != nil || shown.Proposal != string(b) || !strings.Contains(shown.Description, "3") {
		t.Fatalf("show: %+v, %v", shown, err)
	}
	cer, err = bobAPI.Approve(bounded(t, 10*time.Second), p.ID, client.ApproveRequest{Officer: "bob", Signature: string(officertest.Sign(t, bob, p))})
	if err != nil || cer.Status != "executed" {
		t.Fatalf("approve: %+v, %v", cer, err)
	}
	waitStatus(t, bobAPI, func(st client.Status) bool { return st.Quorum == 3 })

	// The log holds init, proposal, both approvals and the execution.
	st = waitStatus(t, operator(t, c), func(st client.Status) bool { return st.LogSize > cer.Closed })
	var types []string
	for _, raw := range allEntries(t, c, st.Leader.ID, st.LogSize) {
		e, err := ledger.ParseEntry(raw)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(e.Type, "ceremony.") || e.Type == "cluster.init" {
			types = append(types, e.Type+":"+string(e.Outcome))
		}
	}
	want := "cluster.init:ok ceremony.propose:ok ceremony.approve:ok ceremony.approve:ok ceremony.execute:ok"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("log: %s\nwant %s", got, want)
	}
}

// waitStatus polls the cluster status through cl until ok holds.
func waitStatus(t *testing.T, cl *client.Client, ok func(client.Status) bool) client.Status {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := cl.Cluster(bounded(t, 10*time.Second))
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never got there: %+v, %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// After init a new node cannot join on its certificate alone: custosd exits
// with ceremony_required; `custosd -describe` gives officers the node's
// description; once their node.add ceremony executed, the node joins.
func TestNodeJoinsOnlyByCeremony(t *testing.T) {
	c := startCluster(t, 3, nodecfg.RaftTuning{})
	if err := c.InitOfficers(bounded(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	alice, bob := officertest.Load(t, c.OfficerKey("alice"), c.PassphraseFile()), officertest.Load(t, c.OfficerKey("bob"), c.PassphraseFile())
	api, err := c.OfficerClient("alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	waitStatus(t, api, func(st client.Status) bool { return st.Initialized })

	n, err := c.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(n.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(bounded(t, 60*time.Second), n.ID); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("%s without a ceremony: %v, want it to exit", n.ID, err)
	}
	if log, _ := os.ReadFile(c.LogPath(n.ID)); !strings.Contains(string(log), "node.add ceremony") {
		t.Fatalf("%s's log does not say what to do:\n%s", n.ID, log)
	}

	out, err := exec.Command(c.Custosd, "-config", c.ConfigPath(n.ID), "-describe").Output()
	if err != nil {
		t.Fatalf("custosd -describe: %v", err)
	}
	var info client.NodeInfo
	if err := json.Unmarshal(out, &info); err != nil || info.ID != n.ID || info.Keys == "" {
		t.Fatalf("description %q: %+v, %v", out, info, err)
	}
	st := waitStatus(t, api, func(client.Status) bool { return true })
	p := officertest.Proposal(t, st.Cluster, "alice", ceremony.NodeAdd{ID: info.ID, Region: info.Region,
		RaftAddr: info.RaftAddr, APIAddr: info.APIAddr, Keys: info.Keys, KEM: info.KEM, Cert: info.Cert}, time.Now(), st.StateVersion)
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if cer, err := api.Propose(bounded(t, 10*time.Second), client.ProposeRequest{Proposal: string(b), Signature: string(officertest.Sign(t, alice, p))}); err != nil || cer.Status != "pending" {
		t.Fatalf("propose node.add: %+v, %v", cer, err)
	}
	bobAPI, err := c.OfficerClient("bob")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bobAPI.Close)
	if cer, err := bobAPI.Approve(bounded(t, 10*time.Second), p.ID, client.ApproveRequest{Officer: "bob", Signature: string(officertest.Sign(t, bob, p))}); err != nil || cer.Status != "executed" {
		t.Fatalf("approve node.add: %+v, %v", cer, err)
	}
	if err := c.Start(n.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMember(bounded(t, 60*time.Second), n.ID); err != nil {
		t.Fatal(err)
	}
}

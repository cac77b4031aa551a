package keysvc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/raft"
)

func entry(reqID string) ledger.Entry {
	return ledger.Entry{
		Type: "kek.unwrap", Actor: ledger.Actor{Identity: "custos://test/agent/backup?region=DE", Role: "agent", Region: "DE"},
		KEKID: "k1", KEKVersion: 1, RequestID: reqID, Outcome: ledger.OutcomeOK,
		Details: map[string]string{"dek.sha256": "00ff"},
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// appendAll appends one entry per id, concurrently, through the given nodes
// in turn, and returns the index each got.
func appendAll(t *testing.T, nodes []*keysvc.Node, ids []string) map[string]uint64 {
	t.Helper()
	var (
		mu  sync.Mutex
		got = map[string]uint64{}
		wg  sync.WaitGroup
	)
	for i, id := range ids {
		wg.Go(func() {
			idx, err := nodes[i%len(nodes)].Append(ctxT(t, 10*time.Second), entry(id))
			if err != nil {
				t.Errorf("append %s via %s: %v", id, nodes[i%len(nodes)].Info().ID, err)
				return
			}
			mu.Lock()
			got[id] = idx
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return got
}

// checkLogged checks that entry idx of n's log is the one with request id.
func checkLogged(t *testing.T, n *keysvc.Node, got map[string]uint64) {
	t.Helper()
	seen := map[uint64]string{}
	for id, idx := range got {
		if other, dup := seen[idx]; dup {
			t.Fatalf("index %d given to both %s and %s", idx, id, other)
		}
		seen[idx] = id
		raw, err := n.Entries(idx, 1)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ledger.ParseEntry(raw[0])
		if err != nil || e.RequestID != id || e.Index != idx {
			t.Fatalf("entry %d on %s: %+v, %v; want request %s", idx, n.Info().ID, e, err, id)
		}
	}
}

func verifyCheckpoint(t *testing.T, n *keysvc.Node, note []byte) (ledger.Checkpoint, string) {
	t.Helper()
	keys, err := n.NodeKeys()
	if err != nil {
		t.Fatal(err)
	}
	cp, signer, err := ledger.VerifyCheckpoint(note, ledger.Origin("test"), keys...)
	if err != nil {
		t.Fatalf("checkpoint does not verify against NodeKeys of %s: %v\n%s", n.Info().ID, err, note)
	}
	return cp, signer
}

func ids(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// TestClusterLogAndProofsAcrossLeaders: appends from leader and followers
// converge to one log; proofs from any node verify against checkpoints
// signed by two different leaders, linked by a consistency proof.
func TestClusterLogAndProofsAcrossLeaders(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{})
	got := appendAll(t, c.Running(), ids("a", 60))
	c.WaitConverged()
	roots := map[ledger.Checkpoint]bool{}
	for _, n := range c.Running() {
		head, err := n.TreeHead()
		if err != nil {
			t.Fatal(err)
		}
		roots[head] = true
		checkLogged(t, n, got)
	}
	if len(roots) != 1 {
		t.Fatalf("nodes disagree on the tree head: %v", roots)
	}

	leader1 := c.Leader()
	note1, err := leader1.Checkpoint(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	follower := c.Follower()
	cp1, signer1 := verifyCheckpoint(t, follower, note1)
	if signer1 != ledger.KeyName("test", leader1.Info().ID) || cp1.Size != 64 {
		t.Fatalf("checkpoint 1 by %s of size %d", signer1, cp1.Size)
	}
	// Inclusion proofs served by a follower verify against the leader's checkpoint.
	for _, idx := range []uint64{0, 1, got["a-7"], cp1.Size - 1} {
		raw, err := follower.Entries(idx, 1)
		if err != nil {
			t.Fatal(err)
		}
		p, err := follower.ProveInclusion(idx, cp1.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := ledger.VerifyInclusion(cp1, idx, raw[0], p.Hashes); err != nil {
			t.Fatalf("inclusion of %d: %v", idx, err)
		}
		if err := ledger.VerifyInclusion(cp1, idx, append([]byte(nil), raw[0][:len(raw[0])-1]...), p.Hashes); err == nil {
			t.Fatal("inclusion proof verifies for a different entry")
		}
	}

	// The leader goes away; another one takes over and signs a later checkpoint.
	c.Isolate(leader1.Info().ID)
	leader2 := c.Leader()
	if leader2 == leader1 {
		t.Fatal("isolated leader still leads")
	}
	got2 := appendAll(t, c.Running(), ids("b", 20))
	note2, err := leader2.Checkpoint(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c.Heal()
	c.WaitConverged()
	checkLogged(t, leader1, got2)

	cp2, signer2 := verifyCheckpoint(t, leader1, note2)
	if signer2 == signer1 || signer2 != ledger.KeyName("test", leader2.Info().ID) {
		t.Fatalf("checkpoint 2 signed by %s (checkpoint 1 by %s)", signer2, signer1)
	}
	if cp2.Size != cp1.Size+20 {
		t.Fatalf("checkpoint 2 size %d, want %d", cp2.Size, cp1.Size+20)
	}
	// Both verify against any node's NodeKeys, the old leader's included.
	for _, n := range c.Running() {
		verifyCheckpoint(t, n, note1)
		verifyCheckpoint(t, n, note2)
	}
	// The old leader proves the new leader's tree extends the one it signed.
	p, err := leader1.ProveConsistency(cp1.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyConsistency(cp1, cp2, p.Hashes); err != nil {
		t.Fatalf("consistency between checkpoints of %s and %s: %v", signer1, signer2, err)
	}
	forged := cp1
	forged.Hash[0] ^= 1
	if err := ledger.VerifyConsistency(forged, cp2, p.Hashes); err == nil {
		t.Fatal("consistency proof verifies against a forged older root")
	}
}

// TestFailClosedIsolatedLeader: a leader cut off from its quorum fails
// Append within the context's bound, and the entry never appears.
func TestFailClosedIsolatedLeader(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{})
	old := c.Leader()
	c.Isolate(old.Info().ID)

	const bound = 2 * time.Second
	start := time.Now()
	_, err := old.Append(ctxT(t, bound), entry("lost"))
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("append on an isolated leader succeeded")
	}
	if !errors.Is(err, keysvc.ErrNoQuorum) && !errors.Is(err, keysvc.ErrNotLeader) {
		t.Fatalf("append on an isolated leader: %v, want ErrNoQuorum or ErrNotLeader", err)
	}
	if elapsed > bound+500*time.Millisecond {
		t.Fatalf("append took %v, bound %v", elapsed, bound)
	}
	if m := old.Metrics(); m.AppendFailures != 1 {
		t.Errorf("AppendFailures = %d, want 1", m.AppendFailures)
	}
	// The majority elects a leader and moves on, which discards the old
	// leader's uncommitted entry. (Healed before that, the old leader could
	// win again and commit it: ErrNoQuorum means the outcome is unknown.)
	c.Append(entry("majority"))
	c.Heal()
	c.WaitConverged()

	// A follower cut off fails too, within the bound.
	c.WaitConverged()
	f := c.Follower()
	c.Isolate(f.Info().ID)
	start = time.Now()
	if _, err := f.Append(ctxT(t, time.Second), entry("lost-2")); err == nil {
		t.Fatal("append on an isolated follower succeeded")
	}
	if time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("isolated follower's append took %v", time.Since(start))
	}
	c.Heal()

	after := c.Append(entry("after"))
	c.WaitConverged()
	for _, n := range c.Running() {
		all, err := n.Entries(0, int(after)+1)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range all {
			e, _ := ledger.ParseEntry(raw)
			if e.RequestID == "lost" || e.RequestID == "lost-2" {
				t.Fatalf("%s: entry %q was logged after its Append failed", n.Info().ID, e.RequestID)
			}
		}
	}
}

// TestGroupCommit: concurrent Appends share raft commands, each gets its own index.
func TestGroupCommit(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{})
	l := c.Leader()
	before := l.Metrics()
	got := appendAll(t, []*keysvc.Node{l}, ids("g", 100))
	after := l.Metrics()
	batches := after.Batches - before.Batches
	if after.BatchEntries-before.BatchEntries != 100 || after.Appends-before.Appends != 100 {
		t.Fatalf("metrics: %+v", after)
	}
	t.Logf("100 appends in %d raft commands", batches)
	if batches > 25 {
		t.Fatalf("100 concurrent appends took %d raft commands; group commit is not batching", batches)
	}
	checkLogged(t, l, got)
	if after.BatchSize.Count != after.Batches || after.CommitLatency.Count != after.Appends {
		t.Errorf("histogram counts %d/%d, want %d/%d", after.BatchSize.Count, after.CommitLatency.Count, after.Batches, after.Appends)
	}
}

// TestGroupCommitBounds: a batch never exceeds MaxEntries.
func TestGroupCommitBounds(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{Configure: func(cfg *keysvc.Config) {
		cfg.GroupCommit = keysvc.GroupCommit{MaxEntries: 8, MaxDelay: 50 * time.Millisecond}
	}})
	l := c.Leader()
	got := appendAll(t, []*keysvc.Node{l}, ids("m", 64))
	m := l.Metrics()
	if m.BatchSize.Counts[3] != m.BatchSize.Count { // bound 8
		t.Fatalf("a batch exceeded 8 entries: %+v", m.BatchSize)
	}
	checkLogged(t, l, got)
}

// TestFollowerWithoutForwarder: Append and Checkpoint on a follower name the leader's API.
func TestFollowerWithoutForwarder(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{NoForwarder: true})
	l, f := c.Leader(), c.Follower()
	var nl *keysvc.NotLeaderError
	_, err := f.Append(ctxT(t, 5*time.Second), entry("x"))
	if !errors.As(err, &nl) || !errors.Is(err, keysvc.ErrNotLeader) || !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("append on a follower: %v", err)
	}
	if nl.LeaderID != l.Info().ID || nl.LeaderAPI != keysvctest.APIAddr(l.Info().ID) {
		t.Fatalf("NotLeaderError %+v", nl)
	}
	if _, err := f.Checkpoint(ctxT(t, 5*time.Second)); !errors.As(err, &nl) || nl.LeaderAPI != l.Info().APIAddr {
		t.Fatalf("checkpoint on a follower: %v", err)
	}
	if _, err := f.AppendBatch(ctxT(t, 5*time.Second), []ledger.Entry{entry("y")}); !errors.Is(err, keysvc.ErrNotLeader) {
		t.Fatalf("AppendBatch on a follower: %v", err)
	}
	if err := f.AddNode(ctxT(t, 5*time.Second), f.Info(), keysvctest.Operator); !errors.Is(err, keysvc.ErrNotLeader) {
		t.Fatalf("AddNode on a follower: %v", err)
	}
	if got := f.Status().Leader; got.ID != l.Info().ID || got.APIAddr != l.Info().APIAddr {
		t.Fatalf("follower status names leader %+v", got)
	}
}

// TestAddNodeRules: regions outside the allowed ones are refused and logged;
// adding is idempotent; an ID keeps its details.
func TestAddNodeRules(t *testing.T) {
	c := keysvctest.NewCluster(t, 2, keysvctest.Options{AllowedRegions: []string{"DE", "FR", "NL"}})
	l := c.Leader()
	n4 := c.Start("n4") // AT
	err := l.AddNode(ctxT(t, 5*time.Second), n4.Info(), keysvctest.Operator)
	if !errors.Is(err, keysvc.ErrRegionNotAllowed) {
		t.Fatalf("AddNode from AT: %v, want ErrRegionNotAllowed", err)
	}
	size, _ := l.Size()
	raw, err := l.Entries(size-1, 1)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := ledger.ParseEntry(raw[0])
	if e.Type != "node.add" || e.Outcome != ledger.OutcomeDenied || e.Details["node.id"] != "n4" || e.Actor != keysvctest.Operator {
		t.Fatalf("denial not logged: %s", raw[0])
	}
	for _, m := range l.Status().Members {
		if m.ID == "n4" {
			t.Fatalf("refused node is a member: %+v", m)
		}
	}

	n2 := c.Node("n2")
	if err := l.AddNode(ctxT(t, 5*time.Second), n2.Info(), keysvctest.Operator); err != nil {
		t.Fatalf("adding a member again: %v", err)
	}
	changed := n2.Info()
	changed.APIAddr = "https://elsewhere.test:8201"
	if err := l.AddNode(ctxT(t, 5*time.Second), changed, keysvctest.Operator); !errors.Is(err, keysvc.ErrNodeConflict) {
		t.Fatalf("re-adding with other details: %v, want ErrNodeConflict", err)
	}
	bad := n2.Info()
	bad.ID = "n5"
	if err := l.AddNode(ctxT(t, 5*time.Second), bad, keysvctest.Operator); !errors.Is(err, keysvc.ErrInvalidNode) {
		t.Fatalf("keys of another node: %v, want ErrInvalidNode", err)
	}
}

// TestRemoveNode: a removed node leaves the membership but its keys keep
// verifying what it signed.
func TestRemoveNode(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{})
	l := c.Leader()
	var victim *keysvc.Node
	for _, n := range c.Running() {
		if n != l {
			victim = n
		}
	}
	id := victim.Info().ID
	if err := l.RemoveNode(ctxT(t, 5*time.Second), id, keysvctest.Operator); err != nil {
		t.Fatal(err)
	}
	c.Stop(id)
	for _, m := range l.Status().Members {
		if m.ID == id {
			t.Fatalf("removed node still a member: %+v", m)
		}
	}
	keys, err := l.NodeKeys()
	if err != nil || !slices.ContainsFunc(keys, func(k ledger.NodeKey) bool { return k.Name == ledger.KeyName("test", id) }) {
		t.Fatalf("removed node's keys gone from NodeKeys: %v", err)
	}
	if err := l.RemoveNode(ctxT(t, 5*time.Second), "nope", keysvctest.Operator); !errors.Is(err, keysvc.ErrUnknownNode) {
		t.Fatalf("removing an unknown node: %v", err)
	}
	// Two members left; the cluster still commits.
	c.Append(entry("after-remove"))
}

// TestRestart: a node closed and opened again from its DataDir rejoins with
// the same keys and the same state, without replaying entries twice.
func TestRestart(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{})
	appendAll(t, c.Running(), ids("r", 30))
	f := c.Follower()
	id := f.Info().ID
	info := f.Info()
	c.Stop(id)
	got := appendAll(t, c.Running(), ids("s", 10))
	restarted := c.Start(id)
	if restarted.Info() != info {
		t.Fatalf("keys or addresses changed across restart:\n%+v\n%+v", restarted.Info(), info)
	}
	c.WaitConverged()
	checkLogged(t, restarted, got)

	// The leader restarts too; someone else leads meanwhile.
	l := c.Leader()
	lid := l.Info().ID
	c.Stop(lid)
	c.Leader() // followers forward to the new leader once they know it
	got = appendAll(t, c.Running(), ids("t", 10))
	c.Start(lid)
	c.WaitConverged()
	for _, n := range c.Running() {
		checkLogged(t, n, got)
	}
	if err := c.Node(lid).Bootstrap(ctxT(t, 5*time.Second)); !errors.Is(err, keysvc.ErrAlreadyBootstrapped) {
		t.Fatalf("bootstrap of a member: %v", err)
	}
	// Same node table everywhere (keys of all, in order).
	keyText := func(n *keysvc.Node) string {
		keys, err := n.NodeKeys()
		if err != nil || len(keys) != 3 {
			t.Fatalf("%s: %d node keys, %v", n.Info().ID, len(keys), err)
		}
		var text []byte
		for _, k := range keys {
			b, _ := k.MarshalText()
			text = append(text, b...)
		}
		return string(text)
	}
	want := keyText(c.Leader())
	for _, n := range c.Running() {
		if keyText(n) != want {
			t.Fatalf("%s node keys differ", n.Info().ID)
		}
		if st := n.Status(); len(st.Members) != 3 || st.NotReady != "" {
			t.Fatalf("%s status %+v", n.Info().ID, st)
		}
	}
	if size, _ := c.Node(lid).Size(); size != 4+30+10+10 {
		t.Fatalf("log size %d after restarts, want %d", size, 4+30+10+10)
	}
}

// TestSnapshotCatchUp: a node added after the leader compacted its log
// catches up from a snapshot (Restore) to the same root; a node restarted
// with a snapshot older than its database keeps its database.
func TestSnapshotCatchUp(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{Configure: func(cfg *keysvc.Config) {
		cfg.Raft.TrailingLogs = 4
		cfg.Raft.SnapshotThreshold = 1 << 20 // only when asked
		cfg.GroupCommit.MaxEntries = 4       // many raft commands
	}})
	appendAll(t, c.Running(), ids("p", 80))
	for _, n := range c.Running() {
		if err := n.Snapshot(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	got := appendAll(t, c.Running(), ids("q", 10))

	n4 := c.Join("n4")
	c.WaitConverged()
	if r := n4.Metrics().Restores; r != 1 {
		t.Fatalf("new node restored %d snapshots, want 1", r)
	}
	checkLogged(t, n4, got)
	if n4.Status().Raft.AppliedIndex == 0 {
		t.Fatal("new node applied nothing")
	}

	// Restart a node whose snapshot is older than its state.db: kept, not replaced.
	f := c.Follower()
	fid := f.Info().ID
	c.Stop(fid)
	c.Leader()
	got = appendAll(t, c.Running(), ids("u", 5))
	f = c.Start(fid)
	if r := f.Metrics().Restores; r != 0 {
		t.Fatalf("restart replaced a newer state.db with an older snapshot (%d restores)", r)
	}
	c.WaitConverged()
	checkLogged(t, f, got)

	// Restart a node that lost its state.db: restored from its snapshot, then the log.
	f = c.Follower()
	fid = f.Info().ID
	cfg := c.Config(fid)
	c.Stop(fid)
	if err := os.Remove(filepath.Join(cfg.DataDir, "state.db")); err != nil {
		t.Fatal(err)
	}
	f = c.Start(fid)
	if r := f.Metrics().Restores; r != 1 {
		t.Fatalf("node without state.db restored %d snapshots, want 1", r)
	}
	c.WaitConverged()
	checkLogged(t, f, got)
}

// TestEntryTimes: the leader stamps times; they never go backwards in the
// log, even when the clock does.
func TestEntryTimes(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(-time.Second) // a clock running backwards
		return now
	}
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{Configure: func(cfg *keysvc.Config) { cfg.Now = clock }})
	e := entry("timed")
	e.Time = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC) // ignored: the leader assigns it
	e.Index = 12345
	idx := c.Append(e)
	c.Append(entry("later"))
	c.WaitConverged()
	all, _ := c.Leader().Entries(0, 100)
	var last time.Time
	for _, raw := range all {
		e, _ := ledger.ParseEntry(raw)
		if e.Time.Before(last) {
			t.Fatalf("entry %d at %v, before %v", e.Index, e.Time, last)
		}
		last = e.Time
		if e.Index == idx && e.Time.Year() != 2029 {
			t.Fatalf("caller's time kept: %v", e.Time)
		}
	}
}

// TestAppendRejectsBadEntries: nothing malformed or reserved is queued.
func TestAppendRejectsBadEntries(t *testing.T) {
	c := keysvctest.NewCluster(t, 1, keysvctest.Options{})
	l := c.Leader()
	before, _ := l.Size()
	var pe *ledger.ParseError
	if _, err := l.Append(ctxT(t, time.Second), ledger.Entry{Type: "Bad Type", Actor: ledger.Actor{Identity: "a"}, Outcome: ledger.OutcomeOK}); !errors.As(err, &pe) {
		t.Fatalf("bad type: %v, want *ledger.ParseError", err)
	}
	if _, err := l.Append(ctxT(t, time.Second), ledger.Entry{Type: "x", Outcome: ledger.OutcomeOK}); !errors.As(err, &pe) {
		t.Fatalf("no actor: %v, want *ledger.ParseError", err)
	}
	reserved := entry("r")
	reserved.Type = "node.add"
	if _, err := l.Append(ctxT(t, time.Second), reserved); err == nil {
		t.Fatal("reserved type accepted")
	}
	if _, err := l.AppendBatch(ctxT(t, time.Second), make([]ledger.Entry, keysvc.MaxAppendBatch+1)); !errors.Is(err, keysvc.ErrBatchTooLarge) {
		t.Fatalf("oversized batch: %v", err)
	}
	if after, _ := l.Size(); after != before {
		t.Fatalf("log grew from %d to %d", before, after)
	}
	// A single-node cluster commits on its own.
	if _, err := l.Append(ctxT(t, 5*time.Second), entry("ok")); err != nil {
		t.Fatal(err)
	}
}

// TestCloseFailsPending: the node shuts down cleanly with Appends pending,
// and none of them reports success.
func TestCloseFailsPending(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{})
	l := c.Leader()
	c.Isolate(l.Info().ID) // nothing commits
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			_, err := l.Append(context.Background(), entry(fmt.Sprint("pending-", i)))
			errs <- err
		})
	}
	time.Sleep(50 * time.Millisecond)
	c.Stop(l.Info().ID)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Fatal("an append succeeded on an isolated, closing leader")
		}
	}
	if _, err := l.Append(context.Background(), entry("closed")); !errors.Is(err, keysvc.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := l.Ready(); !errors.Is(err, keysvc.ErrClosed) {
		t.Fatalf("ready after close: %v", err)
	}
}

// TestKeysMismatch: a node whose ML-DSA seed file was lost makes a new key
// at start, which no longer matches its registration: it is not ready and
// refuses to sign checkpoints nobody could verify.
func TestKeysMismatch(t *testing.T) {
	c := keysvctest.NewCluster(t, 1, keysvctest.Options{})
	dir := c.Config("n1").DataDir
	c.Stop("n1")
	if err := os.Remove(filepath.Join(dir, "node-mldsa.sealed")); err != nil {
		t.Fatal(err)
	}
	n := c.Start("n1")
	keysvctest.WaitFor(t, "leadership", n.IsLeader)
	if _, err := n.Checkpoint(ctxT(t, 5*time.Second)); !errors.Is(err, keysvc.ErrKeysMismatch) {
		t.Fatalf("checkpoint with replaced keys: %v", err)
	}
	keysvctest.WaitFor(t, "Ready to report the mismatch", func() bool { return errors.Is(n.Ready(), keysvc.ErrKeysMismatch) })
}

package keysvc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
	"github.com/custos-eu/custos/keysvc/state"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestState(t *testing.T) *stateDB {
	t.Helper()
	s, err := openStateDB(t.TempDir(), true, discard(), newCounters())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	return s
}

// testInfo returns a valid NodeInfo for node id of cluster "test", with real keys.
func testInfo(t *testing.T, id, region string) state.NodeInfo {
	t.Helper()
	k, err := loadNodeKeys(hsmtest.NewFake(), t.TempDir(), "test", id)
	if err != nil {
		t.Fatal(err)
	}
	defer k.zero()
	return state.NodeInfo{ID: id, Region: region, RaftAddr: id + ":7000", APIAddr: "https://" + id + ".test:8201", Keys: k.text,
		KEM: base64.StdEncoding.EncodeToString(k.kemPub)}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustEncode(t *testing.T, c *state.Command) []byte {
	t.Helper()
	b, err := state.Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func appendCmd(t *testing.T, at time.Time, ids ...string) []byte {
	t.Helper()
	var raws []json.RawMessage
	for _, id := range ids {
		raw, err := ledger.Entry{Time: at, Type: "kek.unwrap", Actor: ledger.Actor{Identity: "agent-1", Role: "agent"},
			Node: "n1", KEKID: "k1", KEKVersion: 1, RequestID: id, Outcome: ledger.OutcomeOK,
			Details: map[string]string{"dek.sha256": "ab<&>\u2028"}}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	return mustEncode(t, &state.Command{Type: state.CmdLedgerAppend, Entries: raws})
}

var operator = ledger.Actor{Identity: "custos://test/operator/ops?region=DE", Role: "operator", Region: "DE"}

// script is a command sequence exercising every command type, denials and
// rejections, at raft indexes 1, 2, ….
func script(t *testing.T) [][]byte {
	n1, n2, n3 := testInfo(t, "n1", "DE"), testInfo(t, "n2", "FR"), testInfo(t, "n3", "NL")
	at := func(s int) string { return state.FormatTime(t0.Add(time.Duration(s) * time.Second)) }
	outside := testInfo(t, "n9", "AT")
	conflict := n2
	conflict.APIAddr = "https://elsewhere.test"
	return [][]byte{
		appendCmd(t, t0, "before-genesis"), // rejected: no genesis
		mustEncode(t, &state.Command{Type: ledger.TypeGenesis, Time: at(0), ServedBy: "n1", Actor: state.ToActorJSON(operator), Cluster: "test", AllowedRegions: []string{"DE", "FR", "NL"}, Node: &n1}),
		mustEncode(t, &state.Command{Type: ledger.TypeNodeAdd, Time: at(1), ServedBy: "n1", Actor: state.ToActorJSON(operator), Node: &n2}),
		mustEncode(t, &state.Command{Type: ledger.TypeNodeAdd, Time: at(2), ServedBy: "n1", Actor: state.ToActorJSON(operator), Node: &n3}),
		mustEncode(t, &state.Command{Type: ledger.TypeNodeAdd, Time: at(3), ServedBy: "n1", Actor: state.ToActorJSON(operator), Node: &outside}),  // denied: region
		mustEncode(t, &state.Command{Type: ledger.TypeNodeAdd, Time: at(4), ServedBy: "n1", Actor: state.ToActorJSON(operator), Node: &conflict}), // denied: conflict
		mustEncode(t, &state.Command{Type: ledger.TypeNodeAdd, Time: at(5), ServedBy: "n1", Actor: state.ToActorJSON(operator), Node: &n2}),       // ok, already registered
		appendCmd(t, t0.Add(6*time.Second), "r1", "r2", "r3"),
		appendCmd(t, t0.Add(5*time.Second), "r4"), // clock went back: time kept non-decreasing
		[]byte(`{"v":1,"type":"kek.create"}`),     // rejected: unknown type
		[]byte(`{"v":2,"type":"ledger.append"}`),  // rejected: version
		[]byte(`{"v":1,"type":"ledger.append","entries":[]} x`),
		mustEncode(t, &state.Command{Type: ledger.TypeGenesis, Time: at(7), ServedBy: "n1", Actor: state.ToActorJSON(operator), Cluster: "test", AllowedRegions: []string{"DE"}, Node: &n1}), // rejected: twice
		mustEncode(t, &state.Command{Type: ledger.TypeNodeRemove, Time: at(8), ServedBy: "n1", Actor: state.ToActorJSON(operator), NodeID: "n3"}),
		mustEncode(t, &state.Command{Type: ledger.TypeNodeRemove, Time: at(9), ServedBy: "n1", Actor: state.ToActorJSON(operator), NodeID: "nx"}), // denied: unknown
		appendCmd(t, t0.Add(10*time.Second), "r5", "r6"),
	}
}

type applied struct {
	res []byte
	err string
}

func run(t *testing.T, s *stateDB, cmds [][]byte, from uint64) []applied {
	t.Helper()
	var out []applied
	for i, c := range cmds {
		res, err := s.Apply(from+uint64(i), c)
		a := applied{res: res}
		if err != nil {
			var ce *state.CommandError
			if !errors.As(err, &ce) {
				t.Fatalf("apply %d: %v is not a *state.CommandError", i, err)
			}
			a.err = err.Error()
		}
		out = append(out, a)
	}
	return out
}

func digest(t *testing.T, s *stateDB) [32]byte {
	t.Helper()
	var d [32]byte
	if err := s.view(func(tx *bbolt.Tx) (err error) { d, err = state.Digest(tx); return err }); err != nil {
		t.Fatal(err)
	}
	return d
}

func entries(t *testing.T, s *stateDB) [][]byte {
	t.Helper()
	var out [][]byte
	if err := s.view(func(tx *bbolt.Tx) (err error) { out, err = ledgerdb.ReadEntries(tx, 0, 1000); return err }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeterminism(t *testing.T) {
	cmds := script(t)
	a, b := newTestState(t), newTestState(t)
	ra, rb := run(t, a, cmds, 1), run(t, b, cmds, 1)
	if fmt.Sprint(ra) != fmt.Sprint(rb) {
		t.Fatalf("results differ:\n%v\n%v", ra, rb)
	}
	if digest(t, a) != digest(t, b) {
		t.Fatal("state digests differ")
	}
	ea, eb := entries(t, a), entries(t, b)
	if len(ea) != len(eb) {
		t.Fatalf("%d vs %d entries", len(ea), len(eb))
	}
	for i := range ea {
		if !bytes.Equal(ea[i], eb[i]) {
			t.Fatalf("entry %d differs:\n%s\n%s", i, ea[i], eb[i])
		}
	}

	// What the script must have done.
	wantRejected := map[int]bool{0: true, 9: true, 10: true, 11: true, 12: true}
	for i, r := range ra {
		if (r.err != "") != wantRejected[i] {
			t.Errorf("command %d: err %q, want rejected=%v", i, r.err, wantRejected[i])
		}
	}
	// genesis (2 entries), 3 adds of which 2 denied, already registered, 3+1 appended, remove, denied remove, 2 appended
	if len(ea) != 15 {
		t.Fatalf("log has %d entries, want 15", len(ea))
	}
	var last time.Time
	outcomes := ""
	for i, raw := range ea {
		e, err := ledger.ParseEntry(raw)
		if err != nil || e.Index != uint64(i) {
			t.Fatalf("entry %d: %v (index %d)", i, err, e.Index)
		}
		if e.Time.Before(last) {
			t.Errorf("entry %d time %v before %v", i, e.Time, last)
		}
		last = e.Time
		outcomes += string(e.Outcome[0])
	}
	if outcomes != "ooooddoooooodoo" {
		t.Errorf("outcomes %s", outcomes)
	}
	var denied state.Result
	if err := json.Unmarshal(ra[4].res, &denied); err != nil || !errors.Is(denied.Err(), ErrRegionNotAllowed) {
		t.Errorf("region denial result %s: %v", ra[4].res, denied.Err())
	}
	if err := json.Unmarshal(ra[5].res, &denied); err != nil || !errors.Is(denied.Err(), ErrNodeConflict) {
		t.Errorf("conflict denial result %s: %v", ra[5].res, denied.Err())
	}
	var removed state.NodeRecord
	a.view(func(tx *bbolt.Tx) error { removed, _, _ = state.GetNode(tx, "n3"); return nil })
	if !removed.Removed {
		t.Error("n3 not marked removed")
	}
	// Its removal revoked its identity, in the entry that removed it, and
	// the cache (what the ports consult) says so on both.
	for _, st := range []*stateDB{a, b} {
		if r, ok := st.revoked.lookup(identity.Identity{Role: identity.RoleNode, Name: "n3"}, ""); !ok || r.Entry != 11 || r.Identity != "node/n3" || r.Time != state.FormatTime(t0.Add(8*time.Second)) {
			t.Errorf("n3's revocation: %+v, %v", r, ok)
		}
	}
	if !bytes.Contains(ea[11], []byte(`"revoked.identity":"node/n3"`)) {
		t.Errorf("removal entry does not name the revocation: %s", ea[11])
	}
	if !bytes.Contains(ea[8], []byte(`"dek.sha256":"ab<&>`+"\u2028"+`"`)) {
		t.Errorf("entry bytes changed in transit: %s", ea[8])
	}
}

func TestIdempotentReplay(t *testing.T) {
	cmds := script(t)
	s := newTestState(t)
	run(t, s, cmds, 1)
	want, wantEntries := digest(t, s), entries(t, s)
	applied := s.m.applied.Load()
	// Raft replays after a restart from the latest snapshot: every index again.
	for i, c := range cmds {
		res, err := s.Apply(uint64(i+1), c)
		if res != nil || err != nil {
			t.Fatalf("replay of %d: %s, %v; want nothing", i+1, res, err)
		}
	}
	if digest(t, s) != want || len(entries(t, s)) != len(wantEntries) {
		t.Fatal("replay changed the state")
	}
	if s.m.applied.Load() != applied {
		t.Fatal("replay counted as applied")
	}
	// And the next new index applies.
	if _, err := s.Apply(uint64(len(cmds)+1), appendCmd(t, t0.Add(time.Hour), "r7")); err != nil {
		t.Fatal(err)
	}
	if got := len(entries(t, s)); got != len(wantEntries)+1 {
		t.Fatalf("%d entries after a new append, want %d", got, len(wantEntries)+1)
	}
}

func TestSnapshotRestore(t *testing.T) {
	cmds := script(t)
	src := newTestState(t)
	run(t, src, cmds[:8], 1)
	snapOld := snapshotBytes(t, src)
	run(t, src, cmds[8:], 9)
	snapNew := snapshotBytes(t, src)

	// A new node installs the snapshot.
	dst := newTestState(t)
	if err := dst.Restore(bytes.NewReader(snapNew)); err != nil {
		t.Fatal(err)
	}
	if digest(t, dst) != digest(t, src) || dst.m.restores.Load() != 1 {
		t.Fatal("restored state differs from the source")
	}
	if _, ok := dst.revoked.lookup(identity.Identity{Role: identity.RoleNode, Name: "n3"}, ""); !ok {
		t.Fatal("restored state's revocations not loaded")
	}

	// A restart: raft restores an older snapshot over a newer database, which is kept.
	if err := dst.Restore(bytes.NewReader(snapOld)); err != nil {
		t.Fatal(err)
	}
	if digest(t, dst) != digest(t, src) || dst.m.restores.Load() != 1 {
		t.Fatal("newer state was replaced by an older snapshot")
	}
	// Replaying the commands after the old snapshot changes nothing.
	run(t, dst, cmds[8:], 9)
	if digest(t, dst) != digest(t, src) {
		t.Fatal("replay after keeping the database changed it")
	}

	// A lagging node is brought forward.
	lag := newTestState(t)
	run(t, lag, cmds[:8], 1)
	if err := lag.Restore(bytes.NewReader(snapNew)); err != nil {
		t.Fatal(err)
	}
	if digest(t, lag) != digest(t, src) || lag.m.restores.Load() != 1 {
		t.Fatal("lagging node not restored")
	}

	// A database whose log diverges from the snapshot's is not replaced:
	// the snapshot is refused (snapguard_test.go has the other refusals).
	odd := newTestState(t)
	run(t, odd, cmds[1:3], 1) // genesis and one add, at other indexes
	run(t, odd, [][]byte{appendCmd(t, t0, "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15")}, 100)
	oddBefore := digest(t, odd)
	if err := odd.Restore(bytes.NewReader(snapNew)); !errors.Is(err, ErrSnapshotRefused) {
		t.Fatalf("divergent snapshot: %v, want ErrSnapshotRefused", err)
	}
	if digest(t, odd) != oddBefore || odd.m.snapshotsRefused.Load() != 1 {
		t.Fatal("divergent snapshot changed the database, or was not counted")
	}

	// Garbage is refused and the state untouched.
	before := digest(t, odd)
	if err := odd.Restore(bytes.NewReader([]byte("not a database"))); err == nil {
		t.Fatal("garbage snapshot accepted")
	}
	if digest(t, odd) != before || odd.brokenErr() != nil {
		t.Fatal("refused snapshot changed the state")
	}
}

func snapshotBytes(t *testing.T, s *stateDB) []byte {
	t.Helper()
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var b bytes.Buffer
	if _, err := snap.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestStorageFailureStopsApplying(t *testing.T) {
	cmds := script(t)
	s := newTestState(t)
	run(t, s, cmds[:3], 1)
	s.db.Close() // the disk goes away under the state machine
	if _, err := s.Apply(4, cmds[3]); !errors.Is(err, ErrStateBroken) {
		t.Fatalf("apply on a failed database: %v, want ErrStateBroken", err)
	}
	if _, err := s.Apply(5, cmds[4]); !errors.Is(err, ErrStateBroken) {
		t.Fatalf("later apply: %v, want ErrStateBroken", err)
	}
	if _, err := s.Snapshot(); !errors.Is(err, ErrStateBroken) {
		t.Fatalf("snapshot of a broken state: %v, want ErrStateBroken", err)
	}
}

// drillCmd appends one backup.drill entry per dataset=archive pair.
func drillCmd(t *testing.T, at time.Time, result string, pairs ...string) []byte {
	t.Helper()
	var raws []json.RawMessage
	for i := 0; i < len(pairs); i += 2 {
		outcome := ledger.OutcomeOK
		if result != "ok" {
			outcome = ledger.OutcomeError
		}
		raw, err := ledger.Entry{Time: at, Type: ledger.TypeDrill, Actor: ledger.Actor{Identity: "custos://test/agent/backup-1?region=DE", Role: "agent"},
			Node: "n1", Outcome: outcome, Details: map[string]string{"dataset": pairs[i], "archive": pairs[i+1], "result": result, "restore_seconds": "2"}}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	return mustEncode(t, &state.Command{Type: state.CmdLedgerAppend, Entries: raws})
}

// drillIndex reads the drills bucket: dataset -> log index.
func drillIndex(t *testing.T, s *stateDB) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	err := s.view(func(tx *bbolt.Tx) error {
		drills, err := state.Drills(tx, "")
		for _, d := range drills {
			out[d.Dataset] = d.LogIndex
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The state machine keeps the newest backup.drill entry of each dataset,
// whatever its result, identically on every node, through snapshots, and
// indexes a log written without it (an older node's) when it opens it.
func TestDrillIndex(t *testing.T) {
	cmds := script(t)
	cmds = append(cmds,
		drillCmd(t, t0.Add(20*time.Second), "ok", "hr", "hr-1", "crm", "crm-1"), // entries 15, 16
		appendCmd(t, t0.Add(21*time.Second), "r8"),                              // 17
		drillCmd(t, t0.Add(22*time.Second), "hash mismatch", "hr", "hr-2"),      // 18: newer, failed
		drillCmd(t, t0.Add(23*time.Second), "ok", "", "no-dataset"),             // 19: no dataset, not indexed
	)
	want := map[string]uint64{"hr": 18, "crm": 16}
	a, b := newTestState(t), newTestState(t)
	run(t, a, cmds, 1)
	run(t, b, cmds, 1)
	if got := drillIndex(t, a); !maps.Equal(got, want) {
		t.Fatalf("drills %v, want %v", got, want)
	}
	if !maps.Equal(drillIndex(t, b), want) || digest(t, a) != digest(t, b) {
		t.Fatal("two state machines disagree")
	}
	raw := entries(t, a)
	for ds, i := range want {
		e, err := ledger.ParseEntry(raw[i])
		if err != nil || e.Type != ledger.TypeDrill || e.Details["dataset"] != ds {
			t.Errorf("%s: entry %d is %+v, %v", ds, i, e, err)
		}
	}

	// A node installing a snapshot has the same index.
	dst := newTestState(t)
	if err := dst.Restore(bytes.NewReader(snapshotBytes(t, a))); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(drillIndex(t, dst), want) {
		t.Fatalf("restored drills %v, want %v", drillIndex(t, dst), want)
	}
	// Replayed commands change nothing; a new drill moves its dataset on.
	run(t, dst, cmds[len(cmds)-2:], uint64(len(cmds)-1))
	run(t, dst, [][]byte{drillCmd(t, t0.Add(time.Minute), "ok", "crm", "crm-2")}, uint64(len(cmds)+1))
	if got := drillIndex(t, dst); got["crm"] != 20 || got["hr"] != 18 || len(got) != 2 {
		t.Fatalf("after a new drill: %v", got)
	}

	// A database whose log predates the index (or was written by an older
	// node) is indexed when opened, as a restored snapshot would be.
	dir := t.TempDir()
	old, err := openStateDB(dir, true, discard(), newCounters())
	if err != nil {
		t.Fatal(err)
	}
	run(t, old, cmds, 1)
	if err := old.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket([]byte("drills")); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Delete([]byte("drills_indexed"))
	}); err != nil {
		t.Fatal(err)
	}
	old.close()
	reopened, err := openStateDB(dir, true, discard(), newCounters())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reopened.close() })
	if !maps.Equal(drillIndex(t, reopened), want) || digest(t, reopened) != digest(t, a) {
		t.Fatalf("reindexed drills %v, want %v", drillIndex(t, reopened), want)
	}
}

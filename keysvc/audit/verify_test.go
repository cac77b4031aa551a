package audit_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// The standard log is built once: officer and node keys are slow to make.
var (
	stdOnce sync.Once
	stdLog  *synth
)

func std(t *testing.T) *synth {
	stdOnce.Do(func() { stdLog = standard(t) })
	c := stdLog.clone()
	c.tb = t
	return c
}

func verify(t *testing.T, pack []byte, trust *audit.Trust, opts audit.Options) (*audit.Report, error) {
	t.Helper()
	return audit.Verify(bytes.NewReader(pack), trust, opts)
}

func mustVerify(t *testing.T, pack []byte, trust *audit.Trust, opts audit.Options) *audit.Report {
	t.Helper()
	r, err := verify(t, pack, trust, opts)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return r
}

// wantFailure checks err is a *Failure of kind about entry index (-1: none)
// whose message holds every part.
func wantFailure(t *testing.T, err error, kind string, index int64, parts ...string) *audit.Failure {
	t.Helper()
	var f *audit.Failure
	if !errors.As(err, &f) {
		t.Fatalf("got %v (%T), want a *audit.Failure of kind %s", err, err, kind)
	}
	if f.Kind != kind || f.Index != index {
		t.Fatalf("got %s failure about entry %d: %q; want %s about entry %d", f.Kind, f.Index, f.Msg, kind, index)
	}
	for _, p := range parts {
		if !strings.Contains(f.Msg, p) {
			t.Fatalf("failure %q does not say %q", f.Msg, p)
		}
	}
	return f
}

func splitLines(pack []byte) [][]byte { return bytes.SplitAfter(pack, []byte("\n")) }

func joinLines(ls [][]byte) []byte { return bytes.Join(ls, nil) }

func entryLine(i uint64, b []byte) []byte {
	return fmt.Appendf(nil, `{"t":"entry","i":%d,"e":"%s"}`+"\n", i, base64.StdEncoding.EncodeToString(b))
}

// lineOf returns the position of entry i's line.
func lineOf(t *testing.T, ls [][]byte, i uint64) int {
	t.Helper()
	prefix := fmt.Appendf(nil, `{"t":"entry","i":%d,`, i)
	for k, l := range ls {
		if bytes.HasPrefix(l, prefix) {
			return k
		}
	}
	t.Fatalf("no line for entry %d", i)
	return -1
}

func lineOfType(t *testing.T, ls [][]byte, typ string, nth int) int {
	t.Helper()
	prefix := []byte(`{"t":"` + typ + `"`)
	for k, l := range ls {
		if bytes.HasPrefix(l, prefix) {
			if nth == 0 {
				return k
			}
			nth--
		}
	}
	t.Fatalf("no %s line", typ)
	return -1
}

// mutateEntry re-encodes entry i of pack after fn changed it: a tamperer
// who knows the format.
func mutateEntry(t *testing.T, pack []byte, i uint64, fn func(*ledger.Entry)) []byte {
	t.Helper()
	ls := splitLines(pack)
	k := lineOf(t, ls, i)
	var rec struct {
		E []byte `json:"e"`
	}
	if err := json.Unmarshal(ls[k], &rec); err != nil {
		t.Fatal(err)
	}
	e, err := ledger.ParseEntry(rec.E)
	if err != nil {
		t.Fatal(err)
	}
	fn(&e)
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ls[k] = entryLine(i, b)
	return joinLines(ls)
}

// findEntry returns the index of the first entry of typ after from matching fn.
func (s *synth) findEntry(t *testing.T, typ string, from uint64, fn func(ledger.Entry) bool) uint64 {
	t.Helper()
	for i := from; i < s.size(); i++ {
		e, _ := ledger.ParseEntry(s.entries[i])
		if e.Type == typ && (fn == nil || fn(e)) {
			return i
		}
	}
	t.Fatalf("no %s entry", typ)
	return 0
}

func TestVerifyValidPack(t *testing.T) {
	s := std(t)
	n := s.size()
	var seen uint64
	r := mustVerify(t, s.pack(0, n, packOpts{}), s.trust(n), audit.Options{OnEntry: func(e ledger.Entry) error {
		if e.Index != seen {
			return fmt.Errorf("OnEntry got entry %d, want %d", e.Index, seen)
		}
		seen++
		return nil
	}})
	if r.Entries != n || seen != n || r.From != 0 || r.To != n {
		t.Errorf("entries %d (seen %d), range [%d, %d), want %d", r.Entries, seen, r.From, r.To, n)
	}
	if r.Checkpoint.Size != n || r.Checkpoint.Signer != "n1" || r.Checkpoint.Root != s.root(n) {
		t.Errorf("checkpoint %+v", r.Checkpoint)
	}
	if r.Pinned.Relation != audit.RelationSame {
		t.Errorf("relation %q, want same", r.Pinned.Relation)
	}
	// dave added, quorum 3, carol removed, n4 added, payroll destroyed.
	if r.CeremoniesVerified != 5 || r.ApprovalsVerified != 2+2+3+3+3 || r.StatementsVerified != 4 || r.Certificates != 1 {
		t.Errorf("ceremonies %d, approvals %d, statements %d, certificates %d", r.CeremoniesVerified, r.ApprovalsVerified, r.StatementsVerified, r.Certificates)
	}
	if r.Types["kek.unwrap"] != 35 || r.Denied != 6 || r.Partial {
		t.Errorf("types %v, denied %d, partial %v", r.Types, r.Denied, r.Partial)
	}
	st := r.State
	if st == nil || st.Size != n || st.Quorum != 3 || st.StateVersion != 6 || len(st.Nodes) != 4 || len(st.Officers) != 4 {
		t.Fatalf("state %+v", st)
	}
	for _, o := range st.Officers {
		if o.Active == (o.ID == "carol") {
			t.Errorf("officer %+v", o)
		}
	}
	if len(r.Pack.Ceremonies) != 5 || len(r.Pack.Officers) != 4 || len(r.Pack.Certificates) != 1 {
		t.Errorf("pack contents: %d ceremonies, %d officers", len(r.Pack.Ceremonies), len(r.Pack.Officers))
	}

	// Against an older pinned checkpoint, the pack extends it; no proof
	// needed, the verifier computes the root at the pinned size itself.
	r = mustVerify(t, s.pack(0, n, packOpts{}), s.trust(10), audit.Options{})
	if r.Pinned.Relation != audit.RelationExtends || r.Pinned.Size != 10 {
		t.Errorf("pinned %+v", r.Pinned)
	}
}

func TestTamperChangedEntryField(t *testing.T) {
	s := std(t)
	n := s.size()
	trust := s.trust(n)
	op := s.findEntry(t, "kek.unwrap", 0, nil)
	// Re-encoded canonically: only the signed root can tell.
	pack := mutateEntry(t, s.pack(0, n, packOpts{}), op, func(e *ledger.Entry) { e.Actor.Region = "FR" })
	_, err := verify(t, pack, trust, audit.Options{})
	wantFailure(t, err, audit.KindCheckpoint, -1, "is not the root of the pack's entries", "changed, removed, inserted or reordered")

	// A field of a ceremony entry: the transcript no longer matches.
	exec := s.findEntry(t, "ceremony.execute", 0, nil)
	pack = mutateEntry(t, s.pack(0, n, packOpts{}), exec, func(e *ledger.Entry) { e.Details["approvers"] = "alice,carol" })
	_, err = verify(t, pack, trust, audit.Options{})
	wantFailure(t, err, audit.KindAuthorisation, int64(exec), fmt.Sprintf("entry %d: the entry names approvers \"alice,carol\"", exec))

	// Bytes that are not the canonical encoding.
	ls := splitLines(s.pack(0, n, packOpts{}))
	k := lineOf(t, ls, op)
	ls[k] = entryLine(op, bytes.Replace(s.entries[op], []byte(`,"time"`), []byte(`, "time"`), 1))
	_, err = verify(t, joinLines(ls), trust, audit.Options{})
	wantFailure(t, err, audit.KindEntry, int64(op), fmt.Sprintf("entry %d: ledger: malformed entry", op))

	// A time moved back.
	pack = mutateEntry(t, s.pack(0, n, packOpts{}), op, func(e *ledger.Entry) { e.Time = e.Time.Add(-time.Hour) })
	_, err = verify(t, pack, trust, audit.Options{})
	wantFailure(t, err, audit.KindEntry, int64(op), "is before the previous entry's")
}

func TestTamperDeletedEntry(t *testing.T) {
	s := std(t)
	n := s.size()
	ls := splitLines(s.pack(0, n, packOpts{}))
	k := lineOf(t, ls, 30)
	ls = append(ls[:k], ls[k+1:]...)
	_, err := verify(t, joinLines(ls), s.trust(n), audit.Options{})
	f := wantFailure(t, err, audit.KindEntry, 30, "entry 30 is missing: entry 31 follows entry 29")
	if f.Line != k+1 {
		t.Errorf("line %d, want %d", f.Line, k+1)
	}
}

func TestTamperReorderedEntries(t *testing.T) {
	s := std(t)
	n := s.size()
	trust := s.trust(n)
	ls := splitLines(s.pack(0, n, packOpts{}))
	k := lineOf(t, ls, 30)
	ls[k], ls[k+1] = ls[k+1], ls[k]
	_, err := verify(t, joinLines(ls), trust, audit.Options{})
	wantFailure(t, err, audit.KindEntry, 30, "entry 30 is missing: entry 31 follows entry 29")

	// The records renumbered to hide it: the entries say otherwise.
	ls = splitLines(s.pack(0, n, packOpts{}))
	ls[k], ls[k+1] = entryLine(30, s.entries[31]), entryLine(31, s.entries[30])
	_, err = verify(t, joinLines(ls), trust, audit.Options{})
	wantFailure(t, err, audit.KindEntry, 30, "entry 30: the record holds an entry that says it is entry 31")
}

func TestTamperTruncatedTail(t *testing.T) {
	s := std(t)
	n := s.size()
	trust := s.trust(n)
	ls := splitLines(s.pack(0, n, packOpts{}))
	k := lineOf(t, ls, n-3)
	_, err := verify(t, joinLines(ls[:k+1]), trust, audit.Options{})
	wantFailure(t, err, audit.KindEntry, int64(n-2), fmt.Sprintf("the pack ends after entry %d: entries %d to %d and the checkpoint are missing", n-3, n-2, n-1))

	// Cut in the middle of a line.
	cut := joinLines(ls[:k+1])
	cut = cut[:len(cut)-10]
	_, err = verify(t, cut, trust, audit.Options{})
	wantFailure(t, err, audit.KindPack, -1, fmt.Sprintf("line %d: incomplete last line", k+1))

	// Entries and checkpoint cut; the checkpoint of the shorter tree kept:
	// a rollback from the pinned tree.
	short := s.pack(0, n-3, packOpts{})
	_, err = verify(t, short, trust, audit.Options{})
	f := wantFailure(t, err, audit.KindConsistency, -1, fmt.Sprintf("rollback: the pinned checkpoint has size %d, the pack's only %d", n, n-3))
	if !errors.Is(f, audit.ErrRollback) {
		t.Error("not ErrRollback")
	}
}

func TestTamperAppendedEntry(t *testing.T) {
	s := std(t)
	n := s.size()
	trust := s.trust(n)
	forged := s.clone()
	forged.add(ledger.Entry{Type: "kek.unwrap", Actor: ledger.Actor{Identity: "mallory", Role: "agent", Region: "DE"}, KEKID: "payroll", KEKVersion: 1})

	// An entry record slipped in after the last.
	ls := splitLines(s.pack(0, n, packOpts{}))
	cp := lineOfType(t, ls, "checkpoint", 0)
	ls = append(ls[:cp], append([][]byte{entryLine(n, forged.entries[n])}, ls[cp:]...)...)
	_, err := verify(t, joinLines(ls), trust, audit.Options{})
	wantFailure(t, err, audit.KindEntry, int64(n), fmt.Sprintf("entry %d: beyond the pack's range [0, %d) (appended?)", n, n))

	// The range stretched and a checkpoint signed with a key of the
	// leader's name that the log never registered.
	evil := evilNode(t, "n1")
	note, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "custos/test", Size: n + 1, Hash: forged.root(n + 1)}, evil.key.Name, evil.ec, evil.ml)
	if err != nil {
		t.Fatal(err)
	}
	_, err = verify(t, forged.pack(0, n+1, packOpts{note: note}), trust, audit.Options{})
	wantFailure(t, err, audit.KindCheckpoint, -1, "checkpoint: not signed (ECDSA and ML-DSA-65) by an active node the log established", "no signature by a trusted key")

	// The range stretched and the old checkpoint kept: it covers fewer
	// entries (the Writer refuses to write that; a tamperer need not).
	pack := replaceCheckpoint(t, forged.pack(0, n+1, packOpts{note: note}), s.checkpoint(n, "n1"))
	_, err = verify(t, pack, trust, audit.Options{})
	wantFailure(t, err, audit.KindCheckpoint, -1, fmt.Sprintf("checkpoint: size %d, but the pack's entries end at %d", n, n+1))
}

// line is the canonical line of a record.
func line(t *testing.T, rec audit.Record) []byte {
	t.Helper()
	b, err := audit.EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// evilNode is a key pair under node id's key name that no log registered.
func evilNode(t *testing.T, id string) *synthNode {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mlPub, ml, err := mldsa65.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &synthNode{id: id, ec: ec, ml: ml, key: ledger.NodeKey{Name: "custos/test/" + id, ECDSA: &ec.PublicKey, MLDSA: mlPub}}
}

// replaceCheckpoint swaps the pack's checkpoint note.
func replaceCheckpoint(t *testing.T, pack, note []byte) []byte {
	t.Helper()
	ls := splitLines(pack)
	k := lineOfType(t, ls, "checkpoint", 0)
	ls[k] = line(t, &audit.CheckpointRecord{Note: note})
	return joinLines(ls)
}

func TestTamperCheckpointSignature(t *testing.T) {
	s := std(t)
	n := s.size()
	trust := s.trust(n)
	pack := s.pack(0, n, packOpts{})
	note := s.checkpoint(n, "n1")
	text, sigs, _ := bytes.Cut(note, []byte("\n\n"))
	sigLines := strings.Split(strings.TrimSuffix(string(sigs), "\n"), "\n")
	if len(sigLines) != 2 {
		t.Fatalf("%d signature lines", len(sigLines))
	}
	rebuild := func(lines ...string) []byte {
		return []byte(string(text) + "\n\n" + strings.Join(lines, "\n") + "\n")
	}

	// A forged signature: the ECDSA signature's last byte changed.
	name, b64, _ := strings.Cut(strings.TrimPrefix(sigLines[0], "— "), " ")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	forged := "— " + name + " " + base64.StdEncoding.EncodeToString(raw)
	_, err = verify(t, replaceCheckpoint(t, pack, rebuild(forged, sigLines[1])), trust, audit.Options{})
	f := wantFailure(t, err, audit.KindCheckpoint, -1, "checkpoint: a signature does not verify (forged or altered): key custos/test/n1+")
	if !errors.Is(f, ledger.ErrCheckpointSignature) {
		t.Error("not ErrCheckpointSignature")
	}

	// A missing signature: ECDSA only.
	_, err = verify(t, replaceCheckpoint(t, pack, rebuild(sigLines[0])), trust, audit.Options{})
	wantFailure(t, err, audit.KindCheckpoint, -1, `"custos/test/n1" has no ml-dsa-65 signature`)

	// No signature at all.
	_, err = verify(t, replaceCheckpoint(t, pack, append(text, '\n')), trust, audit.Options{})
	wantFailure(t, err, audit.KindCheckpoint, -1, "checkpoint: malformed")

	// The body changed under valid signatures.
	root, other := s.root(n), s.root(n-1)
	other2 := bytes.Replace(note, []byte(base64.StdEncoding.EncodeToString(root[:])), []byte(base64.StdEncoding.EncodeToString(other[:])), 1)
	_, err = verify(t, replaceCheckpoint(t, pack, other2), trust, audit.Options{})
	wantFailure(t, err, audit.KindCheckpoint, -1, "does not verify")
}

func TestCheckpointByRemovedNode(t *testing.T) {
	s := std(t)
	removed := s.removeNode("n2")
	s.keyOps(2)
	n := s.size()
	_, err := verify(t, s.pack(0, n, packOpts{signer: "n2"}), s.trust(n), audit.Options{})
	wantFailure(t, err, audit.KindCheckpoint, -1, fmt.Sprintf("checkpoint: signed by node n2, removed at entry %d", removed))

	// Signed by an active node whose keys the pack lacks.
	s = newSynth(t)
	s.registerNode("n2")
	s.keyOps(2)
	n = s.size()
	ls := splitLines(s.pack(0, n, packOpts{signer: "n2"}))
	k := lineOfType(t, ls, "node_keys", 0)
	ls[k] = line(t, &audit.NodeKeys{Text: s.nodeKeysText("n1")})
	_, err = verify(t, joinLines(ls), s.trust(n), audit.Options{})
	wantFailure(t, err, audit.KindCheckpoint, -1, "not signed", "the pack lacks node n2's keys")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestFork(t *testing.T) {
	s := std(t)
	a, b := s.clone(), s.clone()
	a.keyOps(2)
	b.add(ledger.Entry{Type: "kek.wrap", Actor: ledger.Actor{Identity: "custos://test/agent/x?region=DE", Role: "agent"}, KEKID: "payroll", KEKVersion: 1})
	b.keyOps(1)
	n := a.size()
	if b.size() != n || a.root(n) == b.root(n) {
		t.Fatal("the two logs should differ at one size")
	}
	// Two checkpoints of one size, both signed by n1, different roots.
	_, err := verify(t, b.pack(0, n, packOpts{}), a.trust(n), audit.Options{})
	f := wantFailure(t, err, audit.KindConsistency, -1, fmt.Sprintf("fork: the pinned checkpoint and the pack's checkpoint both have size %d", n))
	if !errors.Is(f, audit.ErrFork) {
		t.Error("not ErrFork")
	}
	// The pack extends the tree, but diverges before the pinned size.
	b.keyOps(5)
	_, err = verify(t, b.pack(0, b.size(), packOpts{}), a.trust(n), audit.Options{})
	wantFailure(t, err, audit.KindConsistency, -1, fmt.Sprintf("at size %d, the pinned checkpoint", n))
}

func TestRollbackAndPrefix(t *testing.T) {
	s := std(t)
	n := s.size()
	trust := s.trust(n)
	_, err := verify(t, s.pack(0, n-5, packOpts{}), trust, audit.Options{})
	wantFailure(t, err, audit.KindConsistency, -1, "rollback")
	// An older pack with a proof that it is a prefix of the pinned tree.
	r := mustVerify(t, s.pack(0, n-5, packOpts{consistency: [2]uint64{n - 5, n}}), trust, audit.Options{})
	if r.Pinned.Relation != audit.RelationPrefix {
		t.Errorf("relation %q", r.Pinned.Relation)
	}
	// A proof from another tree does not make a prefix.
	other := s.clone()
	other.entries, other.stored = nil, nil
	for i := uint64(0); i < n; i++ {
		b := s.entries[i]
		if i == 40 {
			e, _ := ledger.ParseEntry(b)
			e.Reason = "changed"
			b, _ = e.Marshal()
		}
		other.addRaw(b)
	}
	ls := splitLines(other.pack(0, n, packOpts{consistency: [2]uint64{n - 5, n}}))
	good := splitLines(s.pack(0, n-5, packOpts{}))
	good = append(good[:len(good)-1], append([][]byte{ls[len(ls)-2]}, good[len(good)-1:]...)...)
	_, err = verify(t, joinLines(good), trust, audit.Options{})
	f := wantFailure(t, err, audit.KindConsistency, -1, "fork: the pack's tree of size")
	if !errors.Is(f, audit.ErrFork) {
		t.Error("not ErrFork")
	}
}

func TestCeremonyWithoutQuorum(t *testing.T) {
	s := std(t)
	// Quorum is 3: a compromised leader executes with two approvals.
	c := s.execute("alice", ceremony.QuorumSet{M: 2}, []string{"alice", "bob"}, ceremonyOpts{force: true})
	n := s.size()
	_, err := verify(t, s.pack(0, n, packOpts{}), s.trust(n), audit.Options{})
	wantFailure(t, err, audit.KindAuthorisation, int64(c.Closed),
		fmt.Sprintf("entry %d: proposal %s executed with 2 approval(s) (alice, bob), below the quorum of 3", c.Closed, c.ID))
}

func TestApprovalByRemovedOfficer(t *testing.T) {
	s := std(t)
	removal := s.ceremonies[2] // carol removed
	c := s.execute("alice", ceremony.QuorumSet{M: 2}, []string{"alice", "carol", "bob"}, ceremonyOpts{})
	n := s.size()
	pack := s.pack(0, n, packOpts{})
	_, err := verify(t, pack, s.trust(n), audit.Options{})
	at := c.Approvals[1].Entry
	wantFailure(t, err, audit.KindAuthorisation, int64(at), fmt.Sprintf("entry %d: approval by officer carol, removed at entry %d", at, removal.Closed))

	// Her approval entry relabelled as dave's to pass: the transcript
	// (carol's signature) is then checked at the execution.
	pack = mutateEntry(t, pack, at, func(e *ledger.Entry) { e.Details["officer"] = "dave" })
	_, err = verify(t, pack, s.trust(n), audit.Options{})
	wantFailure(t, err, audit.KindAuthorisation, int64(at), "says officer carol's approval was accepted here")
}

func TestApprovalSignatureForged(t *testing.T) {
	s := std(t)
	n := s.size()
	ls := splitLines(s.pack(0, n, packOpts{}))
	k := lineOfType(t, ls, "ceremony", 1)
	rd := audit.NewReader(bytes.NewReader(joinLines(ls)))
	var c *audit.Ceremony
	for i := 0; i <= k; i++ {
		rec, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		c, _ = rec.(*audit.Ceremony)
	}
	// Bob's signature replaced by his signature of another proposal.
	p := s.proposal("alice", ceremony.QuorumSet{M: 2})
	c.Approvals[0].Signature = s.sign(c.Approvals[0].Officer, p)
	ls[k] = line(t, c)
	_, err := verify(t, joinLines(ls), s.trust(n), audit.Options{})
	wantFailure(t, err, audit.KindAuthorisation, int64(c.Closed), fmt.Sprintf("officer %s's approval signature does not verify", c.Approvals[0].Officer))
}

func TestMissingEvidence(t *testing.T) {
	s := std(t)
	n := s.size()
	trust := s.trust(n)
	// No transcript of the quorum change.
	ls := splitLines(s.pack(0, n, packOpts{}))
	k := lineOfType(t, ls, "ceremony", 1)
	c := s.ceremonies[1]
	_, err := verify(t, joinLines(append(ls[:k:k], ls[k+1:]...)), trust, audit.Options{})
	wantFailure(t, err, audit.KindAuthorisation, int64(c.Closed), fmt.Sprintf("proposal %s executed, but the pack holds no transcript of it", c.ID))

	// No bundle for alice, whom cluster.init names by fingerprint only.
	ls = splitLines(s.pack(0, n, packOpts{}))
	k = lineOfType(t, ls, "officer", 0)
	init := s.findEntry(t, "cluster.init", 0, nil)
	_, err = verify(t, joinLines(append(ls[:k:k], ls[k+1:]...)), trust, audit.Options{})
	wantFailure(t, err, audit.KindPack, int64(init), "the log names officer alice's key sha256:", "which the pack does not hold")

	// Dave's bundle is in the proposal that added him: the officer record
	// is not needed.
	ls = splitLines(s.pack(0, n, packOpts{}))
	k = lineOfType(t, ls, "officer", 3)
	mustVerify(t, joinLines(append(ls[:k:k], ls[k+1:]...)), trust, audit.Options{})
}

func TestDestructionCertificate(t *testing.T) {
	s := std(t)
	n := s.size()
	dc := s.certs[0]
	h := dc.Holders[1]
	// A statement other than the one logged.
	s.certs[0].Holders = append(dc.Holders[:1:1], dc.Holders[1:]...)
	s.certs[0].Holders[1].Statement = dc.Holders[2].Statement
	_, err := verify(t, s.pack(0, n, packOpts{}), s.trust(n), audit.Options{})
	wantFailure(t, err, audit.KindAuthorisation, int64(h.Entry), fmt.Sprintf("node %s's destruction statement in the certificate of kek payroll v1 hashes to", h.Node))

	// Approvers other than those of the ceremony.
	s.certs[0] = dc
	s.certs[0].Approvers = []string{"alice", "bob"}
	_, err = verify(t, s.pack(0, n, packOpts{}), s.trust(n), audit.Options{})
	wantFailure(t, err, audit.KindAuthorisation, int64(dc.Destroyed), `was approved by "alice,bob,dave", the certificate says "alice,bob"`)
}

func TestUnauthorisedMembership(t *testing.T) {
	s := std(t)
	i := s.registerNode("n5") // after init, without a ceremony
	s.keyOps(1)
	n := s.size()
	_, err := verify(t, s.pack(0, n, packOpts{}), s.trust(n), audit.Options{})
	wantFailure(t, err, audit.KindAuthorisation, int64(i), "node n5 added after cluster.init without a node.add ceremony")

	s = std(t)
	i = s.add(ledger.Entry{Type: "cluster.genesis", Actor: operator, Details: map[string]string{"cluster": "test"}})
	n = s.size()
	_, err = verify(t, s.pack(0, n, packOpts{}), s.trust(n), audit.Options{})
	wantFailure(t, err, audit.KindAuthorisation, int64(i), "a second cluster.genesis")
}

func TestTrustMismatch(t *testing.T) {
	s := std(t)
	n := s.size()
	trust := s.trust(n)
	pack := mutateEntry(t, s.pack(0, n, packOpts{}), 0, func(e *ledger.Entry) { e.Details["allowed_regions"] = "DE" })
	_, err := verify(t, pack, trust, audit.Options{})
	wantFailure(t, err, audit.KindTrust, 0, "entry 0 is not the trusted genesis entry")

	pack = bytes.Replace(s.pack(0, n, packOpts{}), []byte(`"cluster":"test","origin":"custos/test"`), []byte(`"cluster":"prod","origin":"custos/prod"`), 1)
	_, err = verify(t, pack, trust, audit.Options{})
	wantFailure(t, err, audit.KindTrust, -1, `the pack is of cluster "prod"`)
}

func TestFromFrontier(t *testing.T) {
	s := std(t)
	p := s.size()
	trust0 := s.trust(p)
	r := mustVerify(t, s.pack(0, p, packOpts{}), trust0, audit.Options{})
	trust1, err := trust0.Advance(r)
	if err != nil {
		t.Fatal(err)
	}
	// The trust file survives a save and a load.
	saved, err := trust1.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if trust1, err = audit.ParseTrust(saved); err != nil {
		t.Fatal(err)
	}

	// More happens; the next pack starts where the last one ended.
	s.keyOps(4)
	s.execute("bob", ceremony.QuorumSet{M: 2}, []string{"alice", "bob", "dave"}, ceremonyOpts{})
	removal := s.ceremonies[2]
	s.execute("alice", officerAdd(t, "erin"), []string{"alice", "bob"}, ceremonyOpts{})
	s.keyOps(3)
	n := s.size()
	r = mustVerify(t, s.pack(p, n, packOpts{}), trust1, audit.Options{})
	if r.Partial || r.From != p || r.Entries != n-p || r.CeremoniesVerified != 2 || r.Pinned.Relation != audit.RelationExtends {
		t.Fatalf("report: partial %v, from %d, entries %d, ceremonies %d, relation %s", r.Partial, r.From, r.Entries, r.CeremoniesVerified, r.Pinned.Relation)
	}
	if r.State.Quorum != 2 || len(r.State.Officers) != 5 {
		t.Errorf("state %+v", r.State)
	}

	// The state carries the officers: carol, removed before the pack,
	// still cannot approve.
	c := s.execute("alice", ceremony.QuorumSet{M: 3}, []string{"carol", "alice"}, ceremonyOpts{})
	n = s.size()
	_, err = verify(t, s.pack(p, n, packOpts{}), trust1, audit.Options{})
	wantFailure(t, err, audit.KindAuthorisation, int64(c.Approvals[0].Entry), fmt.Sprintf("approval by officer carol, removed at entry %d", removal.Closed))

	// Without a state at the pack's start: partial, on request only.
	s = std(t)
	s.keyOps(4)
	n = s.size()
	_, err = verify(t, s.pack(p, n, packOpts{}), trust0, audit.Options{})
	f := wantFailure(t, err, audit.KindTrust, -1, fmt.Sprintf("the pack starts at entry %d and the trust file holds no verified state there", p))
	if !errors.Is(f, audit.ErrPartial) {
		t.Error("not ErrPartial")
	}
	r = mustVerify(t, s.pack(p, n, packOpts{}), trust0, audit.Options{AllowPartial: true})
	if !r.Partial || r.State != nil || r.PartialReason == "" {
		t.Errorf("partial %v, state %v", r.Partial, r.State)
	}
	if _, err := trust0.Advance(r); err == nil {
		t.Error("advanced on a partial report")
	}
	// A bad frontier: the signed root tells.
	ls := splitLines(s.pack(p, n, packOpts{}))
	k := lineOfType(t, ls, "frontier", 0)
	rec, err := audit.DecodeRecord("frontier", ls[k])
	if err != nil {
		t.Fatal(err)
	}
	fr := rec.(*audit.Frontier)
	fr.Hashes[0][0] ^= 1
	ls[k] = line(t, fr)
	_, err = verify(t, joinLines(ls), trust0, audit.Options{AllowPartial: true})
	wantFailure(t, err, audit.KindCheckpoint, -1, "is not the root of the pack's entries")
}

func TestConsistencyFromPinned(t *testing.T) {
	s := std(t)
	p := uint64(12)
	trust := s.trust(p)
	n := s.size()
	from := uint64(30)
	r := mustVerify(t, s.pack(from, n, packOpts{consistency: [2]uint64{p, n}}), trust, audit.Options{AllowPartial: true})
	if r.Pinned.Relation != audit.RelationExtends || r.Pinned.Size != p {
		t.Errorf("pinned %+v", r.Pinned)
	}
	// Without the proof, nothing links the pack to the pinned tree.
	_, err := verify(t, s.pack(from, n, packOpts{}), trust, audit.Options{AllowPartial: true})
	f := wantFailure(t, err, audit.KindConsistency, -1, "not an extension of the pinned checkpoint", "holds no consistency proof")
	if !errors.Is(f, audit.ErrNotExtension) {
		t.Error("not ErrNotExtension")
	}
	// A proof of another pair of sizes, or one that fails.
	_, err = verify(t, s.pack(from, n, packOpts{consistency: [2]uint64{p + 1, n}}), trust, audit.Options{AllowPartial: true})
	wantFailure(t, err, audit.KindConsistency, -1, "not an extension of the pinned checkpoint: the consistency proof is between sizes")
	ls := splitLines(s.pack(from, n, packOpts{consistency: [2]uint64{p, n}}))
	last := len(ls) - 2
	rec, err := audit.DecodeRecord("consistency", ls[last])
	if err != nil {
		t.Fatal(err)
	}
	cons := rec.(*audit.Consistency)
	cons.Hashes[0][0] ^= 1
	ls[last] = line(t, cons)
	_, err = verify(t, joinLines(ls), trust, audit.Options{AllowPartial: true})
	wantFailure(t, err, audit.KindConsistency, -1, fmt.Sprintf("not an extension of the pinned checkpoint (size %d)", p))

	// From 0, a proof is optional, but a present one must hold.
	mustVerify(t, s.pack(0, n, packOpts{consistency: [2]uint64{p, n}}), trust, audit.Options{})
}

func TestTrustFile(t *testing.T) {
	s := std(t)
	n := s.size()
	trust := s.trust(n)
	b, err := trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := audit.ParseTrust(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Pinned() != trust.Pinned() || back.Signer() != "custos/test/n1" {
		t.Errorf("pinned %+v, signer %s", back.Pinned(), back.Signer())
	}
	for name, mutate := range map[string]func(m map[string]any){
		"other cluster":  func(m map[string]any) { m["cluster"] = "prod"; m["origin"] = "custos/prod" },
		"unknown field":  func(m map[string]any) { m["extra"] = 1 },
		"untrusted keys": func(m map[string]any) { m["node_keys"] = s.nodeKeysText("n2") },
		"not genesis":    func(m map[string]any) { m["genesis"] = s.entries[1] },
		"format":         func(m map[string]any) { m["format"] = "custos-trust/0" },
	} {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		if _, err := audit.ParseTrust(must(json.Marshal(m))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	proof := must(tlog.ProveRecord(int64(n), 0, s.reader()))
	if _, err := audit.NewTrust("test", s.entries[0], proof[1:], s.nodeKeysText("n1"), s.checkpoint(n, "n1")); err == nil {
		t.Error("NewTrust accepted a bad genesis proof")
	}
	if _, err := audit.NewTrust("test", s.entries[0], proof, s.nodeKeysText("n2"), s.checkpoint(n, "n1")); err == nil {
		t.Error("NewTrust accepted a checkpoint signed by an untrusted node")
	}
}

// countingReader counts the reads made of it.
type countingReader struct {
	r     io.Reader
	reads atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.r.Read(p[:min(len(p), 512)])
}

// Verify reads nothing of r after it returns, even when it stops early, so
// a caller may seek r and read it again (the report does, for --unverified).
func TestVerifyStopsReadingBeforeReturning(t *testing.T) {
	s := std(t)
	s.keyOps(20000) // more than the pipeline holds in flight
	n := s.size()
	pack := s.pack(0, n, packOpts{})
	stop := errors.New("stop at the first entry")
	for range 20 {
		cr := &countingReader{r: bytes.NewReader(pack)}
		_, err := audit.Verify(cr, s.trust(n), audit.Options{OnEntry: func(ledger.Entry) error { return stop }})
		if !errors.Is(err, stop) {
			t.Fatalf("verify: %v, want OnEntry's error", err)
		}
		before := cr.reads.Load()
		runtime.Gosched()
		time.Sleep(time.Millisecond) // a chance for a straggling reader, not a timing check
		if after := cr.reads.Load(); after != before {
			t.Fatalf("%d reads of the pack after Verify returned", after-before)
		}
	}
}

package audit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// kekPub is a stand-in for an X-Wing public key: VerifyKEKKey only hashes it.
func kekPub(seed string) []byte { return bytes.Repeat([]byte(seed), 1216/len(seed)) }

func keyHash(pub []byte) string {
	sum := sha256.Sum256(pub)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// dealKEK logs the ceremony.execute entry of a kek.create as keysvc does
// (executeKEK's details) and returns its index.
func (s *synth) dealKEK(id, version string, pub []byte, outcome ledger.Outcome) uint64 {
	return s.add(ledger.Entry{Type: "ceremony.execute", Actor: officerActor("bob"), Node: "n1", Outcome: outcome,
		Details: map[string]string{"proposal.id": "p-" + id + "-" + version, "proposal.operation": "kek.create",
			"kek.id": id, "kek.version": version, "kek.threshold": "2", "kek.public_key": keyHash(pub),
			"kek.commitments": keyHash([]byte("commitments")), "kek.holders": "n1,n2,n3", "approvers": "alice,bob"}})
}

// proveKEK returns what the cluster serves for entry index at size, with a
// consistency proof from (or to) the pinned size.
func (s *synth) proveKEK(t *testing.T, index, size, pinned uint64, signer string) audit.EntryProof {
	t.Helper()
	incl, err := tlog.ProveRecord(int64(size), int64(index), s.reader())
	if err != nil {
		t.Fatal(err)
	}
	var cons tlog.TreeProof
	if size != pinned {
		cons, err = tlog.ProveTree(int64(max(size, pinned)), int64(min(size, pinned)), s.reader())
		if err != nil {
			t.Fatal(err)
		}
	}
	return audit.EntryProof{Checkpoint: s.checkpoint(size, signer), Consistency: cons, Entry: s.entries[index], Index: index, Inclusion: incl}
}

// kekFixture: a log pinned early (before the KEK existed), a KEK "payroll"
// v1 dealt after the pin, and more key operations.
type kekFixture struct {
	s      *synth
	trust  *audit.Trust
	pinned uint64
	index  uint64
	pub    []byte
}

func newKEKFixture(t *testing.T) *kekFixture {
	s := newSynth(t)
	s.registerNode("n2")
	s.init(2, "alice", "bob", "carol")
	pinned := s.size()
	trust := s.trust(pinned)
	s.keyOps(3)
	pub := kekPub("v1-key")
	index := s.dealKEK("payroll", "1", pub, ledger.OutcomeOK)
	s.keyOps(4)
	return &kekFixture{s: s, trust: trust, pinned: pinned, index: index, pub: pub}
}

func (f *kekFixture) proof(t *testing.T) audit.EntryProof {
	return f.s.proveKEK(t, f.index, f.s.size(), f.pinned, "n1")
}

func wantKEKErr(t *testing.T, err, want error, parts ...string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

func TestVerifyKEKKey(t *testing.T) {
	f := newKEKFixture(t)
	cp, err := audit.VerifyKEKKey(f.trust, f.proof(t), "payroll", 1, f.pub)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != f.s.size() || cp.Hash != f.s.root(cp.Size) {
		t.Errorf("checkpoint %+v, want size %d", cp, f.s.size())
	}
	// A tree just big enough to hold the entry.
	p := f.s.proveKEK(t, f.index, f.index+1, f.pinned, "n1")
	if _, err := audit.VerifyKEKKey(f.trust, p, "payroll", 1, f.pub); err != nil {
		t.Errorf("tree ending at the entry: %v", err)
	}
}

// A trust file pinned after the entry: a cluster checkpoint of the same
// size or older (a lagging node) still proves the key.
func TestVerifyKEKKeyPinnedAfterEntry(t *testing.T) {
	f := newKEKFixture(t)
	size := f.s.size()
	trust := f.s.trust(size)
	p := f.s.proveKEK(t, f.index, size, size, "n1")
	if _, err := audit.VerifyKEKKey(trust, p, "payroll", 1, f.pub); err != nil {
		t.Errorf("same size: %v", err)
	}
	p = f.s.proveKEK(t, f.index, f.index+2, size, "n1")
	if _, err := audit.VerifyKEKKey(trust, p, "payroll", 1, f.pub); err != nil {
		t.Errorf("older cluster checkpoint: %v", err)
	}
}

func TestVerifyKEKKeyWrongKey(t *testing.T) {
	f := newKEKFixture(t)
	_, err := audit.VerifyKEKKey(f.trust, f.proof(t), "payroll", 1, kekPub("evil-key"))
	wantKEKErr(t, err, audit.ErrKEKKeyWrongKey, keyHash(f.pub), keyHash(kekPub("evil-key")))
	_, err = audit.VerifyKEKKey(f.trust, f.proof(t), "payroll", 1, nil)
	wantKEKErr(t, err, audit.ErrKEKKeyWrongKey)
}

func TestVerifyKEKKeyWrongVersion(t *testing.T) {
	f := newKEKFixture(t)
	_, err := audit.VerifyKEKKey(f.trust, f.proof(t), "payroll", 2, f.pub)
	wantKEKErr(t, err, audit.ErrKEKKeyWrongVersion, `version "1"`)
}

func TestVerifyKEKKeyWrongKEK(t *testing.T) {
	f := newKEKFixture(t)
	_, err := audit.VerifyKEKKey(f.trust, f.proof(t), "billing", 1, f.pub)
	wantKEKErr(t, err, audit.ErrKEKKeyWrongKEK, `"payroll"`, `"billing"`)
}

func TestVerifyKEKKeyWrongIndex(t *testing.T) {
	f := newKEKFixture(t)
	// The entry claimed at another index, with its own proof.
	p := f.proof(t)
	p.Index++
	_, err := audit.VerifyKEKKey(f.trust, p, "payroll", 1, f.pub)
	wantKEKErr(t, err, audit.ErrNotIncluded)
	// Another entry (a key operation), correctly proved.
	p = f.s.proveKEK(t, f.index+1, f.s.size(), f.pinned, "n1")
	_, err = audit.VerifyKEKKey(f.trust, p, "payroll", 1, f.pub)
	wantKEKErr(t, err, audit.ErrKEKKeyEntry, "kek.unwrap")
	// An index beyond the tree.
	p = f.proof(t)
	p.Index = f.s.size() + 5
	_, err = audit.VerifyKEKKey(f.trust, p, "payroll", 1, f.pub)
	wantKEKErr(t, err, audit.ErrNotIncluded)
}

func TestVerifyKEKKeyTamperedEntry(t *testing.T) {
	f := newKEKFixture(t)
	evil := kekPub("evil-key")
	e, err := ledger.ParseEntry(f.s.entries[f.index])
	if err != nil {
		t.Fatal(err)
	}
	e.Details["kek.public_key"] = keyHash(evil)
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := f.proof(t)
	p.Entry = b
	_, err = audit.VerifyKEKKey(f.trust, p, "payroll", 1, evil)
	wantKEKErr(t, err, audit.ErrNotIncluded)
	// Bytes that are no entry at all.
	p.Entry = []byte("{}")
	_, err = audit.VerifyKEKKey(f.trust, p, "payroll", 1, f.pub)
	wantKEKErr(t, err, audit.ErrNotIncluded)
	// A broken inclusion proof.
	p = f.proof(t)
	p.Inclusion[0][0] ^= 1
	_, err = audit.VerifyKEKKey(f.trust, p, "payroll", 1, f.pub)
	wantKEKErr(t, err, audit.ErrNotIncluded)
}

func TestVerifyKEKKeyUntrustedCheckpoint(t *testing.T) {
	f := newKEKFixture(t)
	// Signed by n2, a registered node the trust file does not list.
	p := f.s.proveKEK(t, f.index, f.s.size(), f.pinned, "n2")
	_, err := audit.VerifyKEKKey(f.trust, p, "payroll", 1, f.pub)
	wantKEKErr(t, err, audit.ErrCheckpointUntrusted, "custos audit checkpoint")
	// A checkpoint of another origin, signed by a trusted key.
	n := synthNodeKey(t, "n1")
	note, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "custos/other", Size: f.s.size(), Hash: f.s.root(f.s.size())}, n.key.Name, n.ec, n.ml)
	if err != nil {
		t.Fatal(err)
	}
	p = f.proof(t)
	p.Checkpoint = note
	_, err = audit.VerifyKEKKey(f.trust, p, "payroll", 1, f.pub)
	wantKEKErr(t, err, audit.ErrCheckpointUntrusted)
	// A checkpoint whose signature was tampered with.
	p = f.proof(t)
	p.Checkpoint = bytes.Replace(p.Checkpoint, []byte("\n\n— "), []byte("\n\n— x"), 1)
	_, err = audit.VerifyKEKKey(f.trust, p, "payroll", 1, f.pub)
	wantKEKErr(t, err, audit.ErrCheckpointUntrusted)
	// No trust file.
	_, err = audit.VerifyKEKKey(nil, f.proof(t), "payroll", 1, f.pub)
	wantKEKErr(t, err, audit.ErrCheckpointUntrusted)
}

func TestVerifyKEKKeyForkedLog(t *testing.T) {
	base := newSynth(t)
	base.registerNode("n2")
	s := base.clone()
	s.init(2, "alice", "bob", "carol")
	s.keyOps(2)
	pinned := s.size()
	trust := s.trust(pinned)

	// A fork (signed by the trusted node, e.g. a compromised leader) that
	// rewrote history before the pin and deals a key of its choosing.
	fork := base.clone()
	fork.init(2, "alice", "bob", "mallory")
	fork.keyOps(3)
	evil := kekPub("evil-key")
	index := fork.dealKEK("payroll", "1", evil, ledger.OutcomeOK)
	fork.keyOps(1)
	p := fork.proveKEK(t, index, fork.size(), pinned, "n1")
	_, err := audit.VerifyKEKKey(trust, p, "payroll", 1, evil)
	wantKEKErr(t, err, audit.ErrLogInconsistent, "forked")

	// A fork of the same size as the pin: roots differ.
	fork = base.clone()
	fork.init(2, "alice", "bob", "mallory")
	for fork.size() < pinned-1 {
		fork.keyOps(1)
	}
	index = fork.dealKEK("payroll", "1", evil, ledger.OutcomeOK)
	if fork.size() != pinned {
		t.Fatalf("fork of size %d, pin %d", fork.size(), pinned)
	}
	p = fork.proveKEK(t, index, pinned, pinned, "n1")
	_, err = audit.VerifyKEKKey(trust, p, "payroll", 1, evil)
	wantKEKErr(t, err, audit.ErrLogInconsistent)

	// The honest log with a broken consistency proof.
	s.keyOps(2)
	index = s.dealKEK("payroll", "1", kekPub("v1-key"), ledger.OutcomeOK)
	p = s.proveKEK(t, index, s.size(), pinned, "n1")
	p.Consistency = p.Consistency[1:]
	_, err = audit.VerifyKEKKey(trust, p, "payroll", 1, kekPub("v1-key"))
	wantKEKErr(t, err, audit.ErrLogInconsistent)
}

func TestVerifyKEKKeyRefusedEntry(t *testing.T) {
	f := newKEKFixture(t)
	pub := kekPub("v2-key")
	// An execute entry that failed (logged, outcome error).
	i := f.s.dealKEK("payroll", "2", pub, ledger.OutcomeError)
	p := f.s.proveKEK(t, i, f.s.size(), f.pinned, "n1")
	_, err := audit.VerifyKEKKey(f.trust, p, "payroll", 2, pub)
	wantKEKErr(t, err, audit.ErrKEKKeyEntry, "outcome error")
	// A refusal carrying the same details.
	i = f.s.add(ledger.Entry{Type: "ceremony.refuse", Actor: officerActor("bob"), Node: "n1", Outcome: ledger.OutcomeDenied,
		Reason: "invalid_kek_material: bad share", Details: map[string]string{"kek.id": "payroll", "kek.version": "2", "kek.public_key": keyHash(pub)}})
	p = f.s.proveKEK(t, i, f.s.size(), f.pinned, "n1")
	_, err = audit.VerifyKEKKey(f.trust, p, "payroll", 2, pub)
	wantKEKErr(t, err, audit.ErrKEKKeyEntry, "ceremony.refuse")
	// An executed ceremony that dealt no key (an officer added).
	i = f.s.add(ledger.Entry{Type: "ceremony.execute", Actor: officerActor("bob"), Node: "n1",
		Details: map[string]string{"officer.id": "dave", "kek.id": "payroll", "kek.version": "2"}})
	p = f.s.proveKEK(t, i, f.s.size(), f.pinned, "n1")
	_, err = audit.VerifyKEKKey(f.trust, p, "payroll", 2, pub)
	wantKEKErr(t, err, audit.ErrKEKKeyEntry, "dealt no kek version")
}

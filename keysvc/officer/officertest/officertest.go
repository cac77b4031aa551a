// Package officertest makes security officers for tests: hybrid keys
// generated in memory (Set, Shared) or loaded from a development cluster's
// key files (Load), their bundles and officer.add parameters, proposals,
// and signed approvals. Its functions fail the test through tb.
package officertest

import (
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/officer"
)

// Set is a set of officers by name, each generated on first use. It is
// safe for concurrent use.
type Set struct {
	tb testing.TB
	p  *pool
}

type pool struct {
	mu      sync.Mutex
	signers map[string]*officer.Signer
}

// New returns a Set holding officers names (more are made on first use),
// whose keys are closed when the test ends.
func New(tb testing.TB, names ...string) *Set {
	tb.Helper()
	s := &Set{tb: tb, p: &pool{signers: map[string]*officer.Signer{}}}
	tb.Cleanup(func() {
		s.p.mu.Lock()
		defer s.p.mu.Unlock()
		for _, sg := range s.p.signers {
			sg.Close()
		}
	})
	for _, n := range names {
		s.Signer(n)
	}
	return s
}

var shared = &pool{signers: map[string]*officer.Signer{}}

// Shared returns the Set of the whole test binary, never closed: for tests
// that build many logs with the same officers (keys are costly to make).
func Shared(tb testing.TB) *Set { return &Set{tb: tb, p: shared} }

// Signer returns officer name's key, generating it if needed.
func (s *Set) Signer(name string) *officer.Signer {
	s.tb.Helper()
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if sg := s.p.signers[name]; sg != nil {
		return sg
	}
	sg, err := officer.Generate(officer.Config{Name: name})
	if err != nil {
		s.tb.Fatal(err)
	}
	s.p.signers[name] = sg
	return sg
}

// Bundle is officer name's public key bundle, as init and officer.add record it.
func (s *Set) Bundle(name string) string { return string(s.Signer(name).Public().Marshal()) }

// Bundles are the bundles of names, in order.
func (s *Set) Bundles(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = s.Bundle(n)
	}
	return out
}

// Add is the officer.add of officer name.
func (s *Set) Add(name string) ceremony.OfficerAdd {
	pk := s.Signer(name).Public()
	return ceremony.OfficerAdd{ID: name, Bundle: string(pk.Marshal()), Fingerprint: pk.Fingerprint()}
}

// Sign is officer name's signature of p, marshalled.
func (s *Set) Sign(name string, p ceremony.Proposal) []byte {
	s.tb.Helper()
	return Sign(s.tb, s.Signer(name), p)
}

// Approve is officer name's approval of p.
func (s *Set) Approve(name string, p ceremony.Proposal) ceremony.Approval {
	s.tb.Helper()
	return ceremony.Approval{ProposalID: p.ID, Officer: name, Signature: s.Sign(name, p)}
}

// Verify is the ceremony.VerifyFunc the state machine would pass, with
// the public keys of the officers made so far as the recorded ones.
func (s *Set) Verify() ceremony.VerifyFunc {
	s.p.mu.Lock()
	keys := map[string]*officer.PublicKey{}
	for n, sg := range s.p.signers {
		keys[n] = sg.Public()
	}
	s.p.mu.Unlock()
	return func(name string, d [32]byte, sig []byte) error {
		pk := keys[name]
		if pk == nil {
			return errors.New("officertest: no key for officer " + name)
		}
		sg, err := officer.ParseSignature(sig)
		if err != nil {
			return err
		}
		return pk.Verify(d, sg)
	}
}

// Sign is sg's signature of p, marshalled.
func Sign(tb testing.TB, sg *officer.Signer, p ceremony.Proposal) []byte {
	tb.Helper()
	sig, err := sg.Sign(p.Digest())
	if err != nil {
		tb.Fatal(err)
	}
	return sig.Marshal()
}

// Load opens the officer key file at path with the passphrase in
// passphraseFile (surrounding space trimmed), as a development cluster
// writes them; the key is closed when the test ends.
func Load(tb testing.TB, path, passphraseFile string) *officer.Signer {
	tb.Helper()
	pass, err := os.ReadFile(passphraseFile)
	if err != nil {
		tb.Fatal(err)
	}
	sg, err := officer.Load(path, []byte(strings.TrimSpace(string(pass))))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sg.Close() })
	return sg
}

// Proposal is a proposal of ps by proposer in cluster, with a fresh id,
// created at now and expiring an hour later, against state version v.
func Proposal(tb testing.TB, cluster, proposer string, ps ceremony.Params, now time.Time, v uint64) ceremony.Proposal {
	tb.Helper()
	id, err := ceremony.NewID(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return ceremony.Proposal{Cluster: cluster, ID: id, Params: ps, Proposer: proposer, Created: now, Expires: now.Add(time.Hour), StateVersion: v}
}

// Actor is officer name as the log records the caller: a DE officer of
// cluster "test".
func Actor(name string) ledger.Actor {
	return ledger.Actor{Identity: "custos://test/officer/" + name + "?region=DE", Role: "officer", Region: "DE"}
}

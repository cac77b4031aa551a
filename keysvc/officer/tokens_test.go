package officer_test

// The Tokens seam, with hsmtest's in-memory token; officerhsm tests it on SoftHSM.

import (
	"crypto/ecdsa"
	"errors"
	"strings"
	"testing"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/keysvc/officer"
)

// keptOpen is a token whose Close leaves it usable, so that a test can open it again.
type keptOpen struct{ hsm.Token }

func (keptOpen) Close() error { return nil }

func TestTokens(t *testing.T) {
	const uri = "pkcs11:token=t;object=custos-officer?module-path=/m.so&pin-source=env:P"
	tok := hsmtest.NewFake()
	var opened []string
	tokens := officer.Tokens{Open: func(u *officer.PKCS11URI) (hsm.Token, error) {
		opened = append(opened, u.String())
		return keptOpen{tok}, nil
	}}
	dir := t.TempDir()
	pub, err := tokens.Keygen(dir, officer.Config{Name: "alice", PKCS11URI: uri, WorkFactor: testWorkFactor}, testPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	tokSigner, err := tok.Signer("custos-officer")
	if err != nil {
		t.Fatal(err)
	}
	if !tokSigner.Public().(*ecdsa.PublicKey).Equal(pub.ClassicalKey()) {
		t.Fatal("bundle's classical key is not the token's")
	}
	keyPath, _ := officer.KeyFiles(dir, "alice")
	s, err := tokens.Load(keyPath, testPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Public().Equal(pub) {
		t.Fatal("loaded another key")
	}
	d := randomDigest(t)
	sig, err := s.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Verify(d, sig); err != nil {
		t.Fatal(err)
	}
	if len(opened) != 2 || opened[0] != uri || opened[1] != uri {
		t.Fatalf("opened %q, want the key's URI twice", opened)
	}

	// Without a token opener, keys on a token are refused, not silently made in software.
	if _, err := officer.Load(keyPath, testPassphrase); err == nil || !strings.Contains(err.Error(), "officerhsm") {
		t.Fatalf("officer.Load of a key on a token = %v", err)
	}
	if _, err := officer.Generate(officer.Config{Name: "bob", PKCS11URI: uri}); err == nil || !strings.Contains(err.Error(), "officerhsm") {
		t.Fatalf("officer.Generate on a token = %v", err)
	}
	// The label is taken now.
	if _, err := tokens.Generate(officer.Config{Name: "bob", PKCS11URI: uri}); !errors.Is(err, hsm.ErrKeyExists) {
		t.Fatalf("Generate under a taken label = %v, want hsm.ErrKeyExists", err)
	}
}

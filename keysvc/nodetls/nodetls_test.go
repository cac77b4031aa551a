package nodetls

import (
	"crypto/ecdsa"
	"testing"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
)

// The TLS key is made once, in the token, apart from the identity key, and
// found again afterwards.
func TestTLSSigner(t *testing.T) {
	tok := hsmtest.NewFake()
	s1, err := TLSSigner(tok)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := TLSSigner(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !s1.Public().(*ecdsa.PublicKey).Equal(s2.Public()) {
		t.Fatal("a second call made another TLS key")
	}
	if id, err := tok.Signer("custos:node:identity"); err == nil && s1.Public().(*ecdsa.PublicKey).Equal(id.Public()) {
		t.Fatal("the TLS key is the identity key")
	}
	labels, _ := tok.List()
	if len(labels) != 1 || labels[0] != (hsm.KeyInfo{Label: LabelTLS, Kind: hsm.KindECDSA}) {
		t.Fatalf("HSM keys %v", labels)
	}
	tok.Destroy(LabelTLS)
	tok.GenerateAESKey(LabelTLS) // a label taken by an AES key
	if _, err := TLSSigner(tok); err == nil {
		t.Fatal("TLSSigner used or replaced a non-ECDSA key")
	}
}

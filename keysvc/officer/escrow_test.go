package officer_test

import (
	"bytes"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// An escrow share sealed to the officer's X-Wing public key with wrapkey opens
// with the Signer's EscrowKey, also after a round trip through the key file.
func TestEscrowKey(t *testing.T) {
	dir, pub := keygen(t, officer.Config{Name: "alice"})
	keyPath, _ := officer.KeyFiles(dir, "alice")
	share := bytes.Repeat([]byte{7}, 32)
	ctx := wrapkey.Context{"purpose": "escrow", "officer": "alice"}
	blob, err := wrapkey.Wrap(nil, pub.XWingKey(), "k1", 3, ctx, share)
	if err != nil {
		t.Fatal(err)
	}
	s := load(t, keyPath)
	k, err := s.EscrowKey("k1", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Destroy()
	if !bytes.Equal(k.PublicKey(), pub.XWingKey()) {
		t.Fatal("escrow key is not the bundle's X-Wing key")
	}
	got, err := k.Unwrap(blob, ctx)
	if err != nil || !bytes.Equal(got, share) {
		t.Fatalf("Unwrap = %x, %v", got, err)
	}
	other := generate(t, "bob", officer.ECDSAP256)
	ok, _ := other.EscrowKey("k1", 3)
	defer ok.Destroy()
	if _, err := ok.Unwrap(blob, ctx); !errors.Is(err, wrapkey.ErrOpen) {
		t.Fatalf("another officer opened the share: %v", err)
	}
}

// escrowKey is the shape of kek.EscrowKey: a Signer serves as one directly.
type escrowKey interface {
	XWingPublicKey() []byte
	OpenHPKE(enc, ciphertext, info, aad []byte) ([]byte, error)
}

var _ escrowKey = (*officer.Signer)(nil)

// OpenHPKE opens what the standard library's crypto/hpke (MLKEM768X25519, the same
// KEM as X-Wing) seals to the officer: an independent implementation.
func TestOpenHPKE(t *testing.T) {
	s := generate(t, "alice", officer.ECDSAP256)
	if !bytes.Equal(s.XWingPublicKey(), s.Public().XWingKey()) {
		t.Fatal("XWingPublicKey is not the bundle's X-Wing key")
	}
	kem := hpke.MLKEM768X25519()
	pk, err := kem.NewPublicKey(s.XWingPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	info, aad := []byte("custos/v1/escrow k1 v3 alice"), []byte("share 2 of 3")
	share := make([]byte, 32)
	rand.Read(share)
	enc, sealer, err := hpke.NewSender(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), info)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := sealer.Seal(aad, share)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.OpenHPKE(enc, ct, info, aad)
	if err != nil || !bytes.Equal(got, share) {
		t.Fatalf("OpenHPKE = %x, %v", got, err)
	}
	flip := func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-1] ^= 1; return b }
	for name, args := range map[string][4][]byte{
		"wrong info":    {enc, ct, []byte("other"), aad},
		"wrong aad":     {enc, ct, info, nil},
		"tampered":      {enc, flip(ct), info, aad},
		"tampered enc":  {flip(enc), ct, info, aad},
		"short enc":     {enc[1:], ct, info, aad},
		"no ciphertext": {enc, nil, info, aad},
	} {
		if _, err := s.OpenHPKE(args[0], args[1], args[2], args[3]); !errors.Is(err, officer.ErrOpen) {
			t.Errorf("%s: %v, want ErrOpen", name, err)
		}
	}
	other := generate(t, "bob", officer.ECDSAP256)
	if _, err := other.OpenHPKE(enc, ct, info, aad); !errors.Is(err, officer.ErrOpen) {
		t.Errorf("another officer: %v, want ErrOpen", err)
	}
}

package keysvc

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/keysvc/ledger"
)

func TestNodeKeysSealedSeed(t *testing.T) {
	tok, dir := hsmtest.NewFake(), t.TempDir()
	k1, err := loadNodeKeys(tok, dir, "test", "n1")
	if err != nil {
		t.Fatal(err)
	}
	labels, _ := tok.List()
	if len(labels) != 3 || labels[0] != (hsm.KeyInfo{Label: LabelIdentity, Kind: hsm.KindECDSA}) || labels[1] != (hsm.KeyInfo{Label: LabelKEMSeal, Kind: hsm.KindAES}) ||
		labels[2] != (hsm.KeyInfo{Label: LabelMLDSASeal, Kind: hsm.KindAES}) {
		t.Fatalf("HSM keys %v", labels)
	}
	sealed, err := os.ReadFile(filepath.Join(dir, mldsaSeedFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != mldsa65.SeedSize+hsm.Overhead {
		t.Fatalf("sealed seed is %d bytes", len(sealed))
	}
	if fi, _ := os.Stat(filepath.Join(dir, mldsaSeedFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("sealed seed mode %v", fi.Mode())
	}
	// The seed in the file is not the plain seed: the key derived from it differs.
	_, plainKey := mldsa65.NewKeyFromSeed((*[32]byte)(sealed[hsm.NonceSize : hsm.NonceSize+32]))
	if plainKey.Public().(*mldsa65.PublicKey).Equal(k1.pub.MLDSA) {
		t.Fatal("seed stored in the clear")
	}

	// Reopened: the same keys.
	k2, err := loadNodeKeys(tok, dir, "test", "n1")
	if err != nil {
		t.Fatal(err)
	}
	if k1.text != k2.text {
		t.Fatal("keys changed across a reopen")
	}
	// Both sign checkpoints that verify under the registered keys.
	cp := ledger.Checkpoint{Origin: ledger.Origin("test"), Size: 1}
	note, err := k2.sign(cp)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ledger.VerifyCheckpoint(note, ledger.Origin("test"), k1.pub); err != nil {
		t.Fatal(err)
	}
	k2.zero()
	if _, err := k2.sign(cp); !errors.Is(err, ErrClosed) {
		t.Fatalf("sign after zero: %v", err)
	}

	// The AAD binds node and cluster: the file does not open for another node.
	if _, err := loadNodeKeys(tok, dir, "test", "n2"); !errors.Is(err, hsm.ErrOpen) {
		t.Fatalf("seed opened for another node: %v", err)
	}
	// Tampered, or without the sealing key: refused, never replaced.
	tampered := bytes.Clone(sealed)
	tampered[20] ^= 1
	os.WriteFile(filepath.Join(dir, mldsaSeedFile), tampered, 0o600)
	if _, err := loadNodeKeys(tok, dir, "test", "n1"); !errors.Is(err, hsm.ErrOpen) {
		t.Fatalf("tampered seed: %v", err)
	}
	os.WriteFile(filepath.Join(dir, mldsaSeedFile), sealed, 0o600)
	if _, err := loadNodeKeys(hsmtest.NewFake(), dir, "test", "n1"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("seed with another HSM: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, mldsaSeedFile)); !bytes.Equal(got, sealed) {
		t.Fatal("sealed seed file replaced after a failure")
	}
	k1.zero()
}

package hsmtest

// The conformance suite every hsm.Token backend must pass.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/custos-eu/custos/hsm"
)

// RunConformance runs the behaviour every hsm.Token must have as subtests of t.
// newToken must return a fresh, empty, open token for each subtest (and may register
// its Close with t.Cleanup: Close must be idempotent).
func RunConformance(t *testing.T, newToken func(t *testing.T) hsm.Token) {
	t.Run("GenerateAndDuplicate", func(t *testing.T) { testGenerate(t, newToken(t)) })
	t.Run("Signer", func(t *testing.T) { testSigner(t, newToken(t)) })
	t.Run("SealOpen", func(t *testing.T) { testSealOpen(t, newToken(t)) })
	t.Run("OpenRejects", func(t *testing.T) { testOpenRejects(t, newToken(t)) })
	t.Run("Destroy", func(t *testing.T) { testDestroy(t, newToken(t)) })
	t.Run("List", func(t *testing.T) { testList(t, newToken(t)) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, newToken(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newToken(t)) })
	t.Run("Close", func(t *testing.T) { testClose(t, newToken(t)) })
}

// wantErr fails t unless err is an *hsm.Error for op and label wrapping want.
func wantErr(t *testing.T, what string, err error, op, label string, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
	var he *hsm.Error
	if !errors.As(err, &he) {
		t.Fatalf("%s: error %T is not an *hsm.Error", what, err)
	}
	if he.Op != op || he.Label != label {
		t.Fatalf("%s: *hsm.Error has Op %q Label %q, want %q %q", what, he.Op, he.Label, op, label)
	}
	if strings.Contains(err.Error(), "CKR_") || strings.Contains(err.Error(), "0x") {
		t.Fatalf("%s: message carries a raw PKCS#11 code: %q", what, err)
	}
}

func digest(msg string) []byte {
	d := sha256.Sum256([]byte(msg))
	return d[:]
}

func sign(t *testing.T, s crypto.Signer, msg string) {
	t.Helper()
	pub, ok := s.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("public key is %T, want a P-256 *ecdsa.PublicKey", s.Public())
	}
	sig, err := s.Sign(nil, digest(msg), crypto.SHA256)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	if !ecdsa.VerifyASN1(pub, digest(msg), sig) {
		t.Fatal("signature does not verify with ecdsa.VerifyASN1")
	}
	if ecdsa.VerifyASN1(pub, digest(msg+"!"), sig) {
		t.Fatal("signature verifies for another message")
	}
}

func testGenerate(t *testing.T, tok hsm.Token) {
	if err := tok.GenerateAESKey("custos:kek:k1:1"); err != nil {
		t.Fatal(err)
	}
	err := tok.GenerateAESKey("custos:kek:k1:1")
	wantErr(t, "second AES key with the label", err, hsm.OpGenerateAESKey, "custos:kek:k1:1", hsm.ErrKeyExists)
	_, err = tok.GenerateSigner("custos:kek:k1:1")
	wantErr(t, "signer with an AES key's label", err, hsm.OpGenerateSigner, "custos:kek:k1:1", hsm.ErrKeyExists)

	if _, err := tok.GenerateSigner("custos:node"); err != nil {
		t.Fatal(err)
	}
	_, err = tok.GenerateSigner("custos:node")
	wantErr(t, "second signer with the label", err, hsm.OpGenerateSigner, "custos:node", hsm.ErrKeyExists)
	err = tok.GenerateAESKey("custos:node")
	wantErr(t, "AES key with a signer's label", err, hsm.OpGenerateAESKey, "custos:node", hsm.ErrKeyExists)

	// The failed attempts created nothing.
	keys, err := tok.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []hsm.KeyInfo{{Label: "custos:kek:k1:1", Kind: hsm.KindAES}, {Label: "custos:node", Kind: hsm.KindECDSA}}
	if !slices.Equal(keys, want) {
		t.Fatalf("List = %v, want %v", keys, want)
	}

	for _, label := range []string{"", strings.Repeat("x", hsm.MaxLabelLen+1)} {
		if err := tok.GenerateAESKey(label); err == nil {
			t.Errorf("GenerateAESKey(%d-byte label) succeeded", len(label))
		}
		if _, err := tok.GenerateSigner(label); err == nil {
			t.Errorf("GenerateSigner(%d-byte label) succeeded", len(label))
		}
	}
	if err := tok.GenerateAESKey(strings.Repeat("x", hsm.MaxLabelLen)); err != nil {
		t.Errorf("GenerateAESKey(longest label): %v", err)
	}
}

func testSigner(t *testing.T, tok hsm.Token) {
	gen, err := tok.GenerateSigner("custos:node")
	if err != nil {
		t.Fatal(err)
	}
	sign(t, gen, "checkpoint 1")

	found, err := tok.Signer("custos:node")
	if err != nil {
		t.Fatal(err)
	}
	if !found.Public().(*ecdsa.PublicKey).Equal(gen.Public()) {
		t.Fatal("Signer found a different public key than GenerateSigner returned")
	}
	sign(t, found, "checkpoint 2")

	// ECDSA signatures are randomised.
	d := digest("same")
	a, _ := found.Sign(nil, d, crypto.SHA256)
	b, _ := found.Sign(nil, d, crypto.SHA256)
	if bytes.Equal(a, b) {
		t.Error("two signatures of one digest are identical")
	}
	if _, err := found.Sign(nil, d[:20], crypto.SHA256); err == nil {
		t.Error("Sign accepted a 20-byte digest for SHA-256")
	}

	_, err = tok.Signer("custos:none")
	wantErr(t, "Signer of a missing label", err, hsm.OpFindSigner, "custos:none", hsm.ErrKeyNotFound)
	if err := tok.GenerateAESKey("custos:aes"); err != nil {
		t.Fatal(err)
	}
	_, err = tok.Signer("custos:aes")
	wantErr(t, "Signer of an AES key", err, hsm.OpFindSigner, "custos:aes", hsm.ErrKeyNotFound)

	// Two key pairs are independent.
	other, err := tok.GenerateSigner("custos:other")
	if err != nil {
		t.Fatal(err)
	}
	if other.Public().(*ecdsa.PublicKey).Equal(gen.Public()) {
		t.Fatal("two generated key pairs share a public key")
	}
	sig, _ := other.Sign(nil, d, crypto.SHA256)
	if ecdsa.VerifyASN1(gen.Public().(*ecdsa.PublicKey), d, sig) {
		t.Fatal("a signature by one key verifies under another")
	}
}

func testSealOpen(t *testing.T, tok hsm.Token) {
	const label = "custos:kek:k1:1"
	if err := tok.GenerateAESKey(label); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		pt, aad []byte
	}{
		{"32 bytes", bytes.Repeat([]byte{7}, 32), []byte("custos/v1/sealed-share")},
		{"empty plaintext", nil, []byte("aad")},
		{"no aad", []byte("share"), nil},
		{"4 KiB", bytes.Repeat([]byte("x"), 4096), []byte("aad")},
	} {
		sealed, err := tok.Seal(label, c.pt, c.aad)
		if err != nil {
			t.Fatalf("%s: seal: %v", c.name, err)
		}
		if len(sealed) != hsm.Overhead+len(c.pt) {
			t.Fatalf("%s: sealed is %d bytes, want nonce+plaintext+tag = %d", c.name, len(sealed), hsm.Overhead+len(c.pt))
		}
		if len(c.pt) > 0 && bytes.Contains(sealed, c.pt) {
			t.Fatalf("%s: sealed contains the plaintext", c.name)
		}
		got, err := tok.Open(label, sealed, c.aad)
		if err != nil {
			t.Fatalf("%s: open: %v", c.name, err)
		}
		if !bytes.Equal(got, c.pt) || got == nil {
			t.Fatalf("%s: open = %x, want %x (non-nil)", c.name, got, c.pt)
		}
	}

	// Every Seal draws a fresh nonce.
	nonces := map[string]bool{}
	for range 32 {
		sealed, err := tok.Seal(label, []byte("same"), nil)
		if err != nil {
			t.Fatal(err)
		}
		n := string(sealed[:hsm.NonceSize])
		if nonces[n] {
			t.Fatal("Seal reused a nonce")
		}
		nonces[n] = true
	}

	_, err := tok.Seal("custos:none", []byte("x"), nil)
	wantErr(t, "Seal under a missing key", err, hsm.OpSeal, "custos:none", hsm.ErrKeyNotFound)
	sealed, _ := tok.Seal(label, []byte("x"), nil)
	_, err = tok.Open("custos:none", sealed, nil)
	wantErr(t, "Open under a missing key", err, hsm.OpOpen, "custos:none", hsm.ErrKeyNotFound)
	if _, err := tok.GenerateSigner("custos:node"); err != nil {
		t.Fatal(err)
	}
	_, err = tok.Seal("custos:node", []byte("x"), nil)
	wantErr(t, "Seal under a signing key", err, hsm.OpSeal, "custos:node", hsm.ErrKeyNotFound)
}

func testOpenRejects(t *testing.T, tok hsm.Token) {
	const label = "custos:kek:k1:1"
	for _, l := range []string{label, "custos:kek:k1:2"} {
		if err := tok.GenerateAESKey(l); err != nil {
			t.Fatal(err)
		}
	}
	pt, aad := []byte("share 1 of 3, 67 bytes in real life"), []byte("custos/v1/sealed-share\x00k1\x001")
	sealed, err := tok.Seal(label, pt, aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	for _, c := range []struct {
		name        string
		label       string
		sealed, aad []byte
	}{
		{"wrong aad", label, sealed, []byte("custos/v1/sealed-share\x00k1\x002")},
		{"missing aad", label, sealed, nil},
		{"tampered nonce", label, flip(0), aad},
		{"tampered ciphertext", label, flip(hsm.NonceSize + 3), aad},
		{"tampered tag", label, flip(len(sealed) - 1), aad},
		{"truncated", label, sealed[:len(sealed)-1], aad},
		{"too short", label, sealed[:hsm.Overhead-1], aad},
		{"empty", label, nil, aad},
		{"extended", label, append(bytes.Clone(sealed), 0), aad},
		{"different key", "custos:kek:k1:2", sealed, aad},
	} {
		got, err := tok.Open(c.label, c.sealed, c.aad)
		if got != nil {
			t.Errorf("%s: Open returned plaintext %q", c.name, got)
		}
		wantErr(t, c.name, err, hsm.OpOpen, c.label, hsm.ErrOpen)
	}
	// Failures leave the key usable.
	if got, err := tok.Open(label, sealed, aad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("open after failures: %q, %v", got, err)
	}
}

func testDestroy(t *testing.T, tok hsm.Token) {
	const aesLabel, sigLabel = "custos:kek:k1:1", "custos:node"
	if err := tok.GenerateAESKey(aesLabel); err != nil {
		t.Fatal(err)
	}
	sealed, err := tok.Seal(aesLabel, []byte("share"), nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := tok.GenerateSigner(sigLabel)
	if err != nil {
		t.Fatal(err)
	}
	found, err := tok.Signer(sigLabel)
	if err != nil {
		t.Fatal(err)
	}

	if err := tok.Destroy(aesLabel); err != nil {
		t.Fatal(err)
	}
	_, err = tok.Open(aesLabel, sealed, nil)
	wantErr(t, "Open after Destroy", err, hsm.OpOpen, aesLabel, hsm.ErrKeyNotFound)
	_, err = tok.Seal(aesLabel, []byte("x"), nil)
	wantErr(t, "Seal after Destroy", err, hsm.OpSeal, aesLabel, hsm.ErrKeyNotFound)
	wantErr(t, "second Destroy", tok.Destroy(aesLabel), hsm.OpDestroy, aesLabel, hsm.ErrKeyNotFound)

	// A new key under the old label is a different key: the old sealed data stays lost.
	if err := tok.GenerateAESKey(aesLabel); err != nil {
		t.Fatalf("label not reusable after Destroy: %v", err)
	}
	_, err = tok.Open(aesLabel, sealed, nil)
	wantErr(t, "Open under the recreated key", err, hsm.OpOpen, aesLabel, hsm.ErrOpen)

	if err := tok.Destroy(sigLabel); err != nil {
		t.Fatal(err)
	}
	_, err = tok.Signer(sigLabel)
	wantErr(t, "Signer after Destroy", err, hsm.OpFindSigner, sigLabel, hsm.ErrKeyNotFound)
	for name, s := range map[string]crypto.Signer{"generated": signer, "found": found} {
		_, err = s.Sign(nil, digest("x"), crypto.SHA256)
		wantErr(t, name+" signer after Destroy", err, hsm.OpSign, sigLabel, hsm.ErrKeyNotFound)
	}
	// A signer never silently switches to a new key that took its label.
	if _, err := tok.GenerateSigner(sigLabel); err != nil {
		t.Fatal(err)
	}
	_, err = signer.Sign(nil, digest("x"), crypto.SHA256)
	wantErr(t, "old signer after the label was reused", err, hsm.OpSign, sigLabel, hsm.ErrKeyNotFound)

	keys, err := tok.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("List after destroy and recreate = %v, want 2 keys", keys)
	}
	wantErr(t, "Destroy of a missing label", tok.Destroy("custos:none"), hsm.OpDestroy, "custos:none", hsm.ErrKeyNotFound)
}

func testList(t *testing.T, tok hsm.Token) {
	keys, err := tok.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("new token lists %v", keys)
	}
	var want []hsm.KeyInfo
	for i, label := range []string{"custos:kek:b:1", "custos:node", "custos:kek:a:2", "custos:kek:a:1", "A", "custos:kek:b:10"} {
		kind := hsm.KindAES
		if i%3 == 1 {
			kind = hsm.KindECDSA
			if _, err := tok.GenerateSigner(label); err != nil {
				t.Fatal(err)
			}
		} else if err := tok.GenerateAESKey(label); err != nil {
			t.Fatal(err)
		}
		want = append(want, hsm.KeyInfo{Label: label, Kind: kind})
	}
	slices.SortFunc(want, func(a, b hsm.KeyInfo) int { return strings.Compare(a.Label, b.Label) })
	keys, err = tok.List()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("List = %v\nwant   %v", keys, want)
	}
	if hsm.KindAES.String() != "aes" || hsm.KindECDSA.String() != "ecdsa" || hsm.KeyKind(9).String() != "KeyKind(9)" {
		t.Errorf("KeyKind strings: %v %v %v", hsm.KindAES, hsm.KindECDSA, hsm.KeyKind(9))
	}
}

func testErrors(t *testing.T, tok hsm.Token) {
	_, err := tok.Seal("custos:kek:k1:1", []byte("x"), nil)
	if got, want := err.Error(), `hsm: seal with key "custos:kek:k1:1": key not found`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	wantErr(t, "Seal under a missing key", err, hsm.OpSeal, "custos:kek:k1:1", hsm.ErrKeyNotFound)
	if errors.Is(err, hsm.ErrOpen) || errors.Is(err, hsm.ErrDevice) {
		t.Errorf("error %v matches more than one sentinel", err)
	}
	_, err = tok.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
}

func testConcurrent(t *testing.T, tok hsm.Token) {
	if err := tok.GenerateAESKey("custos:kek:k1:1"); err != nil {
		t.Fatal(err)
	}
	signer, err := tok.GenerateSigner("custos:node")
	if err != nil {
		t.Fatal(err)
	}
	pub := signer.Public().(*ecdsa.PublicKey)
	const goroutines, rounds = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				msg := fmt.Appendf(nil, "goroutine %d round %d", g, i)
				sealed, err := tok.Seal("custos:kek:k1:1", msg, []byte("aad"))
				if err != nil {
					errs <- err
					return
				}
				got, err := tok.Open("custos:kek:k1:1", sealed, []byte("aad"))
				if err != nil || !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("open: %q, %v", got, err)
					return
				}
				d := sha256.Sum256(msg)
				sig, err := signer.Sign(nil, d[:], crypto.SHA256)
				if err != nil {
					errs <- err
					return
				}
				if !ecdsa.VerifyASN1(pub, d[:], sig) {
					errs <- errors.New("concurrent signature does not verify")
					return
				}
				if i%10 == 0 {
					if _, err := tok.List(); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	// Generation races on one label: exactly one wins.
	var created sync.Map
	for g := range 8 {
		wg.Go(func() {
			if err := tok.GenerateAESKey("custos:race"); err == nil {
				created.Store(g, true)
			} else if !errors.Is(err, hsm.ErrKeyExists) {
				errs <- fmt.Errorf("%w (%s)", err, detail(err))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := 0
	created.Range(func(_, _ any) bool { n++; return true })
	if n != 1 {
		t.Errorf("%d concurrent GenerateAESKey calls on one label succeeded, want 1", n)
	}
}

func testClose(t *testing.T, tok hsm.Token) {
	if err := tok.GenerateAESKey("custos:kek:k1:1"); err != nil {
		t.Fatal(err)
	}
	signer, err := tok.GenerateSigner("custos:node")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := tok.Seal("custos:kek:k1:1", []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tok.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err = tok.Seal("custos:kek:k1:1", []byte("x"), nil)
	wantErr(t, "Seal after Close", err, hsm.OpSeal, "custos:kek:k1:1", hsm.ErrClosed)
	_, err = tok.Open("custos:kek:k1:1", sealed, nil)
	wantErr(t, "Open after Close", err, hsm.OpOpen, "custos:kek:k1:1", hsm.ErrClosed)
	_, err = signer.Sign(nil, digest("x"), crypto.SHA256)
	wantErr(t, "Sign after Close", err, hsm.OpSign, "custos:node", hsm.ErrClosed)
	_, err = tok.List()
	wantErr(t, "List after Close", err, hsm.OpList, "", hsm.ErrClosed)
	wantErr(t, "GenerateAESKey after Close", tok.GenerateAESKey("custos:x"), hsm.OpGenerateAESKey, "custos:x", hsm.ErrClosed)
	wantErr(t, "Destroy after Close", tok.Destroy("custos:kek:k1:1"), hsm.OpDestroy, "custos:kek:k1:1", hsm.ErrClosed)
}

func detail(err error) string {
	var he *hsm.Error
	if errors.As(err, &he) {
		return he.Detail()
	}
	return ""
}

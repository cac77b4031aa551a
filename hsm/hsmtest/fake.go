// Package hsmtest helps test code that uses hsm.Token: an in-memory fake with the same
// semantics as the PKCS#11 backend (NewFake), the conformance suite both pass
// (RunConformance), and real SoftHSM tokens for integration tests (SoftHSM, OpenSoftHSM).
package hsmtest

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/custos-eu/custos/hsm"
)

// Fake is an in-memory hsm.Token. Keys are generated inside it and never leave it; it
// is safe for concurrent use, and its errors are the same *hsm.Error values, with the
// same Op, Label and sentinel, as the PKCS#11 backend's.
type Fake struct {
	mu     sync.RWMutex
	keys   map[string]*fakeKey
	closed bool
	fault  func(op, label string) error
}

type fakeKey struct {
	kind hsm.KeyKind
	aead cipher.AEAD
	priv *ecdsa.PrivateKey
}

// NewFake returns an empty *Fake.
func NewFake() hsm.Token {
	return &Fake{keys: map[string]*fakeKey{}}
}

// SetFault makes the fake call f(op, label) before every operation, with op one of the
// hsm.Op constants; if f returns an error the operation fails with it, inside an
// *hsm.Error (return hsm.ErrDevice to simulate a broken HSM). SetFault(nil) removes it.
func (f *Fake) SetFault(fn func(op, label string) error) {
	f.mu.Lock()
	f.fault = fn
	f.mu.Unlock()
}

// begin checks the label, closure and fault; the caller holds f.mu.
func (f *Fake) begin(op, label string, checkLabel bool) error {
	if checkLabel {
		if err := hsm.CheckLabel(label); err != nil {
			return &hsm.Error{Op: op, Label: label, Err: err}
		}
	}
	if f.closed {
		return &hsm.Error{Op: op, Label: label, Err: hsm.ErrClosed}
	}
	if f.fault != nil {
		if err := f.fault(op, label); err != nil {
			return &hsm.Error{Op: op, Label: label, Err: err}
		}
	}
	return nil
}

func (f *Fake) GenerateAESKey(label string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(hsm.OpGenerateAESKey, label, true); err != nil {
		return err
	}
	if f.keys[label] != nil {
		return &hsm.Error{Op: hsm.OpGenerateAESKey, Label: label, Err: hsm.ErrKeyExists}
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return &hsm.Error{Op: hsm.OpGenerateAESKey, Label: label, Err: hsm.ErrDevice}
	}
	aead, _ := cipher.NewGCM(block) // standard nonce and tag sizes: hsm.NonceSize, hsm.TagSize
	clear(key)
	f.keys[label] = &fakeKey{kind: hsm.KindAES, aead: aead}
	return nil
}

func (f *Fake) GenerateSigner(label string) (crypto.Signer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(hsm.OpGenerateSigner, label, true); err != nil {
		return nil, err
	}
	if f.keys[label] != nil {
		return nil, &hsm.Error{Op: hsm.OpGenerateSigner, Label: label, Err: hsm.ErrKeyExists}
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, &hsm.Error{Op: hsm.OpGenerateSigner, Label: label, Err: hsm.ErrDevice}
	}
	k := &fakeKey{kind: hsm.KindECDSA, priv: priv}
	f.keys[label] = k
	return &fakeSigner{f: f, label: label, key: k}, nil
}

func (f *Fake) Signer(label string) (crypto.Signer, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if err := f.begin(hsm.OpFindSigner, label, true); err != nil {
		return nil, err
	}
	k := f.keys[label]
	if k == nil || k.kind != hsm.KindECDSA {
		return nil, &hsm.Error{Op: hsm.OpFindSigner, Label: label, Err: hsm.ErrKeyNotFound}
	}
	return &fakeSigner{f: f, label: label, key: k}, nil
}

// fakeSigner is bound to one key: after Destroy it fails, even if the label is reused.
type fakeSigner struct {
	f     *Fake
	label string
	key   *fakeKey
}

func (s *fakeSigner) Public() crypto.PublicKey { return &s.key.priv.PublicKey }

func (s *fakeSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 && len(digest) != opts.HashFunc().Size() {
		h := opts.HashFunc()
		return nil, &hsm.Error{Op: hsm.OpSign, Label: s.label,
			Err: fmt.Errorf("digest is %d bytes, %v needs %d", len(digest), h, h.Size())}
	}
	s.f.mu.RLock()
	defer s.f.mu.RUnlock()
	if err := s.f.begin(hsm.OpSign, s.label, false); err != nil {
		return nil, err
	}
	if s.f.keys[s.label] != s.key {
		return nil, &hsm.Error{Op: hsm.OpSign, Label: s.label, Err: hsm.ErrKeyNotFound}
	}
	sig, err := ecdsa.SignASN1(rand.Reader, s.key.priv, digest)
	if err != nil {
		return nil, &hsm.Error{Op: hsm.OpSign, Label: s.label, Err: hsm.ErrDevice}
	}
	return sig, nil
}

// aesKey returns the AES key label; the caller holds f.mu.
func (f *Fake) aesKey(op, label string) (cipher.AEAD, error) {
	k := f.keys[label]
	if k == nil || k.kind != hsm.KindAES {
		return nil, &hsm.Error{Op: op, Label: label, Err: hsm.ErrKeyNotFound}
	}
	return k.aead, nil
}

func (f *Fake) Seal(label string, plaintext, aad []byte) ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if err := f.begin(hsm.OpSeal, label, true); err != nil {
		return nil, err
	}
	aead, err := f.aesKey(hsm.OpSeal, label)
	if err != nil {
		return nil, err
	}
	out := make([]byte, hsm.NonceSize, hsm.NonceSize+len(plaintext)+hsm.TagSize)
	_, _ = rand.Read(out)
	return aead.Seal(out, out, plaintext, aad), nil
}

func (f *Fake) Open(label string, sealed, aad []byte) ([]byte, error) {
	if err := hsm.CheckLabel(label); err != nil {
		return nil, &hsm.Error{Op: hsm.OpOpen, Label: label, Err: err}
	}
	if len(sealed) < hsm.Overhead {
		return nil, &hsm.Error{Op: hsm.OpOpen, Label: label, Err: hsm.ErrOpen}
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if err := f.begin(hsm.OpOpen, label, false); err != nil {
		return nil, err
	}
	aead, err := f.aesKey(hsm.OpOpen, label)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open([]byte{}, sealed[:hsm.NonceSize], sealed[hsm.NonceSize:], aad)
	if err != nil {
		return nil, &hsm.Error{Op: hsm.OpOpen, Label: label, Err: hsm.ErrOpen}
	}
	return pt, nil
}

func (f *Fake) Destroy(label string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(hsm.OpDestroy, label, true); err != nil {
		return err
	}
	if f.keys[label] == nil {
		return &hsm.Error{Op: hsm.OpDestroy, Label: label, Err: hsm.ErrKeyNotFound}
	}
	delete(f.keys, label)
	return nil
}

func (f *Fake) List() ([]hsm.KeyInfo, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if err := f.begin(hsm.OpList, "", false); err != nil {
		return nil, err
	}
	keys := make([]hsm.KeyInfo, 0, len(f.keys))
	for label, k := range f.keys {
		keys = append(keys, hsm.KeyInfo{Label: label, Kind: k.kind})
	}
	slices.SortFunc(keys, func(a, b hsm.KeyInfo) int { return strings.Compare(a.Label, b.Label) })
	return keys, nil
}

// Close makes every later call fail with hsm.ErrClosed; the keys are dropped.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.keys = nil
	return nil
}

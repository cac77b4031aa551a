//go:build cgo

package pkcs11_test

// Tests that reach under the Token with miekg/pkcs11 directly: the keys cannot leave the
// token, and a Token recovers when its sessions or the library are pulled from under it.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
	p11 "github.com/custos-eu/custos/hsm/pkcs11"
)

// rawModule returns a handle on the already initialised library of c.Module. The caller
// must have opened a Token of the module first.
func rawModule(t *testing.T, c p11.Config) *pkcs11.Ctx {
	t.Helper()
	p := pkcs11.New(c.Module)
	if p == nil {
		t.Fatal("cannot load", c.Module)
	}
	t.Cleanup(p.Destroy)
	if err := p.Initialize(); !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		if err == nil {
			p.Finalize() // leave it to crypto11
		}
		t.Fatalf("library not initialised by an open Token: %v", err)
	}
	return p
}

func slotOf(t *testing.T, c p11.Config) uint {
	t.Helper()
	p := rawModule(t, c)
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if ti, err := p.GetTokenInfo(s); err == nil && ti.Label == c.TokenLabel {
			return s
		}
	}
	t.Fatalf("token %q not found", c.TokenLabel)
	return 0
}

// rawSession opens a session of its own on c's token and logs in (or finds the process
// logged in already).
func rawSession(t *testing.T, c p11.Config) (*pkcs11.Ctx, pkcs11.SessionHandle) {
	t.Helper()
	slot := slotOf(t, c)
	p := rawModule(t, c)
	s, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.CloseSession(s) })
	if err := p.Login(s, pkcs11.CKU_USER, readPIN(t, c)); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		t.Fatal(err)
	}
	return p, s
}

func findOne(t *testing.T, p *pkcs11.Ctx, s pkcs11.SessionHandle, class uint, label string) pkcs11.ObjectHandle {
	t.Helper()
	if err := p.FindObjectsInit(s, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}); err != nil {
		t.Fatal(err)
	}
	hs, _, err := p.FindObjects(s, 10)
	p.FindObjectsFinal(s)
	if err != nil || len(hs) != 1 {
		t.Fatalf("find %q: %v, %v", label, hs, err)
	}
	return hs[0]
}

var attrNames = map[uint]string{
	pkcs11.CKA_TOKEN: "CKA_TOKEN", pkcs11.CKA_PRIVATE: "CKA_PRIVATE",
	pkcs11.CKA_SENSITIVE: "CKA_SENSITIVE", pkcs11.CKA_ALWAYS_SENSITIVE: "CKA_ALWAYS_SENSITIVE",
	pkcs11.CKA_EXTRACTABLE: "CKA_EXTRACTABLE", pkcs11.CKA_NEVER_EXTRACTABLE: "CKA_NEVER_EXTRACTABLE",
}

func boolAttr(t *testing.T, p *pkcs11.Ctx, s pkcs11.SessionHandle, h pkcs11.ObjectHandle, typ uint) bool {
	t.Helper()
	a, err := p.GetAttributeValue(s, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
	if err != nil {
		t.Fatalf("attribute %#x: %v", typ, err)
	}
	return len(a[0].Value) == 1 && a[0].Value[0] != 0
}

func TestOpenBySlot(t *testing.T) {
	c := hsmtest.SoftHSM(t, "by-slot")[0]
	tok := open(t, c)
	if err := tok.GenerateAESKey("k"); err != nil {
		t.Fatal(err)
	}
	slot := slotOf(t, c)
	bySlot := c
	bySlot.TokenLabel, bySlot.Slot = "", &slot
	tok2 := open(t, bySlot)
	keys, err := tok2.List()
	if err != nil || len(keys) != 1 || keys[0].Label != "k" {
		t.Fatalf("List through the slot: %v, %v", keys, err)
	}
}

// The AES sealing key and the ECDSA private key cannot be read, wrapped out, or made
// extractable, even by a session logged in to the token.
func TestKeysNotExtractable(t *testing.T) {
	c := hsmtest.SoftHSM(t, "extract")[0]
	tok := open(t, c)
	if err := tok.GenerateAESKey("custos:kek:k1:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.GenerateSigner("custos:node"); err != nil {
		t.Fatal(err)
	}
	p, s := rawSession(t, c)
	aesKey := findOne(t, p, s, pkcs11.CKO_SECRET_KEY, "custos:kek:k1:1")
	ecKey := findOne(t, p, s, pkcs11.CKO_PRIVATE_KEY, "custos:node")

	// A session wrapping key that may wrap anything extractable.
	wrapKey, err := p.GenerateKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
		[]*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		})
	if err != nil {
		t.Fatal(err)
	}
	wrapMechs := map[string]uint{"AES_KEY_WRAP": pkcs11.CKM_AES_KEY_WRAP, "AES_KEY_WRAP_PAD": pkcs11.CKM_AES_KEY_WRAP_PAD}

	// Control: the wrapping key does wrap an extractable key, so the refusals below are
	// about our keys, not the mechanism.
	control, err := p.GenerateKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
		[]*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range wrapMechs {
		if w, err := p.WrapKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(m, nil)}, wrapKey, control); err != nil || len(w) != 40 {
			t.Fatalf("control: %s of an extractable key: %d bytes, %v", name, len(w), err)
		}
	}

	for name, key := range map[string]pkcs11.ObjectHandle{"AES sealing key": aesKey, "ECDSA private key": ecKey} {
		for attr, want := range map[uint]bool{
			pkcs11.CKA_TOKEN: true, pkcs11.CKA_PRIVATE: true,
			pkcs11.CKA_SENSITIVE: true, pkcs11.CKA_ALWAYS_SENSITIVE: true,
			pkcs11.CKA_EXTRACTABLE: false, pkcs11.CKA_NEVER_EXTRACTABLE: true,
		} {
			if got := boolAttr(t, p, s, key, attr); got != want {
				t.Errorf("%s: %s is %v, want %v", name, attrNames[attr], got, want)
			}
		}
		if _, err := p.GetAttributeValue(s, key, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
			t.Errorf("%s: reading CKA_VALUE: got %v, want CKR_ATTRIBUTE_SENSITIVE", name, err)
		}
		for mname, m := range wrapMechs {
			w, err := p.WrapKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(m, nil)}, wrapKey, key)
			if err == nil {
				t.Errorf("%s: wrapped out with %s (%d bytes)", name, mname, len(w))
			} else if !errors.Is(err, pkcs11.Error(pkcs11.CKR_KEY_UNEXTRACTABLE)) {
				t.Logf("%s: %s refused with %v", name, mname, err)
			}
		}
		// Sensitivity is one-way: neither attribute can be turned back.
		for attr, v := range map[uint]bool{pkcs11.CKA_EXTRACTABLE: true, pkcs11.CKA_SENSITIVE: false} {
			if err := p.SetAttributeValue(s, key, []*pkcs11.Attribute{pkcs11.NewAttribute(attr, v)}); err == nil {
				t.Errorf("%s: set %s to %v", name, attrNames[attr], v)
			}
		}
		if !boolAttr(t, p, s, key, pkcs11.CKA_SENSITIVE) || boolAttr(t, p, s, key, pkcs11.CKA_EXTRACTABLE) {
			t.Errorf("%s: attributes changed", name)
		}
	}
	if boolAttr(t, p, s, aesKey, pkcs11.CKA_WRAP) || !boolAttr(t, p, s, aesKey, pkcs11.CKA_ENCRYPT) {
		t.Error("AES sealing key: want CKA_ENCRYPT and not CKA_WRAP")
	}
}

type fixture struct {
	cfg    p11.Config
	tok    hsm.Token
	signer crypto.Signer
	sealed []byte
}

func newFixture(t *testing.T, c p11.Config) *fixture {
	t.Helper()
	f := &fixture{cfg: c, tok: open(t, c)}
	if err := f.tok.GenerateAESKey("custos:kek:k1:1"); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.signer, err = f.tok.GenerateSigner("custos:node"); err != nil {
		t.Fatal(err)
	}
	if f.sealed, err = f.tok.Seal("custos:kek:k1:1", []byte(c.TokenLabel), nil); err != nil {
		t.Fatal(err)
	}
	return f
}

// check runs every kind of operation once.
func (f *fixture) check(t *testing.T, when string) {
	t.Helper()
	got, err := f.tok.Open("custos:kek:k1:1", f.sealed, nil)
	if err != nil || string(got) != f.cfg.TokenLabel {
		t.Fatalf("%s: open: %q, %v", when, got, err)
	}
	d := sha256.Sum256([]byte(when))
	sig, err := f.signer.Sign(nil, d[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(f.signer.Public().(*ecdsa.PublicKey), d[:], sig) {
		t.Fatalf("%s: sign: %v", when, err)
	}
	if _, err := f.tok.Seal("custos:kek:k1:1", []byte("x"), nil); err != nil {
		t.Fatalf("%s: seal: %v", when, err)
	}
	if keys, err := f.tok.List(); err != nil || len(keys) != 2 {
		t.Fatalf("%s: list: %v, %v", when, keys, err)
	}
}

// C_Finalize on the shared library (as a careless library in the same process might
// call) drops every session and login of every token; each Token recovers on its next
// call, and the Signers handed out before keep working.
func TestRecoverAfterFinalize(t *testing.T) {
	cfgs := hsmtest.SoftHSM(t, "final-a", "final-b")
	a, b := newFixture(t, cfgs[0]), newFixture(t, cfgs[1])
	a.check(t, "before")
	b.check(t, "before")

	if err := rawModule(t, cfgs[0]).Finalize(); err != nil {
		t.Fatal(err)
	}
	a.check(t, "token a after C_Finalize")
	b.check(t, "token b after C_Finalize")

	// Again, with many goroutines hitting the fault at once.
	if err := rawModule(t, cfgs[0]).Finalize(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		f := []*fixture{a, b}[i%2]
		wg.Go(func() { f.check(t, "concurrent, after C_Finalize") })
	}
	wg.Wait()
}

// C_CloseAllSessions on one token's slot: that Token reopens, the other is untouched.
func TestRecoverAfterSessionsClosed(t *testing.T) {
	cfgs := hsmtest.SoftHSM(t, "closed-a", "closed-b")
	a, b := newFixture(t, cfgs[0]), newFixture(t, cfgs[1])
	a.check(t, "before")
	for i := range 3 {
		if err := rawModule(t, cfgs[0]).CloseAllSessions(slotOf(t, cfgs[0])); err != nil {
			t.Fatal(err)
		}
		a.check(t, "after C_CloseAllSessions "+string(rune('1'+i)))
		b.check(t, "other token")
	}
}

// A fault that a reopen does not cure fails the call after exactly one retry, and the
// next call, once the fault is gone, succeeds. Faults that are not about the connection
// are not retried.
func TestRetryOnce(t *testing.T) {
	f := newFixture(t, hsmtest.SoftHSM(t, "retry")[0])
	var calls atomic.Int32
	var fault atomic.Uint64
	defer p11.SetFaultHook(func(op string) error {
		calls.Add(1)
		if rv := fault.Load(); rv != 0 {
			return pkcs11.Error(rv)
		}
		return nil
	})()

	fault.Store(pkcs11.CKR_DEVICE_REMOVED)
	_, err := f.tok.Seal("custos:kek:k1:1", []byte("x"), nil)
	var he *hsm.Error
	if !errors.Is(err, hsm.ErrDevice) || !errors.As(err, &he) || !strings.Contains(he.Detail(), "CKR_DEVICE_REMOVED") || strings.Contains(err.Error(), "CKR_") {
		t.Fatalf("persistent fault: %v (detail %q)", err, he.Detail())
	}
	if n := calls.Swap(0); n != 2 {
		t.Fatalf("persistent fault: %d attempts, want 2", n)
	}

	fault.Store(pkcs11.CKR_FUNCTION_FAILED)
	if _, err := f.tok.Seal("custos:kek:k1:1", []byte("x"), nil); !errors.Is(err, hsm.ErrDevice) {
		t.Fatalf("CKR_FUNCTION_FAILED: %v", err)
	}
	if n := calls.Swap(0); n != 1 {
		t.Fatalf("CKR_FUNCTION_FAILED: %d attempts, want 1", n)
	}

	fault.Store(0)
	f.check(t, "fault gone")

	// One transient fault per call is absorbed.
	var once atomic.Bool
	p11.SetFaultHook(func(op string) error {
		if once.CompareAndSwap(false, true) {
			return pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID)
		}
		return nil
	})
	if got, err := f.tok.Open("custos:kek:k1:1", f.sealed, nil); err != nil || !bytes.Equal(got, []byte(f.cfg.TokenLabel)) {
		t.Fatalf("transient fault: %v", err)
	}
}

package pkcs11_test

// The PKCS#11 backend against real SoftHSM tokens.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/hsm/pkcs11"
)

func TestSoftHSMConformance(t *testing.T) {
	hsmtest.RunConformance(t, func(t *testing.T) hsm.Token {
		return hsmtest.OpenSoftHSM(t, "conformance")
	})
}

func open(t *testing.T, c pkcs11.Config) hsm.Token {
	t.Helper()
	tok, err := pkcs11.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

func readPIN(t *testing.T, c pkcs11.Config) string {
	t.Helper()
	b, err := os.ReadFile(c.PINFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// wantOpenErr checks an Open error: the sentinel, the op, and no PIN or raw code in the
// message.
func wantOpenErr(t *testing.T, what string, err error, want error, pins ...string) *hsm.Error {
	t.Helper()
	var he *hsm.Error
	if !errors.Is(err, want) || !errors.As(err, &he) || he.Op != hsm.OpOpenToken {
		t.Fatalf("%s: got %v, want an open-token *hsm.Error wrapping %v", what, err, want)
	}
	if strings.Contains(err.Error(), "CKR_") {
		t.Errorf("%s: message carries a raw PKCS#11 code: %q", what, err)
	}
	for _, pin := range pins {
		if strings.Contains(err.Error(), pin) || strings.Contains(he.Detail(), pin) {
			t.Errorf("%s: error or detail contains the PIN", what)
		}
	}
	return he
}

func TestOpenErrors(t *testing.T) {
	cfgs := hsmtest.SoftHSM(t, "errors", "errors-open")
	good := cfgs[0]
	pin := readPIN(t, good)
	dir := t.TempDir()
	wrongFile := filepath.Join(dir, "wrong.pin")
	if err := os.WriteFile(wrongFile, []byte("not-"+pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The token must not be open in this process: login is per process.
	c := good
	c.PINFile = wrongFile
	_, err := pkcs11.Open(c)
	he := wantOpenErr(t, "wrong PIN", err, hsm.ErrWrongPIN, pin, "not-"+pin)
	if !strings.Contains(he.Detail(), "CKR_PIN_INCORRECT") {
		t.Errorf("wrong PIN: Detail %q lacks the PKCS#11 code", he.Detail())
	}
	if got := err.Error(); got != `hsm: open token "`+good.TokenLabel+`": wrong PIN` {
		t.Errorf("wrong PIN message: %q", got)
	}

	c = good
	c.TokenLabel = "no-such-token"
	_, err = pkcs11.Open(c)
	wantOpenErr(t, "unknown token", err, hsm.ErrTokenNotFound, pin)
	slot := uint(0x7fff_fff0)
	c = good
	c.TokenLabel, c.Slot = "", &slot
	_, err = pkcs11.Open(c)
	wantOpenErr(t, "unknown slot", err, hsm.ErrTokenNotFound, pin)

	for name, c := range map[string]pkcs11.Config{
		"missing PIN file": {Module: good.Module, TokenLabel: good.TokenLabel, PINFile: filepath.Join(dir, "missing.pin")},
		"unset PIN env":    {Module: good.Module, TokenLabel: good.TokenLabel, PINEnv: "CUSTOS_TEST_NO_SUCH_VARIABLE"},
		"no PIN source":    {Module: good.Module, TokenLabel: good.TokenLabel},
	} {
		_, err := pkcs11.Open(c)
		wantOpenErr(t, name, err, hsm.ErrNoPIN)
	}

	notALib := filepath.Join(dir, "libnot.so")
	os.WriteFile(notALib, []byte("not a shared object"), 0o600)
	for _, m := range []string{filepath.Join(dir, "missing.so"), notALib} {
		c = good
		c.Module = m
		_, err = pkcs11.Open(c)
		wantOpenErr(t, "module "+filepath.Base(m), err, hsm.ErrModule, pin)
	}

	// The right PIN, from the environment, and then a wrong one while the token is open.
	t.Setenv("CUSTOS_TEST_HSM_PIN", readPIN(t, cfgs[1]))
	c = cfgs[1]
	c.PINFile, c.PINEnv = "", "CUSTOS_TEST_HSM_PIN"
	tok := open(t, c)
	if err := tok.GenerateAESKey("k"); err != nil {
		t.Fatal(err)
	}
	c.PINEnv = ""
	c.PINFile = wrongFile
	_, err = pkcs11.Open(c)
	wantOpenErr(t, "wrong PIN while the token is open", err, hsm.ErrWrongPIN, pin)
	if _, err := tok.Seal("k", []byte("x"), nil); err != nil {
		t.Fatalf("first Token after a rejected second Open: %v", err)
	}
}

// Keys are token objects: they outlive the Token and the library's finalisation.
func TestKeysSurviveReopen(t *testing.T) {
	c := hsmtest.SoftHSM(t, "persist")[0]
	tok, err := pkcs11.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.GenerateAESKey("custos:kek:k1:1"); err != nil {
		t.Fatal(err)
	}
	signer, err := tok.GenerateSigner("custos:node")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := tok.Seal("custos:kek:k1:1", []byte("share"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}

	tok = open(t, c)
	got, err := tok.Open("custos:kek:k1:1", sealed, []byte("aad"))
	if err != nil || string(got) != "share" {
		t.Fatalf("open after reopen: %q, %v", got, err)
	}
	s, err := tok.Signer("custos:node")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Public().(*ecdsa.PublicKey).Equal(signer.Public()) {
		t.Fatal("signer after reopen has another public key")
	}
	d := sha256.Sum256([]byte("m"))
	sig, err := s.Sign(nil, d[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(signer.Public().(*ecdsa.PublicKey), d[:], sig) {
		t.Fatalf("sign after reopen: %v", err)
	}
	// The signer from the closed Token is closed with it.
	if _, err := signer.Sign(nil, d[:], crypto.SHA256); !errors.Is(err, hsm.ErrClosed) {
		t.Fatalf("signer of a closed Token: %v", err)
	}
}

// Three nodes in one process, each with its own token of one module: independent keys,
// and closing one leaves the others working, even while they are busy.
func TestSeveralTokensOneProcess(t *testing.T) {
	cfgs := hsmtest.SoftHSM(t, "node-a", "node-b", "node-c")
	toks := make([]hsm.Token, 3)
	sealed := make([][]byte, 3)
	for i, c := range cfgs {
		toks[i] = open(t, c)
		if err := toks[i].GenerateAESKey("custos:kek:k1:1"); err != nil {
			t.Fatal(err)
		}
		var err error
		if sealed[i], err = toks[i].Seal("custos:kek:k1:1", []byte{byte(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := toks[1].Open("custos:kek:k1:1", sealed[0], nil); !errors.Is(err, hsm.ErrOpen) {
		t.Fatalf("node b opened node a's share: %v", err)
	}

	// b and c keep working while a closes and reopens, repeatedly.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i := 1; i < 3; i++ {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := toks[i].Open("custos:kek:k1:1", sealed[i], nil)
				if err != nil || !bytes.Equal(got, []byte{byte(i)}) {
					errs <- err
					return
				}
			}
		})
	}
	for range 5 {
		if err := toks[0].Close(); err != nil {
			t.Fatal(err)
		}
		toks[0] = open(t, cfgs[0])
		if _, err := toks[0].Open("custos:kek:k1:1", sealed[0], nil); err != nil {
			t.Fatalf("node a after reopen: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("node b or c while a closed: %v", err)
	}

	// Close every token, so the module is finalised, then open one again.
	for _, tok := range toks {
		tok.Close()
	}
	tok := open(t, cfgs[2])
	if got, err := tok.Open("custos:kek:k1:1", sealed[2], nil); err != nil || got[0] != 2 {
		t.Fatalf("after closing every token: %v", err)
	}
}

// The same token opened twice: the Tokens share the process's login, and closing one
// leaves the other logged in.
func TestSameTokenTwice(t *testing.T) {
	c := hsmtest.SoftHSM(t, "twice")[0]
	a, b := open(t, c), open(t, c)
	if err := a.GenerateAESKey("k"); err != nil {
		t.Fatal(err)
	}
	if err := b.GenerateAESKey("k"); !errors.Is(err, hsm.ErrKeyExists) {
		t.Fatalf("second Token could reuse the label: %v", err)
	}
	sealed, err := a.Seal("k", []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if got, err := b.Open("k", sealed, nil); err != nil || string(got) != "x" {
		t.Fatalf("second Token after the first closed: %q, %v", got, err)
	}
}

// SoftHSM sees tokens made by softhsm2-util only when initialised; hsmtest.SoftHSM calls
// pkcs11.Rescan, and a Token open meanwhile carries on after reconnecting.
func TestNewTokenWhileOthersOpen(t *testing.T) {
	a := open(t, hsmtest.SoftHSM(t, "early")[0])
	if err := a.GenerateAESKey("k"); err != nil {
		t.Fatal(err)
	}
	signer, err := a.GenerateSigner("s")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := a.Seal("k", []byte("a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := open(t, hsmtest.SoftHSM(t, "late")[0])
	if err := b.GenerateAESKey("k"); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Open("k", sealed, nil); err != nil || string(got) != "a" {
		t.Fatalf("first token after a rescan: %q, %v", got, err)
	}
	d := sha256.Sum256([]byte("m"))
	if _, err := signer.Sign(nil, d[:], crypto.SHA256); err != nil {
		t.Fatalf("signer after a rescan: %v", err)
	}
	if err := pkcs11.Rescan("/nonexistent/module.so"); !errors.Is(err, hsm.ErrModule) {
		t.Errorf("Rescan of a missing module: %v", err)
	}
}

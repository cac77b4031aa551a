package officerhsm_test

// The classical key on a real (SoftHSM) token.

import (
	"bytes"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/hsm/pkcs11"
	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/officer/officerhsm"
)

const tokenObject = "custos-officer"

// softToken makes a fresh SoftHSM token and returns its config and a URI naming
// object on it, with the PIN from a file.
func softToken(t testing.TB, object string) (pkcs11.Config, string) {
	t.Helper()
	cfg := hsmtest.SoftHSM(t, "officer")[0]
	return cfg, fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-source=file:%s", cfg.TokenLabel, object, cfg.Module, cfg.PINFile)
}

func openToken(t testing.TB, cfg pkcs11.Config) hsm.Token {
	t.Helper()
	tok, err := pkcs11.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

func TestPKCS11KeygenLoad(t *testing.T) {
	cfg, uri := softToken(t, tokenObject)
	dir, pub := keygen(t, officer.Config{Name: "alice", PKCS11URI: uri})
	keyPath, _ := officer.KeyFiles(dir, "alice")

	// The classical key is the token's, and the file records where it is, not the key.
	tok := openToken(t, cfg)
	tokSigner, err := tok.Signer(tokenObject)
	if err != nil {
		t.Fatal(err)
	}
	if !tokSigner.Public().(*ecdsa.PublicKey).Equal(pub.ClassicalKey()) {
		t.Fatal("bundle's classical key is not the token's")
	}
	plain := decryptKeyFile(t, keyPath)
	if bytes.Contains(plain, []byte("classical_seed")) || !bytes.Contains(plain, []byte(`"pkcs11_uri":"pkcs11:token=`+cfg.TokenLabel+`;object=custos-officer?module-path=`)) {
		t.Fatalf("key file plaintext: %s", plain)
	}
	pin, _ := os.ReadFile(cfg.PINFile)
	if bytes.Contains(plain, bytes.TrimSpace(pin)) {
		t.Fatal("key file holds the PIN")
	}

	s := load(t, keyPath)
	if !s.Public().Equal(pub) {
		t.Fatal("loaded another key")
	}
	if !strings.Contains(fmt.Sprint(s), "PKCS#11 pkcs11:token="+cfg.TokenLabel) {
		t.Fatalf("signer prints as %v", s)
	}
	d := randomDigest(t)
	sig, err := s.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Verify(d, sig); err != nil {
		t.Fatal(err)
	}
	// Close closes the token; the key stays on it.
	s.Close()
	if _, err := s.Sign(d); !errors.Is(err, officer.ErrClosed) {
		t.Fatalf("Sign after Close: %v", err)
	}
	if _, err := tok.Signer(tokenObject); err != nil {
		t.Fatalf("key gone from the token after Close: %v", err)
	}
	again := load(t, keyPath)
	if !again.Public().Equal(pub) {
		t.Fatal("second Load gives another key")
	}
}

func TestPKCS11PINFromEnv(t *testing.T) {
	cfg := hsmtest.SoftHSM(t, "officer")[0]
	pin, err := os.ReadFile(cfg.PINFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OFFICER_TEST_PIN", strings.TrimSpace(string(pin)))
	uri := fmt.Sprintf("pkcs11:token=%s;object=o?module-path=%s&pin-source=env:OFFICER_TEST_PIN", cfg.TokenLabel, cfg.Module)
	dir, pub := keygen(t, officer.Config{Name: "alice", PKCS11URI: uri})
	keyPath, _ := officer.KeyFiles(dir, "alice")
	s := load(t, keyPath)
	d := randomDigest(t)
	sig, err := s.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Verify(d, sig); err != nil {
		t.Fatal(err)
	}
	// Without the PIN, the token does not open.
	s.Close()
	t.Setenv("OFFICER_TEST_PIN", "")
	if _, err := officerhsm.Load(keyPath, testPassphrase); !errors.Is(err, hsm.ErrNoPIN) {
		t.Fatalf("Load without PIN: %v, want hsm.ErrNoPIN", err)
	}
}

func TestPKCS11Refusals(t *testing.T) {
	t.Run("label taken", func(t *testing.T) {
		cfg, uri := softToken(t, tokenObject)
		tok := openToken(t, cfg)
		existing, err := tok.GenerateSigner(tokenObject)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		_, err = officerhsm.Keygen(dir, officer.Config{Name: "alice", PKCS11URI: uri, WorkFactor: testWorkFactor}, testPassphrase)
		if !errors.Is(err, hsm.ErrKeyExists) {
			t.Fatalf("Keygen = %v, want hsm.ErrKeyExists", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatal("refused Keygen wrote files")
		}
		// The existing key was left alone.
		still, err := tok.Signer(tokenObject)
		if err != nil || !still.Public().(*ecdsa.PublicKey).Equal(existing.Public()) {
			t.Fatalf("existing key changed: %v", err)
		}
	})
	t.Run("wrong PIN", func(t *testing.T) {
		cfg, _ := softToken(t, tokenObject)
		bad := filepath.Join(t.TempDir(), "pin")
		os.WriteFile(bad, []byte("000000\n"), 0o600)
		uri := fmt.Sprintf("pkcs11:token=%s;object=o?module-path=%s&pin-source=file:%s", cfg.TokenLabel, cfg.Module, bad)
		dir := t.TempDir()
		_, err := officerhsm.Keygen(dir, officer.Config{Name: "alice", PKCS11URI: uri, WorkFactor: testWorkFactor}, testPassphrase)
		if !errors.Is(err, hsm.ErrWrongPIN) {
			t.Fatalf("Keygen = %v, want hsm.ErrWrongPIN", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatal("refused Keygen wrote files")
		}
	})
	t.Run("no such token", func(t *testing.T) {
		cfg, _ := softToken(t, tokenObject)
		uri := fmt.Sprintf("pkcs11:token=no-such-token;object=o?module-path=%s&pin-source=file:%s", cfg.Module, cfg.PINFile)
		_, err := officerhsm.Generate(officer.Config{Name: "alice", PKCS11URI: uri})
		if !errors.Is(err, hsm.ErrTokenNotFound) {
			t.Fatalf("Generate = %v, want hsm.ErrTokenNotFound", err)
		}
	})
	t.Run("overwrite refused before the token is touched", func(t *testing.T) {
		cfg, uri := softToken(t, tokenObject)
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "alice.pub"), []byte("x"), 0o644)
		_, err := officerhsm.Keygen(dir, officer.Config{Name: "alice", PKCS11URI: uri, WorkFactor: testWorkFactor}, testPassphrase)
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("Keygen = %v, want fs.ErrExist", err)
		}
		if keys, _ := openToken(t, cfg).List(); len(keys) != 0 {
			t.Fatalf("token holds %v after a refused Keygen", keys)
		}
	})
	t.Run("key replaced on the token", func(t *testing.T) {
		cfg, uri := softToken(t, tokenObject)
		dir, _ := keygen(t, officer.Config{Name: "alice", PKCS11URI: uri})
		keyPath, _ := officer.KeyFiles(dir, "alice")
		tok := openToken(t, cfg)
		if err := tok.Destroy(tokenObject); err != nil {
			t.Fatal(err)
		}
		if _, err := officerhsm.Load(keyPath, testPassphrase); !errors.Is(err, hsm.ErrKeyNotFound) {
			t.Fatalf("Load with the key gone = %v, want hsm.ErrKeyNotFound", err)
		}
		if _, err := tok.GenerateSigner(tokenObject); err != nil {
			t.Fatal(err)
		}
		if _, err := officerhsm.Load(keyPath, testPassphrase); !errors.Is(err, officer.ErrKeyMismatch) {
			t.Fatalf("Load with another key under the label = %v, want ErrKeyMismatch", err)
		}
	})
}

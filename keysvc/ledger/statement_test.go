package ledger

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

func statementKey(t *testing.T, name string) (NodeKey, *ecdsa.PrivateKey, *mldsa65.PrivateKey) {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mlPub, ml, err := mldsa65.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return NodeKey{Name: name, ECDSA: &ec.PublicKey, MLDSA: mlPub}, ec, ml
}

func TestStatement(t *testing.T) {
	key, ec, ml := statementKey(t, "c/n1")
	other, oec, oml := statementKey(t, "c/n1")
	text := "custos kek share destroyed v1\nkek: k 1\n"
	msg, err := SignStatement(text, key.Name, ec, ml)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyStatement(msg, key)
	if err != nil || got != text {
		t.Fatalf("VerifyStatement = %q, %v", got, err)
	}
	if _, err := VerifyStatement(msg, other); !errors.Is(err, ErrStatement) {
		t.Errorf("other key: %v, want ErrStatement", err)
	}
	bad := bytes.Replace(msg, []byte("k 1"), []byte("k 2"), 1)
	if _, err := VerifyStatement(bad, key); !errors.Is(err, ErrStatement) {
		t.Errorf("tampered text: %v, want ErrStatement", err)
	}
	// One signature only (another node's ML-DSA): refused as incomplete.
	half, err := SignStatement(text, key.Name, ec, oml)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyStatement(half, key); !errors.Is(err, ErrStatement) {
		t.Errorf("ecdsa only: %v, want ErrStatement", err)
	}
	_ = oec
	if _, err := VerifyStatement(bytes.Repeat([]byte("a"), MaxStatementSize+1), key); !errors.Is(err, ErrStatement) {
		t.Errorf("oversized: %v", err)
	}
}

func FuzzVerifyStatement(f *testing.F) {
	key, ec, ml := statementKey(&testing.T{}, "c/n1")
	msg, _ := SignStatement("hello\n", key.Name, ec, ml)
	f.Add(msg)
	f.Add([]byte("hello\n\n— c/n1 AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		text, err := VerifyStatement(b, key)
		if err == nil && text != "hello\n" {
			t.Fatalf("accepted forged text %q", text)
		}
	})
}

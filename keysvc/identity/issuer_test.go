package identity_test

// The CA with a caller's key (OpenCA, NewCAWithKey), its validity check,
// issuing for a given key, node names, and a fuzzer for ParseCSR.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/identity"
)

// opaqueSigner hides the key's type, as an HSM signer does.
type opaqueSigner struct{ crypto.Signer }

func p256Key(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOpenCAWithSigner(t *testing.T) {
	key := opaqueSigner{p256Key(t)}
	ca, err := identity.NewCAWithKey("prod", key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteKeyPEM(new(bytes.Buffer)); err == nil {
		t.Fatal("WriteKeyPEM exported a key it cannot see")
	}
	again, err := identity.OpenCA(ca.CertPEM(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.CheckUsable(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := again.CheckUsable(time.Now().Add(2 * time.Hour)); !errors.Is(err, identity.ErrCAUnusable) {
		t.Fatalf("after expiry: %v, want ErrCAUnusable", err)
	}
	if err := again.CheckUsable(time.Now().Add(-time.Hour)); !errors.Is(err, identity.ErrCAUnusable) {
		t.Fatalf("before validity: %v, want ErrCAUnusable", err)
	}
	if _, err := identity.OpenCA(ca.CertPEM(), p256Key(t)); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("another key: %v", err)
	}
	if _, err := identity.OpenCA(append(ca.CertPEM(), ca.CertPEM()...), key); err == nil {
		t.Fatal("two certificates accepted as a CA file")
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := identity.NewCAWithKey("prod", edKey, 0); err == nil {
		t.Fatal("an Ed25519 CA key was accepted")
	}

	// A certificate issued for a given key verifies as the node's.
	node := p256Key(t)
	id := identity.Identity{Cluster: "prod", Role: identity.RoleNode, Name: "node-1", Region: "FR"}
	certPEM, err := again.IssueFor(id, node.Public(), identity.IssueOptions{IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	c := parsePEM(t, certPEM)
	if got, err := identity.FromCertificate(c); err != nil || got != id {
		t.Fatalf("issued %v, %v", got, err)
	}
	if !c.PublicKey.(*ecdsa.PublicKey).Equal(node.Public()) {
		t.Fatal("certificate for another key")
	}
	if err := c.CheckSignatureFrom(again.Certificate()); err != nil {
		t.Fatal(err)
	}
	if _, err := again.IssueFor(id, edKey.Public(), identity.IssueOptions{}); err == nil {
		t.Fatal("issued for an Ed25519 key")
	}
	other := id
	other.Cluster = "staging"
	if _, err := again.IssueFor(other, node.Public(), identity.IssueOptions{}); !errors.Is(err, identity.ErrWrongCluster) {
		t.Fatalf("another cluster: %v", err)
	}
}

func TestCheckNodeNames(t *testing.T) {
	for _, ok := range []string{"localhost", "node-1.eu.example", "a1", "N1.Example"} {
		if err := identity.CheckNodeNames([]string{ok}, nil); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "*.example.com", "-a.example", "a-.example", "a..b", "a.", "under_score", "sp ace", strings.Repeat("a", 64) + ".x"} {
		if err := identity.CheckNodeNames([]string{bad}, nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, bad := range []net.IP{net.IPv4zero, net.IPv6unspecified, net.IPv4(224, 0, 0, 1)} {
		if err := identity.CheckNodeNames(nil, []net.IP{bad}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// FuzzParseCSR: never panics, refuses only with ErrBadCSR, and what it
// accepts has a valid identity and a P-256 key.
func FuzzParseCSR(f *testing.F) {
	key := p256Key(f)
	for _, id := range []identity.Identity{
		{Cluster: "prod", Role: identity.RoleNode, Name: "node-1", Region: "FR"},
		{Cluster: "prod", Role: identity.RoleAgent, Name: "a", Region: "DE"},
	} {
		var ips []net.IP
		if id.Role == identity.RoleNode {
			ips = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		csr, err := identity.NewCSR(key, id, nil, ips)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(csr)
	}
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := identity.ParseCSR(b)
		if err != nil {
			if !errors.Is(err, identity.ErrBadCSR) {
				t.Fatalf("error %v does not match ErrBadCSR", err)
			}
			return
		}
		if err := req.Identity.Validate(); err != nil {
			t.Fatalf("accepted an invalid identity: %v", err)
		}
		if req.PublicKey.Curve != elliptic.P256() {
			t.Fatal("accepted a non-P-256 key")
		}
	})
}
